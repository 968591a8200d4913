"""Arrays as drawn. Large ones at screen size: one step for every panel of a picture, block means
instead of a stride (a noise-like map strided showed twice the contrast it has on screen), colour
limits from the array's own values, a mask's outline on the averaged grid; a picture in a dtype
matplotlib draws as it reads (:func:`as_picture`). Display only: no number computed from these
arrays is reported."""

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
    # every k-th row, then every k-th column, added whole: np.add.reduceat (the same sums, to
    # rounding) took most of a 12 MP figure's time
    by_rows = np.zeros((rows.size,) + a.shape[1:], np.float64)
    for k in range(step):
        part = a[k::step]
        by_rows[: part.shape[0]] += part
    sums = np.zeros((rows.size, cols.size) + a.shape[2:], np.float64)
    for k in range(step):
        part = by_rows[:, k::step]
        sums[:, : part.shape[1]] += part
    counts = np.outer(np.diff(rows, append=a.shape[0]), np.diff(cols, append=a.shape[1]))
    mean = sums / counts.reshape(counts.shape + (1,) * (a.ndim - 2))
    return np.rint(mean).astype(a.dtype) if a.dtype.kind in "iu" else mean


def as_picture(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``image`` in a form matplotlib draws as it is read (uint8, or float in 0..1): uint8 and
    floats in 0..1 as given, 16-bit scaled to 8 bits (``round(v / 257)``) and booleans as 0/255
    (both as trufor_lab reads an array), other integers within 0..255 as 8-bit values. Anything
    else is refused in one line naming ``name``: matplotlib clipped a 16-bit or a 0..255 float
    picture (drawn white) and drew a grey int64 one on 0..2**63 (black). A fourth (alpha) channel
    is dropped, as the analysis drops it (transparent pixels were drawn as the page)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype == np.uint8 or a.size == 0:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:
        return np.rint(a / 257.0).astype(np.uint8)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: the image holds NaN or infinite values: a picture must hold finite ones")
    if a.dtype.kind not in "iuf":  # complex, object, text, dates: no values to draw (said "values 0..0")
        raise ValueError(
            f"{name}: the image is a {a.dtype} array, not a picture's dtype; a picture is drawn from uint8 "
            "(0..255), uint16 (0..65535), boolean or float 0..1 values"
        )
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind == "f" and 0 <= lo and hi <= 1:
        return a
    if a.dtype.kind in "iu" and 0 <= lo and hi <= 255:
        return a.astype(np.uint8)
    raise ValueError(
        f"{name}: the image holds {a.dtype} values {lo:g}..{hi:g}; a picture is drawn from uint8 (0..255), "
        "uint16 (0..65535), boolean or float 0..1 values: convert it first (np.uint8 for 0..255 values)"
    )


def image_kwargs(image: np.ndarray) -> dict:
    """``imshow`` arguments for a picture (:func:`as_picture`): a 2-D (grey) image in grey on its
    full range (0..255 for uint8, 0..1 for floats), not autoscaled viridis."""
    if np.ndim(image) != 2:
        return {}
    return dict(cmap="gray", vmin=0, vmax=255 if np.asarray(image).dtype == np.uint8 else 1)


def show_image(ax, image: np.ndarray, name: str = "image", **kwargs):
    """``ax.imshow`` of a picture as :func:`as_picture` takes it (refused in one line naming
    ``name`` otherwise), grey images drawn in grey (:func:`image_kwargs`)."""
    if np.ndim(image) == 3 and np.shape(image)[2] == 1:
        image = image[..., 0]
    image = as_picture(image, name)
    return ax.imshow(image, **{**image_kwargs(image), **kwargs})


def outline(ax, mask: np.ndarray, color: str = "yellow", linewidth: float = 1.0) -> None:
    """``mask`` outlined on ``ax``: a 0/1 mask at 0.5, one averaged by :func:`for_display` (each
    block's fraction set) around every block holding a set pixel (a region thinner than half a
    block had no outline); nothing when nothing or everything is set, or a side is under 2 pixels
    (a contour needs 2x2)."""
    m = np.asarray(mask, float)
    least = m[m > 0]  # averaged: a block's forged fraction; its smallest is one set pixel
    level = min(0.5, 0.5 * float(least.min())) if least.size else 0.5  # 0.5 on a 0/1 mask
    inside = m >= level
    if min(inside.shape) >= 2 and inside.any() and not inside.all():
        ax.contour(m, levels=[level], colors=color, linewidths=linewidth)
