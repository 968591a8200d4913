"""Whether an EXIF thumbnail shows the same picture as the image it is stored in.

Both are brought to the thumbnail's grid (64 px a side at most) and smoothed, so that sensor
noise and JPEG rounding, which differ between the two, weigh little. Two measures then judge:
the Pearson correlation (the shapes agree) and the mean absolute difference relative to the
picture's dynamic range (the levels agree), plus the share of the grid that differs strongly
(an edited region big enough to see at thumbnail size). A scene with little structure at that
scale (a grey wall, the sky, a near-black frame) has a correlation made of noise: it is judged
by levels alone, never called a mismatch because its noise does not correlate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trufor_lab.common.imaging import resize

__all__ = ["ThumbnailComparison", "compare_thumbnail", "trim_borders"]

#: Correlation below which structured content is called different.
MIN_CORRELATION = 0.5
#: Mean absolute difference, as a share of the dynamic range, above which the levels disagree.
MAX_RELATIVE_DIFFERENCE = 0.2
#: A grid cell differing by more than this share of the dynamic range has changed...
CHANGE_LEVEL = 0.12
#: ... and more than this share of changed cells is an edit (or another framing).
MAX_CHANGED_SHARE = 0.03


@dataclass(frozen=True)
class ThumbnailComparison:
    aspect_mismatch: bool
    correlation: float  # Pearson, on the smoothed grids (noise-made when ``flat``)
    difference: float  # mean absolute grey-level difference, smoothed grids (0..255)
    flat: bool  # too little structure at thumbnail scale to judge shapes: levels only
    mismatch: bool
    #: Degrees clockwise the image was turned after its thumbnail was made (90, 180, 270), when
    #: the thumbnail matches it so turned (an app applying the EXIF orientation); 0 otherwise.
    turned: int = 0


#: A letterbox bar: its mean grey level below this...
BAR_MEAN = 24.0
#: ... and 95 % of its pixels below this (camera bars are black; JPEG ringing lifts a few).
BAR_HIGH = 40.0


def _letterbox(a: np.ndarray, aspect: float) -> np.ndarray | None:
    """The picture inside ``a`` when ``a`` is the main image's ``aspect`` (width / height) fitted
    into the thumbnail and centred between dark bars, as cameras store a 3:2 or 16:9 photo in
    160×120; ``None`` when the thumbnail has that aspect already or the bars are not there.
    Where the bars must be is known from the two aspects: a picture whose own edge is dark (a
    night sky against the top bar) is not trimmed into, as trimming every dark row did."""
    th, tw = a.shape
    if abs(math.log((tw / th) / aspect)) <= math.log(1.08):
        return None
    rows = tw / th < aspect  # the picture is wider than the thumbnail: bars above and below
    side, other = (th, tw) if rows else (tw, th)
    inner = int(round(other / aspect)) if rows else int(round(other * aspect))
    start = (side - inner) // 2
    if inner < 2 or start < 3:
        return None
    # the bars, 2 px clear of the picture's edge (its rounding and the JPEG's ringing)
    bars = [a[: start - 2], a[start + inner + 2 :]] if rows else [a[:, : start - 2], a[:, start + inner + 2 :]]
    if any(b.size == 0 or b.mean() >= BAR_MEAN or np.percentile(b, 95) >= BAR_HIGH for b in bars):
        return None
    return a[start : start + inner] if rows else a[:, start : start + inner]


def trim_borders(a: np.ndarray, aspect: float | None = None) -> np.ndarray:
    """Drop near-black letterbox bars (cameras pad 3:2 thumbnails into 160×120). With the main
    image's ``aspect`` (width / height), the bars are looked for where that aspect puts them
    first; otherwise only a trim that brings the thumbnail closer to it is kept: a dark part
    of the picture itself (a night sky) is not a bar."""
    if aspect is not None and (boxed := _letterbox(a, aspect)) is not None:
        return boxed

    def dark(v: np.ndarray) -> np.ndarray:
        return v < 20

    rows, cols = dark(a.mean(axis=1)), dark(a.mean(axis=0))
    r0, r1, c0, c1 = 0, a.shape[0], 0, a.shape[1]
    while r0 < r1 and rows[r0]:
        r0 += 1
    while r1 > r0 and rows[r1 - 1]:
        r1 -= 1
    while c0 < c1 and cols[c0]:
        c0 += 1
    while c1 > c0 and cols[c1 - 1]:
        c1 -= 1
    if (r1 - r0) < a.shape[0] // 2 or (c1 - c0) < a.shape[1] // 2:
        return a  # mostly dark: do not trust the trimming
    if aspect is not None:
        before = abs(math.log((a.shape[1] / a.shape[0]) / aspect))
        if abs(math.log(((c1 - c0) / (r1 - r0)) / aspect)) >= before:
            return a  # the dark rows or columns are the picture's: the thumbnail was whole
    return a[r0:r1, c0:c1]


def _smooth(a: np.ndarray) -> np.ndarray:
    """3×3 box filter, edges repeated."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def _noise(a: np.ndarray, smooth: np.ndarray) -> float:
    """Robust spread of what the smoothing removed (noise, rounding, fine texture)."""
    r = (a - smooth).ravel()
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def compare_thumbnail(thumb: np.ndarray, main: np.ndarray, main_size: tuple[int, int]) -> ThumbnailComparison:
    """Compare a grey thumbnail with the grey (possibly already downscaled) main image. A
    thumbnail that does not match, but matches once turned by a quarter or half turn, is the
    preview of the same picture before an app turned its pixels (applying the EXIF orientation
    and resetting the tag, keeping the old thumbnail): ``turned`` says by how much, and it is
    no mismatch (a rotation is not an edit of the content)."""
    c = _compare(thumb, main, main_size)
    if not c.mismatch:
        return c
    for quarter in (1, 2, 3):  # the image turned clockwise: its old thumbnail, turned likewise
        t = _compare(np.rot90(thumb, -quarter), main, main_size)
        if not t.mismatch:
            return ThumbnailComparison(False, t.correlation, t.difference, t.flat, False, 90 * quarter)
    return c


def _compare(thumb: np.ndarray, main: np.ndarray, main_size: tuple[int, int]) -> ThumbnailComparison:
    t = trim_borders(thumb, main_size[0] / main_size[1])
    th, tw = t.shape
    aspect = abs(math.log((tw / th) / (main_size[0] / main_size[1]))) > math.log(1.08)
    # the coarser of the two grids (at most 64): the main image may come decoded at 1/8 scale
    # (a 100 px JPEG: 13 px), and upsampling it against a sharp thumbnail made edges "changes"
    h, w = max(2, min(th, main.shape[0], 64)), max(2, min(tw, main.shape[1], 64))
    a = resize(np.float32(t), (h, w), "bilinear").astype(np.float64)
    b = resize(np.float32(main), (h, w), "bilinear").astype(np.float64)
    sa, sb = _smooth(a), _smooth(b)
    # what rounding and noise alone can make the two grids differ by, in grey levels
    tol = 3.0 + 2.0 * min(_noise(a, sa), _noise(b, sb))
    spread = max(float(np.percentile(s, 99) - np.percentile(s, 1)) for s in (sa, sb))
    d = np.abs(sa - sb)
    diff = float(d.mean())
    ca, cb = sa - sa.mean(), sb - sb.mean()
    den = math.sqrt(float((ca * ca).sum()) * float((cb * cb).sum()))
    corr = float((ca * cb).sum() / den) if den > 1e-9 else 0.0
    flat = spread < 4.0 * tol
    if flat:  # nothing to correlate: the levels must agree within what noise explains
        mismatch = diff > 2.0 * tol
    else:  # local changes, once a brightness/contrast difference of the whole thumbnail is taken out
        gain = float((ca * cb).sum() / max(float((cb * cb).sum()), 1e-9))
        resid = np.abs(ca - gain * cb)
        changed = float(np.mean(resid > max(2.0 * tol, CHANGE_LEVEL * spread)))
        mismatch = corr < MIN_CORRELATION or diff > MAX_RELATIVE_DIFFERENCE * spread or changed > MAX_CHANGED_SHARE
    return ThumbnailComparison(aspect, corr, diff, flat, bool(aspect or mismatch))
