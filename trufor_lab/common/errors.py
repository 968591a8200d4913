"""The project's one-line errors: a message names the file and the reason on one line; a
hostile file's thousand warnings become a few lines (:func:`grouped`)."""

from __future__ import annotations

import re


def escaped(text: str) -> str:
    """``text`` with control characters (a newline, a terminal escape) written as escapes."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


class OneLineError(Exception):
    """An error whose text is one line however odd the file name in it: control characters (a
    newline, a terminal escape) in a name are shown escaped, in a notebook as on a terminal."""

    def __str__(self) -> str:
        return escaped(super().__str__())


def grouped(lines: list[str], limit: int = 40) -> list[str]:
    """Each kind of line once (the same words, other numbers), saying how many more there were;
    at most ``limit`` kinds, then one line counting the rest. A crafted file can make a decoder
    warn 60 000 times ("Skipping tag 4096", "... 4097"): listed whole, that was a 29 MB report."""
    kinds: dict[str, list] = {}
    for text in lines:
        key = re.sub(r"\d+", "#", text)
        if key in kinds:
            kinds[key][1] += 1
        else:
            kinds[key] = [text, 0]
    items = list(kinds.values())
    out = [f"{text} (and {more} more like it)" if more else text for text, more in items]
    if len(items) > limit:
        rest = items[limit - 1 :]
        n = sum(1 + more for _, more in rest)
        out = [*out[: limit - 1], f"… and {n} more of {len(rest)} other kinds, not listed"]
    return out
