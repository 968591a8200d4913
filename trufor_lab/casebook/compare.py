"""Two versions of one picture (a viral post and an earlier one): B aligned to A (turn, crop
placement, size, zoom, translation; :mod:`trufor_lab.casebook.align`), their difference, and both analyses; the casebook's Compare tab.

>>> from trufor_lab.casebook.compare import compare
>>> c = compare("viral.jpg", "earlier_post.jpg", model)
>>> c.plot()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from trufor_lab.casebook.align import chance_level, estimate_translation, line_up, shift_threshold
from trufor_lab.casebook.tilt import untilt
from trufor_lab.casebook.report import comparison_section_html, official_weights
from trufor_lab.common.arrays import record_repr
from trufor_lab.common.paths import short_name
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.preprocess import ImageLike, load_image
from trufor_lab.model.identity import classic_method, same_weights, weights_label
from trufor_lab.viz.figures import display_stride, draw_map, for_display, frame_panel, map_cmap, robust_limits

__all__ = ["Comparison", "chance_level", "compare", "estimate_translation", "shift_threshold"]

#: A pixel "differs" when its mean absolute RGB difference exceeds this (0..1).
CHANGE_THRESHOLD = 0.1
#: A global change of tones is looked for when the mean difference is at least this (0..1; a JPEG
#: re-save leaves under 0.01), and matched when matching leaves at most ``TONE_FIT`` of it.
TONE_MIN = 0.02
TONE_FIT = 0.5
#: ... and only when matching brings at least this fraction of the pixels closer by ``TONE_MIN``: a
#: global change moves most pixels; a local edit (a region inverted or recoloured into tones the
#: rest of the picture lacks) was absorbed by the curve, '1 % changed' for an edit of 11 %.
TONE_SPREAD = 0.5
#: After tones are matched, B's channel values within ``CLIP_LEVEL`` of 0 or 255 count as clipped,
#: and as no change where B's median over the pixels holding A's tone (A's levels in steps of
#: ``CLIP_STEP``, at least ``CLIP_COUNT`` pixels) comes within ``CLIP_MARGIN`` of the clip too: a
#: brightened copy's blown highlights were 'changed' (6.7 % of the pixels of a photo).
CLIP_LEVEL = 5
CLIP_MARGIN = 8
CLIP_STEP = 4
CLIP_COUNT = 20
#: What a comparison says instead of a difference when B could not be lined up with A.
UNALIGNED = (
    "no reliable alignment of B with A (another picture, or cropped, turned, mirrored or rescaled in a way "
    "not undone here, such as a detail under about a ninth of the picture, a turn over 5°, or a turn with a "
    "crop of over a fifth): the difference measures the misalignment, not a change, and is not reported"
)


def _turned(r: Result, degrees: int, mirrored: bool = False) -> Result:
    """``r`` with image and maps mirrored left-right (when ``mirrored``), then turned clockwise by
    ``degrees`` (a multiple of 90)."""
    k = -(degrees // 90)
    turn = lambda a: None if a is None else np.ascontiguousarray(np.rot90(a[:, ::-1] if mirrored else a, k))  # noqa: E731
    return replace(r, image=turn(r.image), noiseprint=turn(r.noiseprint), map=turn(r.map), conf=turn(r.conf))


@dataclass
class Comparison:
    """Two versions of one picture: A as given, B aligned to A, their difference, both analyses.

    ``diff`` is the mean absolute RGB difference in ``[0, 1]`` at A's size (NaN where B has no
    data after the translation); ``shift`` is the translation applied to B; ``notes`` say how B
    was aligned.
    """

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

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
    #: Degrees B was turned anticlockwise relative to A, undone before the difference (0: none).
    tilt: float = 0.0

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
            f"{100 * self.changed_fraction:.1f}% of pixels differ, B shifted by {self.shift}{self._turned_back}"
        )

    @property
    def _turned_back(self) -> str:
        return f" and turned back by {abs(self.tilt):.2f}°" if self.tilt else ""

    def plot(self, fig: Any = None) -> Any:
        """A, B aligned, |A − B|; below, each version's localization map (or Noiseprint++). Each
        panel is drawn averaged over blocks to at most 2048 pixels a side (display only; the colour
        scales come from the whole arrays): at full size a 12 MP pair drew five 12 MP panels."""
        import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

        results = [r for r in (self.result_a, self.result_b) if r is not None]
        rows = 2 if results else 1
        if fig is None:
            fig = plt.figure(figsize=(11, 3.8 * rows))
        axes = fig.subplots(rows, 3, squeeze=False)
        na, nb = short_name(self.name_a), short_name(self.name_b)
        small = lambda a: for_display(a, display_stride(a.shape))  # noqa: E731
        axes[0, 0].imshow(small(self.a))
        axes[0, 0].set_title(f"A: {na}", fontsize=9, parse_math=False)
        axes[0, 1].imshow(small(self.b_aligned))
        axes[0, 1].set_title(f"B aligned to A: {nb}", fontsize=9, parse_math=False)
        finite = self.diff[np.isfinite(self.diff)]
        vmax = max(0.05, float(np.percentile(finite, 99.5))) if finite.size else 1.0
        im = axes[0, 2].imshow(np.ma.masked_invalid(small(self.diff)), cmap="magma", vmin=0, vmax=vmax)
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
                    draw_map(ax, small(r.map))
                    whose = "" if official_weights(r) else "this model's "  # the paper's score: official only
                    score = "no global score" if r.score is None else f"{whose}score {r.score:.2f}"
                    ax.set_title(f"{label}: localization map, {score}", fontsize=9)
                else:
                    lo, hi = robust_limits(r.noiseprint)  # finite values only: one NaN made both NaN
                    ax.imshow(small(r.noiseprint), cmap=map_cmap("gray"), vmin=lo, vmax=hi)  # NaN seen
                    ax.set_title(f"{label}: Noiseprint++ (no localization)", fontsize=9)
            lines = (
                [
                    f"B shifted by (dy, dx) = {self.shift}{self._turned_back}",
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


def _is_grey(x: np.ndarray, valid: np.ndarray) -> bool:
    """Whether a picture is grey levels stored as RGB (its channels equal but for JPEG's rounding)."""
    px = x[valid][:: max(1, int(valid.sum()) // 200_000)].astype(np.int16)
    return px.size > 0 and float(np.percentile(np.abs(px - px[:, :1]), 99)) <= 3


def _tone_matched(ref: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``b`` (float, channels last) with each channel mapped to ``ref``'s by a cubic fitted on
    the valid pixels, refitted without the fifth of them it fits worst (a local edit is no tone)."""
    out = np.empty_like(b)
    step = max(1, int(valid.sum()) // 200_000)
    for c in range(b.shape[2]):
        x, y = b[..., c][valid][::step] / 255.0, ref[..., c][valid][::step] / 255.0
        keep = np.ones(x.shape, bool)
        for _ in range(2):
            coef = np.linalg.lstsq(np.vander(x[keep], 4), y[keep], rcond=None)[0]
            err = np.abs(np.vander(x, 4) @ coef - y)
            keep = err <= np.percentile(err, 80)
        out[..., c] = np.clip(np.polyval(coef, b[..., c] / 255.0), 0, 1) * 255.0
    return out


def _clipped_alike(ref: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Where (per channel) B is clipped at white (or black) and so is most of B where A holds the
    same tone: the curve that brightened (or darkened) B saturated that tone, whatever A held
    there. A region painted white over tones that B keeps elsewhere is not among them. (B's median
    per tone of A, in steps of ``CLIP_STEP`` levels: a fitted curve's extrapolation above the
    clip went wherever a local edit pulled it.)"""
    out = np.zeros(b.shape, bool)
    lo, hi = CLIP_LEVEL, 255 - CLIP_LEVEL
    bins = 256 // CLIP_STEP
    for c in range(b.shape[2]):
        tone = np.clip(np.rint(ref[..., c]), 0, 255).astype(np.int64) // CLIP_STEP
        level = np.clip(np.rint(b[..., c]), 0, 255).astype(np.int64)
        counts = np.bincount(tone[valid] * 256 + level[valid], minlength=bins * 256).reshape(bins, 256)
        total = counts.sum(axis=1)
        median = (counts.cumsum(axis=1) >= (total[:, None] + 1) / 2).argmax(axis=1)  # B's median per tone of A
        known = total >= CLIP_COUNT
        white, black = known & (median >= hi - CLIP_MARGIN), known & (median <= lo + CLIP_MARGIN)
        out[..., c] = ((level >= hi) & white[tone]) | ((level <= lo) & black[tone])
    return out


def _difference(ref: np.ndarray, b: np.ndarray, valid: np.ndarray, lined_up: bool) -> tuple[np.ndarray, list[str]]:
    """|A − B| (0..1) per pixel and notes: in grey levels when only one version is grey, after B's
    tones are matched to A's when a global change (gamma, brightness, contrast, a colour filter)
    accounts for most of the difference (it showed as '86 % of pixels differ' for a brightened
    copy, a local edit lost in it)."""
    fa, fb, notes = ref.astype(np.float32), b.astype(np.float32), []
    if lined_up and valid.any() and _is_grey(ref, valid) != _is_grey(b, valid):
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        fa, fb = (fa @ luma)[..., None], (fb @ luma)[..., None]
        grey, colour = ("B", "A") if _is_grey(b, valid) else ("A", "B")
        notes.append(
            f"{grey} is in grey levels and {colour} in colour: compared by brightness only (the colour that "
            f"{grey} lacks is not counted as a change)"
        )
    diff = np.abs(fa - fb).mean(axis=2) / 255.0
    raw = float(diff[valid].mean()) if lined_up and valid.any() else 0.0
    if raw >= TONE_MIN:
        err = np.abs(fa - _tone_matched(fa, fb, valid))
        err[_clipped_alike(fa, fb, valid)] = 0.0  # highlights the curve blew out are no change
        matched = err.mean(axis=2) / 255.0
        spread = float((diff[valid] - matched[valid] > TONE_MIN).mean())  # where the curve explains a change
        if float(matched[valid].mean()) <= TONE_FIT * raw and spread >= TONE_SPREAD:
            before = 100 * float((diff[valid] > CHANGE_THRESHOLD).mean())  # a recolouring of all the sky matches too
            diff = matched
            notes.append(
                f"B's tones or colours differ from A's over the whole picture (brightness, contrast, gamma or a "
                f"colour filter): B was matched to A's tones before the difference, which shows local changes "
                f"only (before matching: mean |A − B| {raw:.3f}, {before:.1f}% of pixels differing by more than "
                f"{CHANGE_THRESHOLD:.0%})"
            )
    return diff, notes


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


def _whose(r: Result) -> str:
    """The weights that made ``r``, in a few words (the file by its name alone, as reports name it)."""
    if (method := classic_method(r)) is not None:
        return f"the classic detector {method}"
    return weights_label(r.weights)


def _mixed_weights(ra: Result | None, rb: Result | None) -> list[str]:
    """A note when the two analyses come from different weights (two Results made apart, or the
    casebook's model replaced between them, or two classic detectors): side by side they read as
    one model's answers. The same weights file at two paths is one model."""
    if ra is None or rb is None:
        return []
    classic = [r.label for r in (ra, rb) if classic_method(r) is not None]
    if same_weights(ra.weights, rb.weights) and (not classic or len(classic) == 2 and ra.label == rb.label):
        return []
    what = "detectors" if classic else "weights"
    return [
        f"A and B were analyzed with different {what} (A: {_whose(ra)}; B: {_whose(rb)}): their maps "
        "and scores are two models' answers, not one model's on two versions"
    ]


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
    differs, with a note) and translated by phase correlation when that is reliable; then zoomed
    (a copy enlarged a little and framed again) when a zoom leaves clearly less difference. When B
    cannot be lined up, ``reliable`` is False and no difference is reported as a change. A copy
    mirrored left-right is flipped back, one turned by up to 5 degrees turned back
    (:mod:`trufor_lab.casebook.tilt`), and a global change of tones matched before the difference
    (highlights or shadows it clipped are no change; a grey copy of a colour picture: compared by
    brightness); notes say each.
    Each version is analyzed *as given* (never resized: resizing destroys forensic traces) when
    ``model`` is passed; a :class:`Result` is used as it is.
    """
    ia, na, ra = _as_image(a, model, names[0] if names else None)
    ib, nb, rb = _as_image(b, model, names[1] if names else None)
    al = line_up(ia, ib, estimate_shift)
    if estimate_shift:
        al = untilt(ia, al)
    if (al.turn or al.mirrored) and rb is not None:  # its maps with it: the panels below line up with B's
        rb = _turned(rb, al.turn, al.mirrored)
    aligned, valid = al.aligned, al.valid
    ref = ia if al.reference is None else al.reference  # A at a smaller B's resolution
    diff, tone_notes = _difference(ref, aligned, valid, al.reliable)
    diff[~valid] = np.nan
    return Comparison(
        name_a=na,
        name_b=nb,
        a=ia,
        b=al.b,
        b_aligned=aligned,
        diff=diff.astype(np.float32),
        shift=al.shift,
        shift_peak=al.peak,
        notes=[*al.notes, *tone_notes, *_mixed_weights(ra, rb)],
        result_a=ra,
        result_b=rb,
        reliable=al.reliable,
        tilt=al.tilt,
    )


# --------------------------------------------------------------------------- casebook widget
