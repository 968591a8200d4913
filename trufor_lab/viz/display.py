"""Large arrays at screen size: one step for every panel of a picture, block means instead of a
stride (a noise-like map strided showed twice the contrast it has on screen), colour limits from
the array's own values. Display only: no number computed from these arrays is reported."""

from __future__ import annotations

import numpy as np


def robust_limits(a: np.ndarray, pct: float = 1.0) -> tuple[float, float]:
    """Colour limits at the ``pct`` and ``100 - pct`` percentiles of the finite values (one NaN
    made both NaN: a flat black panel); (0, 1) when nothing is finite."""
    v = np.asarray(a, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [pct, 100 - pct])
    return float(lo), float(hi) if hi > lo else float(lo) + 1e-6


#: Longest side, in pixels, of an array as drawn: larger ones are averaged down (display only).
MAX_DISPLAY_SIDE = 2048


def display_stride(shape: tuple[int, ...], max_side: int = MAX_DISPLAY_SIDE) -> int:
    """The step that brings an ``(H, W, ...)`` array to at most ``max_side`` pixels on its long side."""
    return max(1, -(-max(int(shape[0]), int(shape[1])) // max_side))


def for_display(a: np.ndarray | None, step: int) -> np.ndarray | None:
    """``a`` averaged over ``step`` x ``step`` blocks for drawing (:func:`display_mean`; ``None``
    stays ``None``), every panel of a picture with one ``step`` (:func:`display_stride`): aligned."""
    return a if a is None or step == 1 else display_mean(np.asarray(a), step)


def display_limits(a: np.ndarray, step: int, pct: float = 1.0) -> tuple[float, float]:
    """:func:`robust_limits` of a map drawn with :func:`for_display`, from every ``step``-th value:
    the averaged panel's own values spread less (its limits gave back a stride's contrast)."""
    return robust_limits(a if step == 1 else np.asarray(a)[::step, ::step], pct)


def display_mean(a: np.ndarray, step: int) -> np.ndarray:
    """A map or (H, W, C) picture averaged over ``step`` x ``step`` blocks (the last ones partial)
    on the grid of ``a[::step, ::step]``: it looks as the whole array drawn does (a noise-like map
    strided had twice its contrast); a block holding NaN is NaN, an integer picture keeps its dtype
    (rounded), a boolean mask gives each block's fraction set."""
    if step == 1:
        return a
    rows, cols = np.arange(0, a.shape[0], step), np.arange(0, a.shape[1], step)
    sums = np.add.reduceat(np.add.reduceat(a, rows, axis=0, dtype=np.float64), cols, axis=1)
    counts = np.outer(np.diff(rows, append=a.shape[0]), np.diff(cols, append=a.shape[1]))
    mean = sums / counts.reshape(counts.shape + (1,) * (a.ndim - 2))
    return np.rint(mean).astype(a.dtype) if a.dtype.kind in "iu" else mean
