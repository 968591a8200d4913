"""Row strips of a stride-1 convolution: which input rows each band of output rows reads.

Computing a ``(2 pad + 1)``-row convolution a band of output rows at a time reads ``pad`` halo
rows on each side; where those run past the image's top or bottom the convolution pads by
itself (the same number of rows on both sides; its surplus rows are dropped), inside it pads
only the columns. Each output pixel then sums the same
inputs in the same order as the whole-map convolution. Used by Noiseprint++'s row strips
(:func:`~trufor_lab.model.noiseprint.conv_rows`) and the Mix-FFN's token bands
(:class:`~trufor_lab.model.segformer.MixFFN`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

__all__ = ["RowStrip", "row_strips"]


@dataclass(frozen=True)
class RowStrip:
    """Output rows ``[r0, r1)`` from input rows ``[a, z)`` convolved with ``pad_rows`` rows of
    padding above and below; the strip is the convolution's output rows ``[offset, offset + r1 - r0)``."""

    r0: int
    r1: int
    a: int
    z: int
    pad_rows: int
    offset: int


def row_strips(height: int, rows: int, pad: int) -> Iterator[RowStrip]:
    """The strips of ``rows`` output rows (the last one shorter) of a ``height``-row map."""
    if rows < 1 or pad < 0:
        raise ValueError(f"row_strips: rows must be >= 1 and pad >= 0, got rows={rows}, pad={pad}")
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        a, z = max(0, r0 - pad), min(height, r1 + pad)
        ph = max(0, pad - r0, r1 + pad - height)  # the rows missing above or below, if any
        yield RowStrip(r0, r1, a, z, ph, r0 - a - pad + ph)
