"""``trufor-lab``: a thin command line over the same functions a notebook calls.

    trufor-lab analyze INPUT... -o OUT [--weights CKPT] [--device cpu|cuda|cuda:N|mps|auto]
                       [--precision float32|float64]
    trufor-lab weights info | download | install TruFor_weights.zip
    trufor-lab eval | report | distributed-analyze | train | notebooks | casebook | bench ...

Each subcommand lives in its own module of this package with ``register(subparsers)`` and
``run(args)``. Top layer: may import every other package; nothing inside trufor_lab imports it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from trufor_lab.cli import analyze, casebook, distributed, notebooks, report, train, weights
from trufor_lab.cli import eval as eval_cmd
from trufor_lab.cli.messages import run_command

#: The subcommands, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[Any], Any], ...] = (
    analyze.register,
    weights.register,
    eval_cmd.register,
    report.register,
    distributed.register,
    train.register,
    notebooks.register,
    casebook.register,
)


def _plugins() -> list[Callable[[Any], Any]]:
    """Subcommands from outside the package: ``bench`` when run from a source checkout, and only
    the checkout's own (a ``bench.py`` in the folder a user runs ``python -m trufor_lab`` from
    was imported, and ran)."""
    checkout = Path(__file__).resolve().parents[2] / "bench" / "__init__.py"
    try:
        spec = importlib.util.find_spec("bench")  # finds without running anything
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != checkout:
        return []
    try:
        mod = importlib.import_module("bench.cli")
    except ModuleNotFoundError as e:
        if e.name in ("bench", "bench.cli"):  # not a source checkout: no bench subcommand
            return []
        raise
    return [mod.register_cli]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trufor-lab", description="TruFor forgery detection and analysis")
    sub = ap.add_subparsers(dest="command", required=True)
    for register in (*COMMANDS, *_plugins()):
        register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
