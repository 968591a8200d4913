"""How the command line speaks: one line per problem on stderr, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from trufor_lab.inference.weights import HOW_TO_GET, WeightsError, describe, select

#: ``--weights`` of every command, with the search order of :func:`trufor_lab.inference.weights.select`.
WEIGHTS_HELP = (
    "TruFor checkpoint (default: $TRUFOR_WEIGHTS, then trufor.pth.tar in the per-user cache, then in the "
    "shipped weights/ folder, then the demo model; `trufor-lab weights info` shows where)"
)


def printable(text: object) -> str:
    """``text`` that any terminal encoding can take: a file name that is not UTF-8 (Python keeps
    its bytes as lone surrogates) is written escaped (``\\udce9``) instead of stopping a batch
    with UnicodeEncodeError, and control characters (terminal escapes) are shown escaped."""
    s = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c in "\t" else repr(c)[1:-1] for c in s)


def error(msg: object) -> None:
    """``error: <first non-empty line of msg>`` on stderr (an exception's name when it has no text)."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    text = lines[0] if lines else (type(msg).__name__ if isinstance(msg, BaseException) else "")
    print(f"error: {printable(text)}", file=sys.stderr)


def note(msg: object) -> None:
    """``note: <msg>`` on stderr."""
    print(f"note: {printable(msg)}", file=sys.stderr)


def weights_note(weights: str | None) -> None:
    """The caveat a loaded demo or unverified model prints, for results whose model was not
    loaded here (outputs reused, or made by other ranks): numbers never go out bare."""
    try:
        info = describe(*select(weights))
    except (WeightsError, OSError):
        return
    if info.kind == "demo" or not info.verified:
        note(f"these results were made with {info.kind} weights ({Path(info.path).name}): {info.note or HOW_TO_GET}")
