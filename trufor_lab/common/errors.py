"""The project's one-line errors: a message names the file and the reason on one line."""

from __future__ import annotations


def escaped(text: str) -> str:
    """``text`` with control characters (a newline, a terminal escape) written as escapes."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


class OneLineError(Exception):
    """An error whose text is one line however odd the file name in it: control characters (a
    newline, a terminal escape) in a name are shown escaped, in a notebook as on a terminal."""

    def __str__(self) -> str:
        return escaped(super().__str__())
