"""How the command line speaks: one line per problem on stderr, never a traceback."""

from __future__ import annotations

import sys


def error(msg: object) -> None:
    """``error: <first non-empty line of msg>`` on stderr (an exception's name when it has no text)."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    text = lines[0] if lines else (type(msg).__name__ if isinstance(msg, BaseException) else "")
    print(f"error: {text}", file=sys.stderr)


def note(msg: object) -> None:
    """``note: <msg>`` on stderr."""
    print(f"note: {msg}", file=sys.stderr)
