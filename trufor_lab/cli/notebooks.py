"""``trufor-lab notebooks``: run the teaching notebooks top to bottom, and time them.

    python -m trufor_lab.notebooks --time              # all, default parameters, record times
    trufor-lab notebooks --only 01 08 --small          # the CI-sized inputs

Each notebook picks its default sizes from the device (full sizes on a GPU; on a CPU every
notebook is sized to finish in :data:`CPU_BOUND_S` on two cores). ``--time`` writes the
measured times into the "Notebooks at default parameters" section of ``bench/RESULTS.md``,
one block per device and selection (a rerun on the same device replaces its block, other
devices stay; a run with ``--only`` gets a block of its own, so it never erases a full run's).
Notebooks run from a source checkout (``notebooks/`` next to the package), in a temporary
output folder, with the checkout first on ``PYTHONPATH`` so the kernel imports this code.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from trufor_lab.common.files import atomic_write_text
from trufor_lab.cli.messages import positive_seconds, printable

#: What a CPU run of one notebook at its default parameters may take (two cores), and all of them.
CPU_BOUND_S = 180.0
CPU_TOTAL_BOUND_S = 1200.0
#: The section of ``bench/RESULTS.md`` this command owns.
SECTION = "## Notebooks at default parameters"

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Timing:
    name: str
    seconds: float
    ok: bool
    error: str = ""
    #: CPU seconds of the kernel (user + system): unlike the wall time, barely affected by other jobs
    cpu_seconds: float = math.nan


def find_notebooks(directory: Path, only: Sequence[str] = ()) -> list[Path]:
    """The ``*.ipynb`` of ``directory`` in order; ``only`` keeps those whose name starts with one of them."""
    paths = sorted(p for p in Path(directory).glob("*.ipynb") if not p.name.startswith("."))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(o) or p.name == o for o in only)]
    return paths


def device_label() -> str:
    """The device the notebooks pick by default, in words."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {cores} cores, {cpu}"


MISSING = "running notebooks needs nbclient and nbformat: pip install 'trufor-lab[notebooks]'"
#: What executing a notebook needs (looked up, not imported: importing them costs seconds).
REQUIRES = ("nbclient", "nbformat")
#: Runs one notebook in a process of its own (a file, so that it does not import the package).
PROCESS = Path(__file__).with_name("notebook_process.py")
#: Seconds a stopped notebook's process gets to shut its kernel down before it is killed.
STOP_S = 15.0


def _missing() -> bool:
    return any(importlib.util.find_spec(name) is None for name in REQUIRES)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """A Ctrl-C inside the block is noted and raised when it ends: a process started inside it
    is then known, so it can be stopped rather than left running. (Blocking the signal would not
    do: torch's threads would still take it.) Outside the main thread, signals cannot be handled
    here and the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if noted and callable(previous):  # as the handler in place would have (KeyboardInterrupt by default)
        previous(signal.SIGINT, None)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (nbclient then shuts the kernel down), SIGKILL after :data:`STOP_S` or at a
    second Ctrl-C (the kernel, orphaned, then exits by itself)."""
    try:
        proc.terminate()
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_notebook(path: Path, output_dir: Path, *, small: bool = False, timeout: int = 1800) -> Timing:
    """Execute one notebook (outputs discarded) in a process of its own, and time it, kernel
    start included. Ctrl-C stops that process and its kernel, then raises KeyboardInterrupt:
    an interrupted notebook has no result."""
    if _missing():
        raise RuntimeError(MISSING)
    env = {
        **os.environ,
        "TRUFOR_LAB_OUTPUT": str(output_dir),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("TRUFOR_LAB_SMALL", None)
    if small:
        env["TRUFOR_LAB_SMALL"] = "1"
    with tempfile.TemporaryDirectory(prefix="trufor_lab_notebook_") as tmp:
        result, log = Path(tmp) / "timing.json", Path(tmp) / "log.txt"
        command = [sys.executable, str(PROCESS), str(path), str(result), str(timeout), str(os.getpid())]
        proc = None
        t0 = time.perf_counter()
        try:
            with log.open("wb") as out, _sigint_held():
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches this process alone
                )
            proc.wait()
        finally:
            if proc is not None and proc.poll() is None:
                _stop(proc)
        return _timing(path.stem, result, log, proc.returncode, time.perf_counter() - t0)


def _timing(name: str, result: Path, log: Path, returncode: int, wall: float) -> Timing:
    """What the notebook's process recorded; a failure naming its last words when it recorded nothing."""
    try:
        d = json.loads(result.read_text())
        return Timing(name, float(d["seconds"]), bool(d["ok"]), str(d["error"]), float(d["cpu_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        last = f": {lines[-1][:200]}" if lines else ""
        return Timing(name, wall, False, f"the notebook's process stopped (exit status {returncode}){last}")


def _cell(text: str) -> str:
    """``text`` safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def results_block(
    timings: Sequence[Timing],
    device: str,
    note: str = "",
    small: bool = False,
    only: Sequence[str] = (),
    timed: bool = True,
    folder: str | None = None,
) -> str:
    """The Markdown block for one device (and ``--only`` selection; ``folder``: notebooks other
    than the shipped ones, named in the heading so that their block is their own)."""
    cpu = not device.startswith("GPU")
    bound = CPU_BOUND_S if cpu else None
    date = _dt.date.today().isoformat()
    options = (
        (" --time" if timed else "")
        + (" --small" if small else "")
        + (f" --only {' '.join(only)}" if only else "")
        + (f" --dir {folder}" if folder else "")
    )
    failed = sum(not t.ok for t in timings)
    lines = [
        f"### {device}{' (CI sizes)' if small else ''}{' (only ' + ' '.join(sorted(only)) + ')' if only else ''}"
        + (f" ({folder})" if folder else ""),
        "",
        f"{date}, `python -m trufor_lab.notebooks{options}`, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads." + (f" {note}" if note else ""),
        "",
        "| notebook | time (s) | kernel CPU (s) | " + ("bound (s) | within |" if bound else "status |"),
        "|---|---|---|---|" + ("---|" if bound else ""),
    ]
    for t in timings:
        status = "ok" if t.ok else f"FAILED: {_cell(t.error)[:120]}"
        if bound:
            within = "yes" if t.ok and t.seconds <= bound else "no"
            lines.append(
                f"| {t.name} | {t.seconds:.0f} | {t.cpu_seconds:.0f} | {bound:.0f} | {within if t.ok else status} |"
            )
        else:
            lines.append(f"| {t.name} | {t.seconds:.0f} | {t.cpu_seconds:.0f} | {status} |")
    total = sum(t.seconds for t in timings)
    cpu_total = sum(t.cpu_seconds for t in timings)
    if bound:
        lines.append(
            f"| **all** | {total:.0f} | {cpu_total:.0f} | {CPU_TOTAL_BOUND_S:.0f} | "
            f"{'yes' if total <= CPU_TOTAL_BOUND_S and not failed else 'no'}"
            + (f" ({failed} failed)" if failed else "")
            + " |"
        )
    else:
        lines.append(f"| **all** | {total:.0f} | {cpu_total:.0f} | {f'{failed} FAILED' if failed else 'ok'} |")
    return "\n".join(lines) + "\n"


def record(results_md: Path, block: str) -> None:
    """Put ``block`` into ``SECTION`` of ``results_md``, replacing the block of the same device."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    heading = block.splitlines()[0]
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n" + block
    else:
        start = text.index(SECTION) + len(SECTION)
        m = re.search(r"^## ", text[start:], flags=re.M)
        end = start + m.start() if m else len(text)
        section = text[start:end]
        blocks = re.split(r"(?m)^(?=### )", section)
        intro, rest = blocks[0], [b for b in blocks[1:] if b.splitlines()[0] != heading]
        section = intro + "".join(b.rstrip("\n") + "\n\n" for b in [block, *rest])
        text = text[:start] + section + text[end:]
    atomic_write_text(results_md, text.rstrip("\n") + "\n")  # an interrupted write keeps the old file


def _results_problem(path: Path) -> str | None:
    """Why ``--results`` cannot take the timings (``None`` when it can): a Markdown file, new or
    one with this tool's section, in a folder that exists."""
    if path.suffix.lower() != ".md":
        return "not a Markdown file (.md)"
    if path.is_dir():
        return "is a folder"
    if not path.parent.is_dir():
        return f"folder {printable(path.parent)} does not exist"
    if path.exists():
        try:
            text = path.read_text(errors="replace")
        except OSError as e:
            return f"cannot read ({e.strerror or e})"
        if text.strip() and not text.lstrip().startswith("# "):
            return "an existing file that is not a results page (it does not start with a '# ' heading)"
        if not os.access(path, os.W_OK):
            return "not writable"
    elif not os.access(path.parent, os.W_OK):
        return f"folder {printable(path.parent)} is not writable"
    return None


def run(args: argparse.Namespace) -> int:
    if _missing():
        print(f"error: {MISSING}", file=sys.stderr)
        return 2
    paths = find_notebooks(Path(args.dir), args.only)
    if not paths:
        print(f"error: no notebooks in {args.dir}" + (f" matching {args.only}" if args.only else ""), file=sys.stderr)
        return 1
    for name in args.only:
        if not find_notebooks(Path(args.dir), [name]):
            print(f"note: --only {name}: no notebook in {args.dir} starts with it", file=sys.stderr)
    if args.results is not None and not args.time:  # was ignored, unsaid
        print("error: --results is where --time records its timings: give --time too", file=sys.stderr)
        return 2
    args.results = args.results or str(ROOT / "bench" / "RESULTS.md")
    default_dir = os.path.realpath(args.dir) == os.path.realpath(ROOT / "notebooks")
    default_results = os.path.realpath(args.results) == os.path.realpath(ROOT / "bench" / "RESULTS.md")
    if args.time and not default_dir and default_results:  # would replace the shipped notebooks' times
        print(
            f"error: --time with --dir {printable(args.dir)} records other notebooks: give --results FILE for them",
            file=sys.stderr,
        )
        return 2
    why = _results_problem(Path(args.results)) if args.time else None
    if why:  # before any notebook runs: the timings would have nowhere to go
        print(f"error: --results {printable(args.results)}: {why}", file=sys.stderr)
        return 2
    try:
        return _run_all(args, paths)
    except KeyboardInterrupt:  # what was recorded before stays
        print("\nerror: interrupted", file=sys.stderr)
        return 130


def _run_all(args: argparse.Namespace, paths: list[Path]) -> int:
    device = device_label()
    print(f"{len(paths)} notebooks on {device}{' (CI sizes)' if args.small else ''}", flush=True)
    timings = []
    failed_record = False
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    with tempfile.TemporaryDirectory(prefix="trufor_lab_notebooks_") as tmp:
        for p in paths:
            print(f"{p.stem} ...", end=" ", flush=True)
            t = run_notebook(p, Path(tmp), small=args.small, timeout=math.ceil(args.timeout))
            print(
                f"{t.seconds:.0f} s (kernel CPU {t.cpu_seconds:.0f} s)" + ("" if t.ok else f"  FAILED: {t.error}"),
                flush=True,
            )
            timings.append(t)
            load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
            note = (
                (f"{args.note} " if args.note else "") + f"Load average (1 min) {load0:.1f} at the start, "
                f"{load1:.1f} after {t.name}"
                + ("" if len(timings) == len(paths) else f" ({len(timings)} of {len(paths)} notebooks so far)")
                + "."
            )
            other = None if os.path.realpath(args.dir) == os.path.realpath(ROOT / "notebooks") else args.dir
            block = results_block(timings, device, note, args.small, args.only, args.time, other)
            if args.time:  # after each notebook: an interrupted run still leaves its measurements
                try:
                    record(Path(args.results), block)
                except OSError as e:  # the notebooks go on; the timings are printed below
                    print(
                        f"error: --results {printable(args.results)}: cannot write ({e.strerror or e})", file=sys.stderr
                    )
                    failed_record = True
    print(block)
    if args.time and not failed_record:
        print(f"recorded in {args.results}")
    return 0 if all(t.ok for t in timings) and not failed_record else 1


def register(subparsers: Any) -> None:
    """Add ``notebooks`` to the ``trufor-lab`` subcommands."""
    p = subparsers.add_parser(
        "notebooks",
        help="run the teaching notebooks top to bottom (and time them)",
        description="Run notebooks/*.ipynb at their default parameters.",
    )
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time", action="store_true", help="record the times in --results (bench/RESULTS.md)")
    p.add_argument("--only", nargs="*", default=[], metavar="NAME", help="notebooks whose name starts with these")
    p.add_argument("--small", action="store_true", help="CI sizes (TRUFOR_LAB_SMALL=1) instead of the defaults")
    p.add_argument("--dir", default=str(ROOT / "notebooks"), help="folder of notebooks (default: the checkout's)")
    p.add_argument("--results", default=None, help="where --time records (default: bench/RESULTS.md)")
    p.add_argument("--note", default="", help="a sentence added to the recorded block (e.g. 'machine shared')")
    p.add_argument("--timeout", type=positive_seconds, default=1800, help="seconds per cell before giving up")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trufor_lab.notebooks", description=__doc__.splitlines()[0])
    _arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:  # a second one while the first was handled (the kernel's shutdown): same exit
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
