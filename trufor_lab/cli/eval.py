"""``trufor-lab eval``: evaluate on a benchmark or a folder; per-image CSV and summary.

``--method NAME`` evaluates a classic, training-free detector of :mod:`trufor_lab.lab.classic`
(``ela``, ``jpeg_ghost``, ...) exactly like TruFor (the default, ``--method trufor``): same
metrics, same files. A classic method's outputs go to ``OUT/<method>/`` and its tables are
named ``<dataset>.<method>.*`` so that they never mix with TruFor's in the same OUT. Methods
without a global score get the 99th percentile of their map as score (a note says so)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from torch import nn

from trufor_lab.common.paths import safe_part
from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.load import is_full_model, load, model_notice, resolve_device
from trufor_lab.inference.result import Result
from trufor_lab.inference.stored import computed_label
from trufor_lab.inference.weights import WeightsError, noiseprint_sha256, weights_sha256
from trufor_lab.lab.datasets import REGISTRY, Dataset, DatasetError, load_dataset
from trufor_lab.lab.classic import METHODS, detect
from trufor_lab.lab.eval_rows import is_failed
from trufor_lab.lab.evaluate import evaluate
from trufor_lab.model import CheckpointError
from trufor_lab.cli.masks import add_mask_options, check_threshold, folder_from_args, overridden
from trufor_lab.cli.messages import (
    PRECISION_HELP,
    WEIGHTS_HELP,
    device_help,
    error,
    model_note,
    note,
    output_folder_problem,
    printable,
    weights_note,
)


#: How this command reads a dataset named like a benchmark otherwise (its name is DATASET's).
_RENAME = "give the dataset another name (trufor-lab eval NAME --images DIR ...)"


def _cli_dataset(args: argparse.Namespace) -> Dataset:
    check_threshold(args)
    if args.images is None and args.dataset in REGISTRY:  # said before any list is read
        overridden(REGISTRY.get(args.dataset).convention, args.dataset, args)
    if args.images is not None:
        dataset_options = {
            "--root": args.root,
            "--fake-list": args.fake_list,
            "--real-list": args.real_list,
            "--list-dir": args.list_dir,
            "--mask-root": args.mask_root,
        }
        given = [o for o, v in dataset_options.items() if v is not None]
        if given:  # --list-dir and --mask-root were ignored, unsaid
            raise DatasetError(f"--images takes no {', '.join(given)} (masks: --masks DIR)")
        return folder_from_args(args, args.dataset, _RENAME)
    if args.dataset is None:
        raise DatasetError("give DATASET --root ROOT (a benchmark or a fake-list file), or --images DIR")
    if args.masks is not None:
        raise DatasetError("--masks goes with --images (use --mask-root with DATASET)")
    if args.mask_suffix:
        raise DatasetError("--mask-suffix goes with --images (list files name each mask)")
    ds = load_dataset(
        args.dataset, args.root, args.fake_list, args.real_list, list_dir=args.list_dir, mask_root=args.mask_root
    )
    if args.mask_invert and ds.convention.invert and ds.name in REGISTRY:  # taken silently: it is its own
        ds.notes.insert(0, f"{ds.name}: its masks are black = forged already: --mask-invert changes nothing")
    ds.convention = overridden(ds.convention, ds.name, args)
    return ds


class _ModelUnavailable(Exception):
    """Raised by the CLI's lazy model loader; deliberately not caught per image."""


class _LazyModel:
    """Loads the model on the first image that needs computing, so a finished run resumes
    without reading the checkpoint."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.model: nn.Module | None = None

    def __call__(self, _model: Any, image: Any) -> Result:
        if self.model is None:
            try:
                model = load(self.args.weights, device=self.args.device, precision=self.args.precision)
            except (CheckpointError, WeightsError, ValueError, RuntimeError) as e:
                raise _ModelUnavailable(str(e).splitlines()[0]) from None
            if not is_full_model(model):
                raise _ModelUnavailable(
                    "evaluation needs a TruFor checkpoint (only Noiseprint++ found): "
                    f"{model_notice(model) or 'no localization map, no score'}"
                )
            model_note(model, self.args.weights)
            self.model = model
        return analyze(self.model, image)


class _Classic:
    """``analyze_fn`` for a classic detector: the image file is read with its JPEG tables."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.not_applicable: list[str] = []
        self.first_reason = ""

    def __call__(self, _model: Any, image: Any) -> Result:
        r = detect(str(image), self.method, fallback_score=True)
        if r.score is None:  # not applicable (e.g. dq_aligned on a PNG): no map, no evidence
            # not scored: its empty map earned the all-forged F1 (max over the inverted map) and a
            # score of 0 counted as a detection miss, so a method that ran on nothing scored like one that ran
            why = (r.notice or f"{self.method}: not applicable").removesuffix(": empty map")
            head = " ".join(f"{image}: {why}".split())  # as the evaluation's row says it, ending as it ends
            msg = (head if len(head) <= 286 else head[:285] + "…") + "; not scored"  # one line, its end kept
            self.not_applicable.append(str(image))
            self.first_reason = self.first_reason or f"{Path(str(image)).name}: {why}"
            raise _NotApplicable(msg)
        return r


class _NotApplicable(RuntimeError):
    """A classic method that cannot judge this image (the row fails, with the reason)."""


def run(args: argparse.Namespace) -> int:
    """``trufor-lab eval``: evaluate, write CSV + summary JSON/CSV into OUT, print the summary."""
    try:
        dataset = _cli_dataset(args)
        repeated = dataset.repeated()
        if repeated:
            raise DatasetError(repeated)
    except DatasetError as e:
        error(" ".join(str(e).split()))
        return 1
    if len(dataset) == 0:
        for line in dataset.note_lines():  # evaluate() says them otherwise
            note(line)
        error(f"{dataset.name}: dataset holds no images")
        return 1
    problem = output_folder_problem(args.output)
    if problem is not None:  # said once, before any work
        error(problem)
        return 2
    method = getattr(args, "method", "trufor")
    classic = method != "trufor"
    unused = [o for o, v in (("--weights", args.weights), ("--device", args.device)) if v is not None] + (
        ["--precision"] if args.precision != "float32" else []
    )
    if classic and unused:  # a classic detector loads no model: these were ignored, unsaid
        why = (
            "runs the default Noiseprint++ weights ($TRUFOR_NOISEPRINT_WEIGHTS, else the shipped ones) on the CPU"
            if method == "noiseprint"
            else "runs no network"
        )
        error(f"--method {method} {why}: {', '.join(unused)} not taken (drop them)")
        return 2
    if not classic:  # said even when every output is reused and no model loads (a typo was taken, exit 0)
        try:
            resolve_device(args.device)
        except ValueError as e:
            error(str(e))
            return 2
    if classic and not METHODS[method].defines_score:
        print(
            f"note: {method} defines no global score: the detection metrics use the 99th percentile of its map",
            file=sys.stderr,
        )
    analyze_fn = _Classic(method) if classic else _LazyModel(args)
    try:
        # the noiseprint detector's maps are those of the Noiseprint++ file it loads: recorded, so that
        # another file's outputs are recomputed (and a variable naming no file is said even when all are reused)
        digest = noiseprint_sha256() if method == "noiseprint" else None if classic else weights_sha256(args.weights)
    except (WeightsError, OSError) as e:
        error(str(e).splitlines()[0])
        return 2
    out = Path(args.output)
    stem = safe_part(dataset.name) + (f".{method}" if classic else "")
    tables = (out / f"{stem}.per_image.csv", out / f"{stem}.summary.json", out / f"{stem}.summary.csv")
    # an interrupted run must not leave the last run's tables beside its new outputs; a run that
    # does nothing (the weights do not load) leaves them as they were
    aside = _set_aside(tables)
    try:
        ev = evaluate(
            None,
            dataset,
            Path(args.output) / method if classic else args.output,
            overwrite=args.overwrite,
            progress=not args.quiet,
            analyze_fn=analyze_fn,
            weights_sha256=digest,
            computed=f"classic {method}" if classic else computed_label("exact", args.precision),
        )
    except _ModelUnavailable as e:
        _put_back(aside)
        error(str(e))
        return 2
    except KeyboardInterrupt:  # said only 'interrupted': what is kept, what is not, and how to go on
        removed = " (the last run's removed: they would not match)" if aside else ""
        raise KeyboardInterrupt(
            f"interrupted; no tables written{removed}; the outputs written are complete: "
            "run the same command again to go on (they are reused)"
        ) from None
    finally:
        for kept in aside.values():
            with contextlib.suppress(OSError):
                kept.unlink()
    skipped = set(analyze_fn.not_applicable) if classic else set()
    for row in ev.rows:  # ev.failed's lines, less those the one line below counts
        if is_failed(row) and str(row.get("image_path")) not in skipped:
            error(row.get("error") or f"{row.get('image_path')}: failed")
    if skipped:  # one line, not one per image: a folder of PNGs under a JPEG method would fill the screen
        error(
            f"{method} is not applicable to {len(skipped)} image(s), not scored, counted as failed "
            f"(e.g. {analyze_fn.first_reason})"
        )
    if not classic and analyze_fn.model is None and ev.rows:  # every output reused: say whose they are
        weights_note(args.weights)
    try:
        ev.to_csv(tables[0])
        ev.write_summary(tables[1], tables[2])
    except OSError as e:
        error(f"{out}: cannot write results ({e.strerror or e})")
        return 1
    for line in ev.summary_lines():
        print(printable(line))
    print(
        f"{len(ev.rows)} images: {ev.n_computed} computed, {ev.n_reused} reused (output exists), "
        f"{len(ev.failed)} failed; results in {tables[0]}"
    )
    return 1 if ev.failed else 0


def _set_aside(tables: tuple[Path, ...]) -> dict[Path, Path]:
    """Move the last run's tables to hidden names beside them: {table: where it now is}."""
    aside = {}
    for table in tables:
        hidden = table.with_name(f".{table.name}.previous")
        if table.is_dir():  # not a table: left where it is (writing the new one says so)
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            os.replace(table, hidden)
            aside[table] = hidden
    return aside


def _put_back(aside: dict[Path, Path]) -> None:
    for table, hidden in list(aside.items()):
        with contextlib.suppress(OSError):
            os.replace(hidden, table)
            del aside[table]


def register(subparsers: Any) -> None:
    """Add ``eval`` to the ``trufor-lab`` subcommands."""
    e = subparsers.add_parser(
        "eval",
        help="evaluate on a benchmark or a folder; per-image CSV and summary",
        description="trufor-lab eval DATASET --root ROOT [--fake-list F] [--real-list R] | "
        "--images DIR [--masks DIR] [--mask-suffix S] -o OUT; folders are searched with their subfolders",
    )
    e.add_argument(
        "dataset",
        nargs="?",
        default=None,
        metavar="DATASET",
        help="a registered benchmark (e.g. CASIA1) or a fake-list file; with --images, the name",
    )
    e.add_argument(
        "--root",
        default=None,
        help="dataset root: relative list paths resolve against it (absolute ones are taken as they are; "
        "a list of absolute paths needs no --root)",
    )
    e.add_argument("--fake-list", default=None, help="official fake list (image,mask per line)")
    e.add_argument("--real-list", default=None, help="official real list (image per line)")
    e.add_argument("--list-dir", default=None, help="folder holding the benchmark's official lists")
    e.add_argument("--mask-root", default=None, help="where listed masks resolve (default: per benchmark)")
    e.add_argument("--images", default=None, metavar="DIR", help="a folder of images instead of a benchmark")
    add_mask_options(e, "masks for --images: same stem (+ --mask-suffix); images with a mask are fakes")
    e.add_argument("-o", "--output", required=True, help="output folder (npz per image, CSV, summary)")
    e.add_argument(
        "--method",
        default="trufor",
        choices=["trufor", *METHODS],
        help="trufor (default) or a classic detector of trufor_lab.lab.classic",
    )
    e.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    e.add_argument("--device", default=None, help=device_help())
    e.add_argument("--precision", default="float32", choices=["float32", "float64"], help=PRECISION_HELP)
    e.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=run)
