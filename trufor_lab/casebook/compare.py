"""Two versions of one picture (a viral post and an earlier one): B aligned to A (turn, crop
placement, size, translation), their difference, and both analyses; the casebook's Compare tab.

>>> from trufor_lab.casebook.compare import compare
>>> c = compare("viral.jpg", "earlier_post.jpg", model)
>>> c.plot()
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from trufor_lab.casebook.report import comparison_section_html, official_weights
from trufor_lab.common.paths import short_name
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.preprocess import ImageLike, load_image
from trufor_lab.viz.figures import draw_map, frame_panel

__all__ = ["Comparison", "chance_level", "compare", "estimate_translation", "shift_threshold"]

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
#: A same-scale crop placement whose mean difference is below this is taken without trying the
#: resized alignment (0..1; a copy resized by 0.5 % placed as a crop left 0.016).
PLACED_FIT = 0.005
#: A pixel "differs" when its mean absolute RGB difference exceeds this (0..1).
CHANGE_THRESHOLD = 0.1
#: What a comparison says instead of a difference when B could not be lined up with A.
UNALIGNED = (
    "no reliable alignment of B with A (another picture, or cropped, turned or rescaled in a way not "
    "undone here): the difference measures the misalignment, not a change, and is not reported"
)


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


def _turned(r: Result, degrees: int) -> Result:
    """``r`` with image and maps turned clockwise by ``degrees`` (a multiple of 90)."""
    k = -(degrees // 90)
    turn = lambda a: None if a is None else np.ascontiguousarray(np.rot90(a, k))  # noqa: E731
    return replace(r, image=turn(r.image), noiseprint=turn(r.noiseprint), map=turn(r.map), conf=turn(r.conf))


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
    if min(h, w) < 16 or h * w < 0.25 * H * W:  # a small detail: too little to place reliably
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


@dataclass
class Comparison:
    """Two versions of one picture: A as given, B aligned to A, their difference, both analyses.

    ``diff`` is the mean absolute RGB difference in ``[0, 1]`` at A's size (NaN where B has no
    data after the translation); ``shift`` is the translation applied to B; ``notes`` say how B
    was aligned.
    """

    name_a: str
    name_b: str
    a: np.ndarray
    b: np.ndarray
    b_aligned: np.ndarray
    diff: np.ndarray
    shift: tuple[int, int] = (0, 0)
    shift_peak: float | None = None
    notes: list[str] = field(default_factory=list)
    result_a: Result | None = None
    result_b: Result | None = None
    #: Whether B lines up with A (same picture, same framing after the alignment): without it
    #: the difference measures the misalignment, not a change, and is not reported as one.
    reliable: bool = True

    @property
    def mean_diff(self) -> float:
        """Mean absolute difference over the overlap (0..1)."""
        return float(np.nanmean(self.diff)) if np.isfinite(self.diff).any() else float("nan")

    @property
    def changed_fraction(self) -> float:
        """Fraction of the overlap whose difference exceeds ``CHANGE_THRESHOLD``."""
        ok = np.isfinite(self.diff)
        return float((self.diff[ok] > CHANGE_THRESHOLD).mean()) if ok.any() else 0.0

    def summary(self) -> str:
        """One line."""
        if not self.reliable:
            return f"{self.name_a} vs {self.name_b}: {UNALIGNED}"
        return (
            f"{self.name_a} vs {self.name_b}: mean |A-B| {self.mean_diff:.3f}, "
            f"{100 * self.changed_fraction:.1f}% of pixels differ, B shifted by {self.shift}"
        )

    def plot(self, fig: Any = None) -> Any:
        """A, B aligned, |A − B|; below, each version's localization map (or Noiseprint++)."""
        import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

        results = [r for r in (self.result_a, self.result_b) if r is not None]
        rows = 2 if results else 1
        if fig is None:
            fig = plt.figure(figsize=(11, 3.8 * rows))
        axes = fig.subplots(rows, 3, squeeze=False)
        na, nb = short_name(self.name_a), short_name(self.name_b)
        axes[0, 0].imshow(self.a)
        axes[0, 0].set_title(f"A: {na}", fontsize=9, parse_math=False)
        axes[0, 1].imshow(self.b_aligned)
        axes[0, 1].set_title(f"B aligned to A: {nb}", fontsize=9, parse_math=False)
        finite = self.diff[np.isfinite(self.diff)]
        vmax = max(0.05, float(np.percentile(finite, 99.5))) if finite.size else 1.0
        im = axes[0, 2].imshow(np.ma.masked_invalid(self.diff), cmap="magma", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=axes[0, 2], fraction=0.046, pad=0.02)
        axes[0, 2].set_title(
            f"|A − B| (mean {self.mean_diff:.3f})" if self.reliable else "|A − B| (not lined up: not a change)",
            fontsize=9,
        )
        if rows == 2:
            for ax, label, r in ((axes[1, 0], "A", self.result_a), (axes[1, 1], "B", self.result_b)):
                if r is None:
                    ax.text(0.5, 0.5, f"{label}: not analyzed", ha="center", va="center")
                elif r.map is not None:
                    draw_map(ax, r.map)
                    whose = "" if official_weights(r) else "this model's "  # the paper's score: official only
                    score = "no global score" if r.score is None else f"{whose}score {r.score:.2f}"
                    ax.set_title(f"{label}: localization map, {score}", fontsize=9)
                else:
                    lo, hi = np.percentile(r.noiseprint, [1, 99])
                    ax.imshow(r.noiseprint, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6))
                    ax.set_title(f"{label}: Noiseprint++ (no localization)", fontsize=9)
            lines = (
                [
                    f"B shifted by (dy, dx) = {self.shift}",
                    f"{100 * self.changed_fraction:.1f}% of pixels differ > {CHANGE_THRESHOLD:.0%}",
                ]
                if self.reliable
                else [UNALIGNED]
            )
            axes[1, 2].text(
                0.02,
                0.95,
                "\n".join(lines + self.notes),
                va="top",
                ha="left",
                fontsize=8,
                wrap=True,
                transform=axes[1, 2].transAxes,
            )
        for ax in axes.ravel()[: 3 * rows - (1 if rows == 2 else 0)]:
            frame_panel(ax)  # a white panel still shows where the picture is
        if rows == 2:
            axes[1, 2].set_axis_off()  # the text panel
        return fig

    def _repr_html_(self) -> str:
        return comparison_section_html(self)


def _as_image(x: Any, model: nn.Module | None, name: str | None) -> tuple[np.ndarray, str, Result | None]:
    """Pixels as viewers show them (EXIF orientation applied), a name, and the Result (given, or
    analysed here with ``model``: the file is decoded once, its Result's image is the one shown)."""
    if isinstance(x, Result):
        r = x.as_shown()
        return r.image, name or r.name or "image", r
    path = os.fspath(x) if isinstance(x, (str, os.PathLike)) else ""
    if model is not None:
        r = analyze(model, x, name=name or path or None, exif_transpose=True)
        return r.image, name or path or r.name, r
    loaded = load_image(x, exif_transpose=True)
    return loaded.rgb, name or path or loaded.name, None


def _residual(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """Mean absolute difference (0..1) where ``b`` has data; inf when that is under a quarter
    of the picture (a placement that explains little is not a better one)."""
    if valid.mean() < 0.25:
        return math.inf
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    return float(d[valid].mean()) / 255.0


def _resize_and_translate(
    ia: np.ndarray, ib: np.ndarray, estimate_shift: bool, notes: list[str], may_move: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float | None, bool]:
    """B brought to A's grid by size (centre-cropped to A's aspect first when it differs), then
    translated by phase correlation when that is reliable; notes say what was done. Returns
    (B aligned, where it has data, the translation, the peak, whether B lines up with A)."""
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
    if aligned.shape[:2] != (ha, wa):
        ah, aw = aligned.shape[:2]
        aligned = _resize(np.ascontiguousarray(aligned), wa, ha)
        notes.append(f"B resized from {aw}×{ah} to A's size {wa}×{ha} for the comparison only")
    shift, peak = (0, 0), None
    valid = np.ones((ha, wa), dtype=bool)
    reliable = True
    if estimate_shift and min(ha, wa) >= 8:
        r = _correlation(ia, aligned)  # once: a 12 MP surface is two large FFTs
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
            if r[0, 0] >= bar and _residual(ia, moved[0], moved[1]) >= _residual(ia, aligned, valid):
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
    return aligned, valid, shift, peak, reliable


def _align(
    ia: np.ndarray, ib: np.ndarray, estimate_shift: bool, may_move: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float | None, bool, list[str]]:
    """B on A's grid: as a same-scale crop where it places reliably and fits better than resized
    (a copy resized by 2 % also places as a 'crop', with 7 % of its pixels 'changed'), else
    resized (and translated). Returns (aligned, valid, shift, peak, reliable, notes)."""
    notes: list[str] = []
    placed = _place_crop(ia, ib) if estimate_shift and ib.shape[:2] != ia.shape[:2] else None
    fit = math.inf if placed is None else _residual(ia, placed[0], placed[1])
    if fit > PLACED_FIT:  # a placement that fits this well needs no resized rival (half the time)
        resized = _resize_and_translate(ia, ib, estimate_shift, notes, may_move)
        if fit > _residual(ia, resized[0], resized[1]):
            return (*resized, notes)
    assert placed is not None
    aligned, valid, shift, peak, note = placed
    return aligned, valid, shift, peak, True, [note]


def compare(
    a: ImageLike | Result,
    b: ImageLike | Result,
    model: nn.Module | None = None,
    *,
    estimate_shift: bool = True,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """Compare two versions of one picture (e.g. an earlier post and the viral one).

    Both are compared as viewers show them (a platform that re-encodes a phone photo usually
    turns its pixels upright and drops the EXIF orientation): images and maps are turned by
    their EXIF orientation, the analyses having read the stored grids (:meth:`Result.as_shown`).
    B is aligned to A: turned by a quarter turn when only that matches A's layout (a copy stored
    turned without an EXIF tag); placed by phase correlation when it is a same-scale crop of A
    (or A of B); otherwise resized to A's size (centre-cropped to A's aspect first when it
    differs, with a note) and translated by phase correlation when that is reliable. When B
    cannot be lined up, ``reliable`` is False and no difference is reported as a change.
    Each version is analyzed *as given* (never resized: resizing destroys forensic traces) when
    ``model`` is passed; a :class:`Result` is used as it is.
    """
    ia, na, ra = _as_image(a, model, names[0] if names else None)
    ib, nb, rb = _as_image(b, model, names[1] if names else None)
    ha, wa = ia.shape[:2]
    notes: list[str] = []
    turned, turn = _upright_like(ia, ib) if estimate_shift else (ib, 0)
    aligned, valid, shift, peak, reliable, how = _align(ia, ib, estimate_shift)
    if turn:  # kept only when B lines up after it, clearly better than as stored (a mirrored copy is not turned)
        t = _align(ia, turned, estimate_shift)
        fit = _residual(ia, t[0], t[1])
        # turned and moved: only when the two together leave little (a mirror turned by 180 and
        # moved by 3 px still 'lined up', 26 % of its pixels 'changed')
        if t[4] and fit < TURN_MARGIN * _residual(ia, aligned, valid) and (t[2] == (0, 0) or fit <= TURNED_MOVE_FIT):
            aligned, valid, shift, peak, reliable, how = t
            ib = turned
            how.insert(
                0, f"B turned by {turn}° to A's orientation (it was stored turned without an EXIF tag saying so)"
            )
            if rb is not None:  # its maps with it, so that the panels below line up with B's
                rb = _turned(rb, turn)
    notes.extend(how)
    diff = np.abs(ia.astype(np.float32) - aligned.astype(np.float32)).mean(axis=2) / 255.0
    diff[~valid] = np.nan
    return Comparison(
        name_a=na,
        name_b=nb,
        a=ia,
        b=ib,
        b_aligned=aligned,
        diff=diff.astype(np.float32),
        shift=shift,
        shift_peak=peak,
        notes=notes,
        result_a=ra,
        result_b=rb,
        reliable=reliable,
    )


# --------------------------------------------------------------------------- casebook widget
