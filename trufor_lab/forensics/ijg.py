"""The IJG (libjpeg) standard quantisation tables and the quality scaling libjpeg applies to them
(JPEG Annex K.1), with the zig-zag order of the coefficients: what a quality estimate compares
a file's tables against (:mod:`trufor_lab.forensics.jpeg`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["IJG_CHROMINANCE", "IJG_LUMINANCE", "ZIGZAG", "ijg_scale", "ijg_table", "ijg_stack"]


def _zigzag() -> np.ndarray:
    """Natural (row-major) index of each zig-zag position (JPEG Figure A.6)."""
    order = []
    for s in range(15):
        rows = range(max(0, s - 7), min(s, 7) + 1)
        # odd anti-diagonals run down-left (row increasing), even ones up-right
        for i in rows if s % 2 else reversed(rows):
            order.append(i * 8 + (s - i))
    return np.array(order, dtype=np.intp)


#: ``ZIGZAG[k]`` is the row-major index of the k-th coefficient in zig-zag (file) order.
ZIGZAG: np.ndarray = _zigzag()
ZIGZAG.setflags(write=False)

#: Annex K.1 base tables used by libjpeg (natural order).
IJG_LUMINANCE = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.int64,
).reshape(8, 8)
IJG_CHROMINANCE = np.array(
    [
        17,
        18,
        24,
        47,
        99,
        99,
        99,
        99,
        18,
        21,
        26,
        66,
        99,
        99,
        99,
        99,
        24,
        26,
        56,
        99,
        99,
        99,
        99,
        99,
        47,
        66,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
    ],
    dtype=np.int64,
).reshape(8, 8)
for _t in (IJG_LUMINANCE, IJG_CHROMINANCE):
    _t.setflags(write=False)


def ijg_scale(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: percentage applied to the Annex K tables."""
    q = min(max(int(quality), 1), 100)
    return 5000 // q if q < 50 else 200 - 2 * q


def ijg_table(quality: int, chroma: bool = False, force_baseline: bool = True) -> np.ndarray:
    """The 8x8 table libjpeg writes at ``quality`` (natural order, uint16)."""
    base = IJG_CHROMINANCE if chroma else IJG_LUMINANCE
    t = (base * ijg_scale(quality) + 50) // 100
    return np.clip(t, 1, 255 if force_baseline else 32767).astype(np.uint16)


@lru_cache(maxsize=1)
def ijg_stack() -> np.ndarray:
    """(2 baseline variants, 100 qualities, 2 luma/chroma, 8, 8) candidate tables."""
    return np.array(
        [[[ijg_table(q, c, fb) for c in (False, True)] for q in range(1, 101)] for fb in (True, False)], dtype=np.int64
    )
