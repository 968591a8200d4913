"""How the command line speaks: one line per problem on stderr, never a traceback."""

from __future__ import annotations

import sys


def error(msg: object) -> None:
    """``error: <first line of msg>`` on stderr."""
    text = str(msg)
    print(f"error: {text.splitlines()[0] if text else text}", file=sys.stderr)


def note(msg: object) -> None:
    """``note: <msg>`` on stderr."""
    print(f"note: {msg}", file=sys.stderr)
