"""Lining up two versions of one picture: B brought onto A's pixel grid by a quarter turn, a
crop placement, a resize or a zoom, and a translation, each kept only when what it leaves is
a better fit (:mod:`trufor_lab.casebook.compare` reports the difference that remains)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from trufor_lab.common.arrays import record_repr

__all__ = ["Alignment", "chance_level", "estimate_translation", "line_up", "shift_threshold"]

#: Relative aspect-ratio difference below which B is simply resized to A's size.
ASPECT_TOLERANCE = 0.01
#: Minimum phase-correlation peak for an estimated translation to be applied.
MIN_SHIFT_PEAK = 0.08
#: How far above the chance level (:func:`chance_level`) a peak must be: unrelated crops of
#: photos reached up to ~3x it, real moves from ~4x at 32 px and ~8x from 48 px.
CHANCE_MARGIN = 3.5
#: A quarter turn of B is kept when it leaves at most this fraction of the difference B left as
#: stored (a mirrored copy turned by 180 degrees fits little better than as stored).
TURN_MARGIN = 0.5
#: ... and when B is also moved after the turn, the mean difference (0..1) it may leave at most.
TURNED_MOVE_FIT = 0.03
#: A same-scale crop is placed down to this fraction of the larger picture when its short side has
#: at least ``DETAIL_SIDE`` pixels (a detail cropped from the original: a third of its width and
#: height was 'no reliable alignment'); under it, down to a quarter. Phase correlation finds
#: details down to about a ninth; smaller ones fail its bar and are not lined up.
DETAIL_AREA = 1 / 16
DETAIL_SIDE = 64
#: A same-scale crop placement whose mean difference is below this is taken without trying the
#: resized alignment (0..1; a copy resized by 0.5 % placed as a crop left 0.016).
PLACED_FIT = 0.005
#: A zoomed B (a copy enlarged or reduced a little and cropped back to a frame) is taken when
#: it leaves at most this fraction of the difference the unzoomed alignment left (a copy zoomed
#: by 1 % left 0.032 lined up unzoomed, 0.011 zoomed back: JPEG's own difference).
ZOOM_FIT = 0.75
#: The zoom search: log-scales tried first, on pictures of this long side (1 % steps up to
#: 10 %, 3 % steps up to 25 %), then (long side, half-width, number) of the finer levels around the
#: best so far (0.3 % then 0.1 % steps; at most at full size).
ZOOM_COARSE = (384, tuple(sorted({*np.linspace(-0.1, 0.1, 21).round(4), *np.linspace(-0.25, 0.25, 17).round(4)})))
ZOOM_LEVELS = ((768, 0.012, 9), (2048, 0.003, 7))
#: A mirrored B is tried at full size only when, on both pictures reduced to this long side, it
#: lines up and leaves under ``MIRROR_MARGIN`` of what B as stored leaves (at full size the bar is
#: ``TURN_MARGIN``: the reduced pictures only rule out); pictures that would be reduced less than
#: half, or whose short side would fall under ``MIRROR_SMALLEST`` (a small detail), are tried at full size.
MIRROR_SIDE = 512
MIRROR_MARGIN = 0.8
MIRROR_SMALLEST = 256


def estimate_translation(a: np.ndarray, b: np.ndarray) -> tuple[tuple[int, int], float]:
    """Phase correlation (numpy FFT, Hann window) of two same-size images.

    Returns ``((dy, dx), peak)``: shifting ``b`` by ``(dy, dx)`` (``b'[y, x] = b[y - dy, x - dx]``)
    aligns it with ``a``; ``peak`` (about 1 for identical content, near 0 for unrelated) says how
    much to trust it (compare it with :func:`shift_threshold`).
    """
    return _peak(_correlation(a, b))


def _peak(r: np.ndarray) -> tuple[tuple[int, int], float]:
    """The shift at a correlation surface's highest value (wrapped to signed), and that value."""
    h, w = r.shape
    dy, dx = np.unravel_index(int(np.argmax(r)), r.shape)
    dy = int(dy) - h if dy > h // 2 else int(dy)
    dx = int(dx) - w if dx > w // 2 else int(dx)
    return (dy, dx), float(r.max())


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The phase-correlation surface of ``a`` and ``b`` (index (dy, dx) modulo the size)."""
    ga, gb = (_gray(x) for x in (a, b))
    if ga.shape != gb.shape:
        raise ValueError(f"estimate_translation needs same-size images, got {ga.shape} and {gb.shape}")
    h, w = ga.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    fa = np.fft.fft2((ga - ga.mean()) * win)
    fb = np.fft.fft2((gb - gb.mean()) * win)
    cross = fa * np.conj(fb)
    return np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12)))


def chance_level(r: np.ndarray) -> float:
    """The largest value a phase-correlation surface ``r`` reaches by chance at its size: its
    robust spread (1.4826 MAD) times sqrt(2 ln N), the expected maximum of N noise values."""
    v = r.ravel()
    sigma = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    return sigma * math.sqrt(2 * math.log(max(v.size, 2)))


def shift_threshold(r: np.ndarray) -> float:
    """The peak a correlation surface ``r`` must reach to be trusted: the highest of
    ``MIN_SHIFT_PEAK`` and ``CHANCE_MARGIN`` times its :func:`chance_level`. On small pictures
    chance peaks pass a fixed bar: unrelated 32x32 crops cleared 0.08 most of the time."""
    return max(MIN_SHIFT_PEAK, CHANCE_MARGIN * chance_level(r))


def _gray(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.mean(axis=2) if a.ndim == 3 else a


def _shift(img: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``img`` translated by (dy, dx) with zero fill, and the mask of pixels that have data."""
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    valid = np.zeros((h, w), dtype=bool)
    ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[yd, xd] = img[ys, xs]
    valid[yd, xd] = True
    return out, valid


def _resize(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two pictures' coarse grey levels (32 x 32): how alike their layouts are."""
    ga, gb = (
        np.asarray(Image.fromarray(np.ascontiguousarray(x)).convert("L").resize((32, 32), Image.BILINEAR), np.float64)
        for x in (a, b)
    )
    ga, gb = ga - ga.mean(), gb - gb.mean()
    den = math.sqrt(float((ga * ga).sum() * (gb * gb).sum()))
    return float((ga * gb).sum() / den) if den > 0 else 0.0


def _upright_like(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """``b`` turned by the quarter turn (0, 90, 180, 270 degrees) whose layout best matches
    ``a``'s; a turn is taken only when clearly better than none (and, for 90/270, when the turn
    also brings the aspect ratios closer)."""
    ha, wa = a.shape[:2]
    hb, wb = b.shape[:2]
    if min(ha, wa, hb, wb) < 8:
        return b, 0
    near = abs(math.log((wa / ha) / (wb / hb)))
    options = [0, 180] + ([90, 270] if abs(math.log((wa / ha) / (hb / wb))) <= near else [])  # <=: squares
    scores = {k: _similarity(a, np.rot90(b, -k // 90)) for k in options}
    best = max(scores, key=scores.get)
    if best == 0 or scores[best] < max(0.5, scores[0] + 0.2):
        return b, 0
    return np.ascontiguousarray(np.rot90(b, -best // 90)), best


def _place_crop(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float, str] | None:
    """B as a same-scale crop of A (or A of B), found by phase correlation of the smaller one
    zero-padded into the larger frame: (B on A's grid, where it has data, its offset, the
    peak, a note), or ``None`` when neither fits in the other or the match is not reliable."""
    ha, wa = a.shape[:2]
    hb, wb = b.shape[:2]
    inner = hb <= ha and wb <= wa
    if not inner and not (ha <= hb and wa <= wb):
        return None
    big, small = (a, b) if inner else (b, a)
    (H, W), (h, w) = big.shape[:2], small.shape[:2]
    if min(h, w) < 16 or h * w < (0.25 if min(h, w) < DETAIL_SIDE else DETAIL_AREA) * H * W:  # too little to place
        return None
    gb, gs = _gray(big), _gray(small)
    pad = np.zeros((H, W))
    pad[:h, :w] = gs - gs.mean()
    cross = np.fft.fft2(gb - gb.mean()) * np.conj(np.fft.fft2(pad))
    r = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12)))
    y, x = np.unravel_index(int(np.argmax(r)), r.shape)
    peak = float(r[y, x])
    if peak < shift_threshold(r) or y > H - h or x > W - w:
        return None
    if inner:  # B drawn on A's grid; A's pixels outside it have no counterpart
        aligned = np.zeros_like(a)
        valid = np.zeros((ha, wa), dtype=bool)
        aligned[y : y + h, x : x + w] = b
        valid[y : y + h, x : x + w] = True
        note = (
            f"B is a same-scale crop of A ({wb}×{hb} of {wa}×{ha}): placed at (y, x) = ({y}, {x}) by phase "
            f"correlation (peak {peak:.2f}); A's pixels outside it have no counterpart and are left out"
        )
        return aligned, valid, (int(y), int(x)), peak, note
    aligned = np.ascontiguousarray(b[y : y + ha, x : x + wa])
    note = (
        f"A is a same-scale crop of B ({wa}×{ha} of {wb}×{hb}): B's part at (y, x) = ({y}, {x}) compared "
        f"(phase correlation peak {peak:.2f})"
    )
    return aligned, np.ones((ha, wa), dtype=bool), (-int(y), -int(x)), peak, note


def _residual(a: np.ndarray, b: np.ndarray, valid: np.ndarray, least: float = 0.25) -> float:
    """Mean absolute difference (0..1) where ``b`` has data; inf when that is under ``least`` of
    the picture (a placement that explains little is not a better one)."""
    if valid.mean() < least:
        return math.inf
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    return float(d[valid].mean()) / 255.0


def _resize_and_translate(
    ia: np.ndarray, ib: np.ndarray, estimate_shift: bool, notes: list[str], may_move: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float | None, bool, np.ndarray]:
    """B brought to A's grid by size (centre-cropped to A's aspect first when it differs), then
    translated by phase correlation when that is reliable; notes say what was done. Returns
    (B aligned, where it has data, the translation, the peak, whether B lines up with A, A as
    compared: when B was enlarged, A brought to B's resolution and back, since the detail that
    B never had is neither a change nor a misalignment)."""
    ha, wa = ia.shape[:2]
    hb, wb = ib.shape[:2]
    aligned = ib
    if abs(math.log((wa / ha) / (wb / hb))) > math.log1p(ASPECT_TOLERANCE):
        target = wa / ha
        if wb / hb > target:
            cw = max(1, round(hb * target))
            x0 = (wb - cw) // 2
            aligned = ib[:, x0 : x0 + cw]
        else:
            ch = max(1, round(wb / target))
            y0 = (hb - ch) // 2
            aligned = ib[y0 : y0 + ch]
        ch, cw = aligned.shape[:2]
        if abs(math.log((cw / ch) / target)) > math.log1p(ASPECT_TOLERANCE):  # B too small to crop to it
            notes.append(
                f"aspect ratios differ (A {wa}×{ha}, B {wb}×{hb}) more than cropping B can fix: B was "
                f"centre-cropped as far as it goes ({cw}×{ch}) and stretched; the comparison is "
                f"approximate at best"
            )
        else:
            notes.append(
                f"aspect ratios differ (A {wa}×{ha}, B {wb}×{hb}): B was centre-cropped to A's "
                f"aspect ratio; if B was cropped off-centre the alignment is approximate"
            )
    ref = ia
    if aligned.shape[:2] != (ha, wa):
        ah, aw = aligned.shape[:2]
        aligned = _resize(np.ascontiguousarray(aligned), wa, ha)
        enlarged = ah * aw < ha * wa
        if enlarged:  # a smaller copy (a repost): compared with A as its resolution shows A
            ref = _resize(_resize(np.ascontiguousarray(ia), aw, ah), wa, ha)
        notes.append(
            f"B resized from {aw}×{ah} to A's size {wa}×{ha} for the comparison only"
            + ("; A compared at B's resolution (detail B never had is not a change)" if enlarged else "")
        )
    shift, peak = (0, 0), None
    valid = np.ones((ha, wa), dtype=bool)
    reliable = True
    if min(ha, wa) < 8:  # no correlation to check against: an unchecked alignment is not 'lined up'
        reliable = False
        notes.append(f"whether B lines up with A cannot be checked at {wa}×{ha} (under 8 pixels a side)")
    elif not estimate_shift:  # not searched for a move, but still checked as it stands
        r = _correlation(ref, aligned)
        bar = shift_threshold(r)
        reliable = bool(r[0, 0] >= bar)
        if not reliable:
            notes.append(
                f"B does not line up with A as it stands (phase correlation {r[0, 0]:.2f}, needs {bar:.2f}); "
                f"no move was searched for (estimate_shift=False)"
            )
    else:
        r = _correlation(ref, aligned)  # once: a 12 MP surface is two large FFTs
        (dy, dx), peak = _peak(r)
        bar = shift_threshold(r)
        small = abs(dy) < ha / 4 and abs(dx) < wa / 4
        # lined up when unmoved or moved is a reliable match; else what differs is the framing
        reliable = bool(r[0, 0] >= bar or (may_move and peak >= bar and small))
        moved = None
        if (dy, dx) != (0, 0) and peak >= bar and small and may_move:
            moved = _shift(aligned, dy, dx)
            # when unmoved is a reliable match too (an edited copy: a chance peak elsewhere; or a
            # one-pixel offset after recompression), the move is kept only if it fits better
            if r[0, 0] >= bar and _residual(ref, moved[0], moved[1]) >= _residual(ref, aligned, valid):
                moved = None
                notes.append(
                    f"B not translated: unmoved it fits better than moved by ({dy}, {dx}) (phase "
                    f"correlation peak {peak:.2f})"
                )
        if moved is not None:
            aligned, valid = moved
            shift = (dy, dx)
            notes.append(
                f"B translated by (dy, dx) = ({dy}, {dx}) pixels (phase correlation peak "
                f"{peak:.2f}); the borders without data are left out"
            )
        elif (dy, dx) != (0, 0) and not (peak >= bar and small and r[0, 0] >= bar):
            why = "after a quarter turn B must line up unmoved" if not may_move else f"needs {bar:.2f}"
            notes.append(
                f"no reliable translation found (phase correlation peak {peak:.2f}, {why}: "
                f"chance reaches {chance_level(r):.2f} at this size); B not translated"
            )
        elif not reliable:  # unmoved, and that match is not reliable either: say so (was no note)
            notes.append(
                f"B does not line up with A unmoved (phase correlation {r[0, 0]:.2f}, needs {bar:.2f}: chance "
                f"reaches {chance_level(r):.2f} at this size)"
            )
    return aligned, valid, shift, peak, reliable, ref


def _align(
    ia: np.ndarray, ib: np.ndarray, estimate_shift: bool, may_move: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float | None, bool, list[str]]:
    """B on A's grid: as a same-scale crop where it places reliably and fits better than resized
    (a copy resized by 2 % also places as a 'crop', with 7 % of its pixels 'changed'), else
    resized (and translated). Returns (aligned, valid, shift, peak, reliable, notes, A as
    compared)."""
    notes: list[str] = []
    placed = _place_crop(ia, ib) if estimate_shift and ib.shape[:2] != ia.shape[:2] else None
    fit = math.inf if placed is None else _residual(ia, placed[0], placed[1], DETAIL_AREA)
    if fit > PLACED_FIT:  # a placement that fits this well needs no resized rival (half the time)
        *resized, ref = _resize_and_translate(ia, ib, estimate_shift, notes, may_move)
        if fit > _residual(ref, resized[0], resized[1]):
            return (*resized, notes, ref)
    assert placed is not None
    aligned, valid, shift, peak, note = placed
    return aligned, valid, shift, peak, True, [note], ia


def _shrunk(x: np.ndarray, k: float) -> np.ndarray:
    h, w = x.shape[:2]
    return _resize(np.ascontiguousarray(x), max(1, round(w * k)), max(1, round(h * k))) if k < 1 else x


def _fast_len(n: int) -> int:
    """The smallest 5-smooth length >= n (quick for numpy's FFT)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


class _Frame:
    """A picture that a smaller one is searched in: its grey levels' FFT on a quick size, kept
    for every candidate of a level."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb.astype(np.float32)
        g = _gray(rgb)
        self.size = (_fast_len(g.shape[0]), _fast_len(g.shape[1]))
        pad = np.zeros(self.size)
        pad[: g.shape[0], : g.shape[1]] = g - g.mean()
        self.fft = np.fft.fft2(pad)

    def fit(self, small: np.ndarray) -> float:
        """What ``small`` leaves (mean |difference|, 0..1) where it places best in this picture;
        inf when it does not fit, covers under a quarter of it, or places unreliably."""
        (big_h, big_w), (h, w) = self.rgb.shape[:2], small.shape[:2]
        if h > big_h or w > big_w or min(h, w) < 16 or h * w < 0.25 * big_h * big_w:
            return math.inf
        g = _gray(small)
        pad = np.zeros(self.size)
        pad[:h, :w] = g - g.mean()
        cross = self.fft * np.conj(np.fft.fft2(pad))
        r = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12)))
        inside = r[: big_h - h + 1, : big_w - w + 1]  # placements that keep it within the picture
        y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
        if inside[y, x] < shift_threshold(r):
            return math.inf
        return float(np.abs(self.rgb[y : y + h, x : x + w] - small).mean()) / 255.0


def _zoom_fits(ia: np.ndarray, ib: np.ndarray, scales: list[float]) -> list[float]:
    """For each scale ``f`` of B (``f`` < 1: B reduced into A; else A reduced by 1 / ``f`` into
    B), what the best placement leaves."""
    frames: dict[str, _Frame] = {}
    out = []
    for f in scales:
        inner = f * ib.shape[0] <= ia.shape[0] and f * ib.shape[1] <= ia.shape[1]
        big, small, k = (ia, ib, f) if inner else (ib, ia, 1 / f)
        frame = frames.get("a" if inner else "b") or frames.setdefault("a" if inner else "b", _Frame(big))
        h, w = small.shape[:2]
        out.append(frame.fit(_resize(np.ascontiguousarray(small), max(1, round(w * k)), max(1, round(h * k)))))
    return out


def _zoomed(ia: np.ndarray, ib: np.ndarray, fit: float) -> tuple[float, float, tuple] | None:
    """B's scale factor, the zoom in it (the factor over B's resize to A's size, when B is another
    size) and placement when B is A's picture zoomed (a copy enlarged by a few per
    cent and cropped back to its frame lined up unzoomed, its misaligned edges 'changed'), found
    coarse to fine (:data:`ZOOM_LEVELS`) and kept under :data:`ZOOM_FIT`; None otherwise."""
    (ha, wa), (hb, wb) = ia.shape[:2], ib.shape[:2]
    if fit <= PLACED_FIT or min(ha, wa, hb, wb) < 32:
        return None
    bases = sorted({1.0, math.sqrt(ha * wa / (hb * wb))})  # same scale, or B resized to A's area
    best = None
    for side, steps in [ZOOM_COARSE, *((side, np.linspace(-span, span, n)) for side, span, n in ZOOM_LEVELS)]:
        k, kb = min(1.0, side / max(ha, wa)), min(1.0, side / max(hb, wb))
        scales = [c * math.exp(t) for c in (bases if best is None else [best]) for t in steps]
        scored = list(zip(_zoom_fits(_shrunk(ia, k), _shrunk(ib, kb), [f * k / kb for f in scales]), scales))
        r, f = min(scored)
        if best is None:  # go on only when a zoom beats no zoom clearly at this coarse size
            unzoomed = min(s for s, g in scored if any(abs(math.log(g / c)) < 1e-9 for c in bases))
            if not math.isfinite(r) or r >= ZOOM_FIT * unzoomed:
                return None
        best = f
    assert best is not None
    if min(abs(math.log(best / c)) for c in bases) < 2e-3:  # no zoom to speak of
        return None
    h, w = ib.shape[:2]
    placed = _place_crop(ia, _resize(np.ascontiguousarray(ib), max(1, round(w * best)), max(1, round(h * best))))
    base = min(bases, key=lambda c: abs(math.log(best / c)))
    return (
        (best, best / base, placed)
        if placed is not None and _residual(ia, placed[0], placed[1]) <= ZOOM_FIT * fit
        else None
    )


@dataclass
class Alignment:
    """B on A's grid: ``b`` as used (turned when a turn was kept), ``aligned`` (B's pixels on A's
    grid), ``valid`` (where B has data), the translation and its correlation peak, whether B
    lines up with A, notes saying what was done, and ``reference``: A as B is compared with (A
    itself, or A at a smaller B's resolution)."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    b: np.ndarray
    aligned: np.ndarray
    valid: np.ndarray
    shift: tuple[int, int] = (0, 0)
    peak: float | None = None
    reliable: bool = True
    notes: list[str] = field(default_factory=list)
    turn: int = 0
    reference: np.ndarray | None = None
    #: B was mirrored left-right (before any ``turn``) to line up with A.
    mirrored: bool = False
    #: Degrees B is turned anticlockwise relative to A, undone (:mod:`trufor_lab.casebook.tilt`).
    tilt: float = 0.0


def line_up(ia: np.ndarray, ib: np.ndarray, estimate_shift: bool = True) -> Alignment:
    """B aligned to A: turned by a quarter turn when only that matches A's layout (a copy stored
    turned without an EXIF tag); placed by phase correlation when it is a same-scale crop of A
    (or A of B); otherwise resized to A's size (centre-cropped to A's aspect first when it
    differs) and translated when that is reliable; then zoomed when a zoom leaves clearly less.
    When that leaves B unaligned or a poor fit, B mirrored left-right is tried the same way and
    kept when it lines up clearly better (a flipped repost)."""
    out = _line_up_as_stored(ia, ib, estimate_shift)
    fit = _residual(out.reference, out.aligned, out.valid)
    if not estimate_shift or (out.reliable and fit <= TURNED_MOVE_FIT) or not _mirror_may_fit(ia, ib):
        return out
    m = _line_up_as_stored(ia, np.ascontiguousarray(ib[:, ::-1]), estimate_shift)
    if not m.reliable or _residual(m.reference, m.aligned, m.valid) >= TURN_MARGIN * fit:
        return out
    note = "B is A's picture mirrored left-right (flipped horizontally): flipped back for the comparison"
    return Alignment(m.b, m.aligned, m.valid, m.shift, m.peak, True, [note, *m.notes], m.turn, m.reference, True)


def _mirror_may_fit(ia: np.ndarray, ib: np.ndarray) -> bool:
    """Whether B mirrored may line up with A clearly better than as stored, judged on both pictures
    reduced to :data:`MIRROR_SIDE` (the full-size attempt doubled the time of every pair that did
    not line up: 12 MP, 25 s); True when the smaller picture would be too small there to judge."""
    k = MIRROR_SIDE / max(*ia.shape[:2], *ib.shape[:2])
    if k > 0.5 or min(*ia.shape[:2], *ib.shape[:2]) * k < MIRROR_SMALLEST:
        return True
    sa, sb = _shrunk(ia, k), _shrunk(ib, k)
    out = _line_up_as_stored(sa, sb, True)
    m = _line_up_as_stored(sa, np.ascontiguousarray(sb[:, ::-1]), True)
    fit = _residual(m.reference, m.aligned, m.valid)
    return m.reliable and fit < MIRROR_MARGIN * _residual(out.reference, out.aligned, out.valid)


def _line_up_as_stored(ia: np.ndarray, ib: np.ndarray, estimate_shift: bool) -> Alignment:
    """:func:`line_up` without the mirror."""
    turned, turn = _upright_like(ia, ib) if estimate_shift else (ib, 0)
    *found, how, ref = _align(ia, ib, estimate_shift)
    out = Alignment(ib, *found, how, 0, ref)
    if turn:  # kept only when B lines up after it, clearly better than as stored (a mirrored copy is not turned)
        *t, t_how, t_ref = _align(ia, turned, estimate_shift)
        fit = _residual(t_ref, t[0], t[1])
        # turned and moved: only when the two together leave little (a mirror turned by 180 and
        # moved by 3 px still 'lined up', 26 % of its pixels 'changed')
        if (
            t[4]
            and fit < TURN_MARGIN * _residual(ref, out.aligned, out.valid)
            and (t[2] == (0, 0) or fit <= TURNED_MOVE_FIT)
        ):
            note = f"B turned by {turn}° to A's orientation (it was stored turned without an EXIF tag saying so)"
            out = Alignment(turned, *t, [note, *t_how], turn, t_ref)
    zoom = _zoomed(ia, out.b, _residual(out.reference, out.aligned, out.valid)) if estimate_shift else None
    if zoom is not None:
        f, z, (aligned, valid, where, peak, _) = zoom
        pct = abs(1 / z - 1) * 100  # the zoom, apart from a resize of the whole picture
        what = f"enlarged by {pct:.1f} % (zoomed in" if z < 1 else f"reduced by {pct:.1f} % (zoomed out"
        resized = "" if abs(math.log(f / z)) < 1e-9 else f" and resized to {ib.shape[1]}×{ib.shape[0]}"
        note = (
            f"B shows A's picture {what} and framed again{resized}): B scaled by {f:.4f} and placed at (y, x) = "
            f"{where} by phase correlation (peak {peak:.2f}); pixels without a counterpart are left out"
        )
        out = Alignment(
            out.b, aligned, valid, where, peak, True, [*out.notes[: 1 if out.turn else 0], note], out.turn, ia
        )
    return out
