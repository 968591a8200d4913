"""A small rotation between two versions of one picture (a copy straightened, tilted or
re-photographed a little): found on B as lined up with A (:func:`trufor_lab.casebook.align.line_up`)
and undone when it leaves clearly less difference. Lined up unturned, a copy turned by 0.5 to 3
degrees left its edges 'changed' (4 to 12 % of the pixels) and was called lined up; turned and
cropped to its frame (as straightening tools do), it was not lined up at all: the turn is then
searched together with the crop's zoom."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from PIL import Image

from trufor_lab.casebook.align import Alignment, _correlation, _gray, _peak, _residual, _shift, shift_threshold

__all__ = ["TILT_FIT", "untilt"]

#: The angles searched (degrees, either way), first coarse then around the best.
TILT_MAX = 5.0
TILT_COARSE = tuple(float(x) for x in np.arange(-TILT_MAX, TILT_MAX + 0.001, 0.5))
TILT_FINE = tuple(float(x) for x in np.arange(-0.25, 0.251, 0.05))
#: A turn is undone when it leaves at most this fraction of the difference the unturned
#: alignment left (JPEG's own difference stays; a rotation's misaligned edges go).
TILT_FIT = 0.75
#: With no alignment unturned, the zooms tried with each turn (a straightened copy is cropped
#: to its frame: enlarged up to about 25 %), then finer around the best.
TILT_ZOOMS = tuple(float(math.exp(x)) for x in np.linspace(-0.22, 0.22, 23))
TILT_FINE_ZOOM = tuple(float(x) for x in np.linspace(-0.01, 0.01, 9))
#: The search works on pictures of this long side (the turn and zoom together: half of it).
TILT_SIDE = 512
#: Turns smaller than this (degrees) are not reported: they move no pixel by more than about
#: one pixel on the search's picture.
TILT_MIN = 0.1
#: For B lined up unturned, the search (20 turns, then up to 460 turns and zooms) runs only when
#: the difference B leaves grows with the distance from the centre by at least this share
#: (:func:`_radial_share`), as a small turn's does: turned copies of real photos (0.3 to 3 degrees,
#: cropped or not, edited at the centre or not) showed 0.2 to 0.9; local edits, re-saves, tone
#: changes and unrelated pictures 0.06 or less. It ran on every pair with a local edit. B not lined
#: up is searched whatever its share: a turn with a crop moves fine detail (foliage, gravel) by
#: more than its own size, and a difference that no longer grows with the move showed -0.26 to 0.1
#: (a phone photo of trees turned 0.3 to 3 degrees and cropped 5 %: no longer lined up at all).
TILT_RADIAL = 0.1
#: The blocks (a side) that :func:`_radial_share` compares.
RADIAL_BLOCKS = 16


def _turn(img: Image.Image, degrees: float, zoom: float, resample: int) -> Image.Image:
    """``img`` turned anticlockwise by ``degrees`` and scaled by ``zoom`` about its centre, on
    its own grid (PIL's rotation, with the scale in its matrix)."""
    w, h = img.size
    cx, cy = w / 2, h / 2
    t = -math.radians(degrees)
    a, b = math.cos(t) / zoom, math.sin(t) / zoom
    d, e = -b, a
    return img.transform((w, h), Image.AFFINE, (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy), resample)


def _rotated(x: np.ndarray, degrees: float, valid: np.ndarray, zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``x`` turned anticlockwise by ``degrees`` (and scaled by ``zoom``) about its centre
    (bicubic, same size), and where it has data (``valid`` turned, shrunk by the interpolation's
    reach)."""
    img = np.asarray(_turn(Image.fromarray(np.ascontiguousarray(x)), degrees, zoom, Image.BICUBIC))
    mask = _turn(Image.fromarray(np.where(valid, 255, 0).astype(np.uint8)), degrees, zoom, Image.BILINEAR)
    return img, np.asarray(mask) == 255


def _shrunk(x: np.ndarray, k: float) -> np.ndarray:
    if k >= 1:
        return x
    h, w = x.shape[:2]
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(x)).resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR)
    )


def _shrunk_mask(valid: np.ndarray, side: int) -> np.ndarray:
    return _shrunk(np.where(valid, 255, 0).astype(np.uint8), min(1.0, side / max(valid.shape))) == 255


def _placed(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, degrees: float, zoom: float = 1.0
) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[int, int], float]:
    """B turned by ``degrees`` (scaled by ``zoom``) and moved where it correlates best with A and
    where it has data there (None when the move is not reliable), the move, and its peak."""
    turned, ok = _rotated(b, degrees, valid, zoom) if degrees or zoom != 1 else (b, valid)
    r = _correlation(a, turned)
    (dy, dx), peak = _peak(r)
    if peak < shift_threshold(r) or abs(dy) > a.shape[0] / 8 or abs(dx) > a.shape[1] / 8:
        return None, (dy, dx), peak
    moved, there = _shift(turned, dy, dx)
    return (moved, there & _shift(ok.astype(np.uint8), dy, dx)[0].astype(bool)), (dy, dx), peak


def _fit(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, degrees: float, zoom: float = 1.0
) -> tuple[float, tuple[int, int], float]:
    """What B turned by ``degrees`` (scaled by ``zoom``) and moved where it correlates best
    leaves (mean |A - B|, 0..1; inf when the move is not reliable), the move, and its peak."""
    placed, move, peak = _placed(a, b, valid, degrees, zoom)
    return (math.inf if placed is None else _residual(a, *placed)), move, peak


def _radial_share(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """How much of the difference B leaves grows with the distance from the centre, as a small
    turn's or zoom's does (it moves a pixel in proportion to that distance, and a move shows
    where the picture has detail): per block, the mean difference fitted as c + u * detail +
    v * detail * distance; the share of the fitted difference that the last term holds. The
    larger of the fit on all blocks and the fit without the blocks it fits worst (a local edit,
    concentrated in a few blocks, is no turn). 1 when too few blocks have data."""
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    gy, gx = np.gradient(_gray(a))
    detail = np.hypot(gx, gy)
    h, w = d.shape
    ys, xs = np.mgrid[0:h, 0:w]
    dist = np.hypot(ys - (h - 1) / 2, xs - (w - 1) / 2) / math.hypot(h / 2, w / 2)
    rows = []
    n = RADIAL_BLOCKS
    for i in range(n):
        for j in range(n):
            cell = (slice(i * h // n, (i + 1) * h // n), slice(j * w // n, (j + 1) * w // n))
            m = valid[cell]
            if m.mean() >= 0.5:
                g = float(detail[cell][m].mean())
                rows.append((float(d[cell][m].mean()), 1.0, g, g * float(dist[cell][m].mean())))
    if len(rows) < 16:
        return 1.0
    y, x = np.array(rows)[:, 0], np.array(rows)[:, 1:]
    shares, keep = [], np.ones(len(y), bool)
    for _ in range(2):
        coef = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
        fitted = x[keep] @ coef
        total = float(fitted.sum())
        shares.append(float(coef[2] * x[keep, 2].sum()) / total if total > 0 else 1.0)
        excess = y - x @ coef
        keep = excess <= np.percentile(excess, 85)
    return max(shares)


def untilt(ia: np.ndarray, al: Alignment) -> Alignment:
    """``al`` with B turned back by a small angle (up to 5 degrees) when, turned, B correlates
    reliably with A and leaves at most :data:`TILT_FIT` of the difference (a note says so, and
    the corners without data are left out; B unaligned unturned is then lined up); when the
    turn found on a small copy does not hold at full size, B is not called lined up. ``al``
    itself when B already fits or no turn helps."""
    ref = ia if al.reference is None else al.reference
    h, w = ref.shape[:2]
    if min(h, w) < 64 or al.aligned.shape[:2] != (h, w) or al.valid.mean() < 0.25:
        return al
    shrink = lambda x, side: _shrunk(x, min(1.0, side / max(h, w)))  # noqa: E731
    sa, sb, sv = shrink(ref, TILT_SIDE), shrink(al.aligned, TILT_SIDE), _shrunk_mask(al.valid, TILT_SIDE)
    placed = _placed(sa, sb, sv, 0.0)[0]
    base = math.inf if placed is None else _residual(sa, *placed)
    if not math.isfinite(base):  # unaligned (a turn of a degree or two defeats the correlation): as it stands
        base = _residual(sa, sb, sv)
    if base <= 0.004:  # lined up to JPEG's own difference: nothing to undo
        return al
    # lined up, a local edit, a re-save, a tone change: no turn; unaligned, the gate cannot judge
    if al.reliable and placed is not None and _radial_share(sa, *placed) < TILT_RADIAL:
        return al
    best, angle, zoom = base, 0.0, 1.0
    if al.reliable:  # lined up unturned: a turn alone is looked for first
        best, angle, zoom = min([(base, 0.0, 1.0)] + [(_fit(sa, sb, sv, t)[0], t, 1.0) for t in TILT_COARSE if t])
    if best > TILT_FIT * base:  # a turn and a crop together (a straightening tool crops what it turned)
        half = TILT_SIDE // 2
        ca, cb, cv = shrink(ref, half), shrink(al.aligned, half), _shrunk_mask(al.valid, half)
        cbase = _residual(ca, cb, cv)  # as B stands, at this size
        joint = min((_fit(ca, cb, cv, t, z)[0], t, z) for t in TILT_COARSE for z in TILT_ZOOMS if t)
        if joint[0] <= TILT_FIT * cbase:
            best, angle, zoom = joint
    if abs(angle) >= TILT_MAX and best <= TILT_FIT * base:  # at the search's edge: turned further
        note = (
            f"B looks turned by {TILT_MAX:.0f}° or more relative to A, more than is undone here: the "
            f"difference would show the turn, not a change, and is not reported"
        )
        return replace(al, reliable=False, notes=[*al.notes, note]) if al.reliable else al
    if not math.isfinite(best):
        return al
    best, angle = min((_fit(sa, sb, sv, angle + t, zoom)[0] if angle + t else base, angle + t) for t in TILT_FINE)
    if zoom != 1.0:
        best, zoom = min((_fit(sa, sb, sv, angle, zoom * math.exp(t))[0], zoom * math.exp(t)) for t in TILT_FINE_ZOOM)
    if abs(angle) < TILT_MIN or best > TILT_FIT * base:
        return al
    fit0 = _residual(ref, al.aligned, al.valid)
    fit, (dy, dx), peak = _fit(ref, al.aligned, al.valid, angle, zoom)
    way = "anticlockwise" if angle < 0 else "clockwise"  # B turned back by `angle` anticlockwise
    if not math.isfinite(fit) or fit > TILT_FIT * fit0:
        note = (
            f"B looks turned by about {abs(angle):.1f}° {way} relative to A, a turn that could not be undone "
            f"reliably here: the difference would show the turn, not a change, and is not reported"
        )
        return replace(al, reliable=False, notes=[*al.notes, note]) if al.reliable else al
    turned, ok = _rotated(al.aligned, angle, al.valid, zoom)
    moved, there = _shift(turned, dy, dx)
    valid = there & _shift(ok.astype(np.uint8), dy, dx)[0].astype(bool)
    shift = (al.shift[0] + dy, al.shift[1] + dx)
    pct = abs(1 / zoom - 1) * 100
    cropped = "" if zoom == 1.0 else f" and shows A's picture {'enlarged' if zoom < 1 else 'reduced'} by {pct:.1f} %"
    scaled = "" if zoom == 1.0 else f", scaled by {zoom:.3f}"
    superseded = ("B translated by", "B not translated", "no reliable translation", "B does not line up")
    notes = [n for n in al.notes if not n.startswith(superseded)]
    note = (
        f"B is turned by {abs(angle):.2f}° {way} relative to A (a small rotation: straightened, tilted or "
        f"photographed again){cropped}: turned back{scaled} and moved by (dy, dx) = {shift} pixels in all (phase "
        f"correlation peak {peak:.2f}); the corners without data are left out"
    )
    return replace(
        al, aligned=moved, valid=valid, shift=shift, peak=peak, reliable=True, notes=[*notes, note], tilt=-angle
    )
