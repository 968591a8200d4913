"""How the command line speaks: one line per problem on stderr, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trufor_lab.common.device import DEVICE_NAMES
from trufor_lab.common.errors import escaped
from trufor_lab.common.files import unwritable_reason
from trufor_lab.inference.load import model_notice, selected_info, untrained_words
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.inference.weights import HOW_TO_GET, WeightsError, WeightsInfo, describe, named_by, select
from trufor_lab.lab.datasets import DatasetError
from trufor_lab.model import CheckpointError

#: ``--weights`` of every command, with the search order of :func:`trufor_lab.inference.weights.select`.
WEIGHTS_HELP = (
    "TruFor checkpoint (default: $TRUFOR_WEIGHTS, then trufor.pth.tar in the per-user cache, then in the "
    "shipped weights/ folder, then the demo model; `trufor-lab weights info` shows where)"
)


def device_help(extra: str = "") -> str:
    """The help of every ``--device``: the names :func:`~trufor_lab.common.device.resolve_device`
    takes (:data:`~trufor_lab.common.device.DEVICE_NAMES`, which its error lists too); ``extra``
    ends the sentence on the default (``'; ...'``)."""
    names = f"{', '.join(DEVICE_NAMES[:-1])} or {DEVICE_NAMES[-1]}"
    return f"{names} (default: auto, a CUDA GPU when there is one, else the CPU{extra})"


PRECISION_HELP = "float32 (the default) or float64 (agrees with the official code's float64 outputs to 1e-6)"


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (``inf``, ``nan``, 0 and negative
    timeouts gave tracebacks or C++ stack frames, or turned the limit off)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text!r}")
    return v


def printable(text: object) -> str:
    """``text`` that any terminal encoding can take: a file name that is not UTF-8 (Python keeps
    its bytes as lone surrogates) is written escaped (``\\udce9``) instead of stopping a batch
    with UnicodeEncodeError, and control characters (terminal escapes) are shown escaped."""
    return escaped(str(text))  # a lone surrogate is not printable: escaped as the rest


def left_out_words(others: list[Path], output: str) -> str:
    """The summary's words for the files in the input folders not recognised as images ('' for
    none), so that none is left out unsaid, naming the first two (escaped: a name may hold a
    terminal escape); the outputs' own (``.npz`` under ``output``) not counted."""
    out = os.path.realpath(output)
    real: dict[str, Path] = {}
    for f in others:  # each file once (two links to one file are one file), by the name it was found under
        real.setdefault(os.path.realpath(f), Path(f))
    left = sorted(str(f) for r, f in real.items() if not (r.lower().endswith(".npz") and Path(r).is_relative_to(out)))
    if not left:
        return ""
    names = [printable(Path(f).name) for f in left[:2]] + ([f"and {len(left) - 2} more"] if len(left) > 2 else [])
    n = len(left)
    return f"; {n} other file{'s' * (n > 1)} left out ({', '.join(names)}): not recognised as images"


#: The project's own errors: one line, ``<name>: <reason>``, written whole (a name may hold a newline).
OWN_ERRORS = (ImageError, WeightsError, CheckpointError, DatasetError)


def first_line(e: BaseException) -> str:
    """The first non-empty line of a library exception's text (the rest is hints: a CUDA
    error's "compile with TORCH_USE_CUDA_DSA"), or its type's name when it has no text."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def error(msg: object) -> None:
    """``error: <msg>`` on stderr, on one line, escaped whole (:func:`printable`): a newline in
    a file name can neither cut the name short nor drop the reason after it. Text and the
    project's own errors (:data:`OWN_ERRORS`) are written whole; another exception gives its
    :func:`first_line`."""
    own = isinstance(msg, OWN_ERRORS) and str(msg).strip()
    text = first_line(msg) if isinstance(msg, BaseException) and not own else str(msg)
    print(f"error: {printable(text)}", file=sys.stderr)


def output_folder_problem(output: str) -> str | None:
    """Why ``--output`` cannot be the folder a run writes into (an existing file, a file on the
    way, no permission), said once before any work; ``None`` when it can."""
    if os.path.exists(output) and not os.path.isdir(output):
        return f"--output {output} is an existing file, not a folder; give a folder"
    why = unwritable_reason(output)
    return None if why is None else f"--output {output}: cannot write there ({why})"


def note(msg: object) -> None:
    """``note: <msg>`` on stderr."""
    print(f"note: {printable(msg)}", file=sys.stderr)


def _selected(weights: str | None, demo: bool) -> WeightsInfo | None:
    """What a load would record of the weights these arguments pick (the demo model named by its
    path is the demo model); a file the safe reader refuses now is said as the search found it
    (unverified); ``None`` when there is none."""
    try:
        return selected_info(weights, demo=demo)
    except CheckpointError:
        with contextlib.suppress(WeightsError, OSError):
            return describe(*select(weights, demo=demo))
    except (WeightsError, OSError):
        pass
    return None


def weights_note(weights: str | None, demo: bool = True) -> None:
    """The caveat a loaded demo or unverified model prints, for results whose model was not
    loaded here (outputs reused, or made by other ranks): numbers never go out bare. ``demo``
    as the command's ``--no-demo`` says (the weights its load would pick)."""
    info = _selected(weights, demo)
    if info is not None and (info.kind == "demo" or not info.verified):  # heads never trained: as the banner says
        named = f"{Path(info.path).name}{untrained_words(info)}"
        by = f" named by {named_by(weights)}" if named_by(weights) else ""
        note(f"these results were made with {info.kind} weights ({named}){by}: {info.note or HOW_TO_GET}")


def model_note(model: Any, weights: str | None) -> None:
    """The banner of a model loaded for ``--weights`` (:func:`model_notice`), as a note; a file
    that ``$TRUFOR_WEIGHTS`` named is said so (a user who set it and forgot saw only its name)."""
    notice = model_notice(model, named_by(weights))
    if notice:
        note(notice)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, a job scheduler, ``kill``) and SIGHUP (the terminal closed) handled
    as Ctrl-C is: training saves the step in progress, an atomic write removes its temporary
    file (the process was killed mid-write and left a 114 MB ``.last.pt.*.tmp``), a batch says
    what it wrote. A SIGHUP ignored (``nohup``) stays ignored. Main thread only; restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        interrupt = signal.getsignal(signal.SIGINT)
        if callable(interrupt):  # training's "finish the step", or Python's KeyboardInterrupt
            interrupt(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job): a termination still stops
            raise KeyboardInterrupt

    # SIGHUP too (the terminal closed, an ssh connection dropped), unless ignored (`nohup`)
    hangup = getattr(signal, "SIGHUP", None)
    stops = [signal.SIGTERM] + ([hangup] if hangup and signal.getsignal(hangup) == signal.SIG_DFL else [])
    previous = {s: signal.signal(s, on_term) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_command(args: argparse.Namespace) -> int:
    """``args.func(args)`` as every entry point runs it (``trufor-lab ...`` and the ``python -m``
    modules): an empty ``--output`` refused (it wrote into the current folder), Ctrl-C and a
    closed pipe (``... | head``) one line, never a traceback."""
    if isinstance(getattr(args, "output", None), str) and not args.output.strip():
        print("error: --output is empty (an unset variable?)", file=sys.stderr)
        return 2
    try:
        with _terminate_as_interrupt():
            return args.func(args)
    except KeyboardInterrupt as e:  # a command that saved its work says where (training)
        with contextlib.suppress(OSError):  # a terminal gone (SIGHUP): EIO, and still interrupted
            print(f"error: {e}" if str(e) else "error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left; nothing more to flush
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
