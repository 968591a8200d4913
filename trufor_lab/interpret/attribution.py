"""The :class:`Attribution` result (the map, its method, target and baseline, ``plot()``,
``to_result()`` for the Result viewers) and :func:`plot_modality_shares` (RGB vs Noiseprint++)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trufor_lab.common.arrays import brief
from trufor_lab.common.paths import short_name
from trufor_lab.inference.analyze import Result
from trufor_lab.inference.weights import WeightsInfo
from trufor_lab.model.identity import mixed_weights_note, weights_label
from trufor_lab.viz.figures import display_stride, figure_html, for_display, map_cmap, new_figure, show_image

__all__ = ["Attribution", "plot_modality_shares"]

NOT_CONVERGED = "IG did not converge"
NOTHING = "nothing to explain"


def rounding_level(*values: float) -> float:
    """What float rounding alone can move values of this size by: 1e-6 of the largest (1e-12 at
    least). Relative only: a fixed floor (1e-3, then 1e-6) hid an IG error of 99 % on small
    targets (a map's mean in a pristine region is 1e-6 to 1e-5)."""
    return max(1e-12, 1e-6 * max(abs(v) for v in values))


def nothing_note(why: str, *, shares: bool = False, target: bool = False) -> str:
    """The note of an attribution that has no difference to explain (``why``)."""
    other = " or target" if target else ""
    return f"{NOTHING}: {why}: choose another baseline{other}" + (" (no modality shares)" if shares else "")


def same_target(target_value: float, baseline_value: float) -> bool:
    """Whether the target is the same for the image and the baseline, to rounding."""
    return abs(target_value - baseline_value) <= rounding_level(target_value, baseline_value)


def _robust_abs(a: np.ndarray, pct: float = 99.5) -> float:
    """Colour limit: the ``pct`` percentile of the finite |a|, else their max, else 1 (an infinite
    value made the limit infinite: every finite pixel drawn as none)."""
    v = np.abs(np.asarray(a, dtype=np.float64))
    v = v[np.isfinite(v)]
    if not v.size:
        return 1.0
    for lim in (float(np.percentile(v, pct)), float(v.max())):
        if lim > 0:
            return lim
    return 1.0


def _signed(a: np.ndarray) -> bool:
    """Whether a map holds negative values (drawn around 0); NaN pixels aside, an all-NaN map is
    not (``np.nanmin`` warned "All-NaN slice encountered" on it)."""
    return bool(np.any(np.asarray(a) < 0))


@dataclass
class Attribution:
    """An attribution map ``(H, W)`` aligned with ``image`` ``(H, W, 3)`` uint8.

    ``map`` reduces the per-channel attributions ``raw`` ``(C, H, W)``: summed over channels
    for IG, InputXGradient and the modality map (so IG's map sums to the explained
    difference), max of |gradient| for saliency, the mean for occlusion (equal channels). For
    layer methods ``map`` is the stage map upsampled to the image. ``delta`` is IG's
    convergence delta ``sum(attr) - (target(x) - target(baseline))``. With ``max_side``,
    ``image`` is the downscaled image that was explained and ``original_size`` the input's.
    ``notes`` says what a reader must know, e.g. that IG did not converge (its map does not sum
    to the explained difference: raise ``n_steps``), or that there is nothing to explain (the
    baseline is the image, or gives the same target, to rounding; modality shares are then NaN).
    ``weights``: the record of the weights that made it (the model's ``weights_info``; marked
    'custom' when they were changed in memory after loading), shown in its title and repr.
    """

    image: np.ndarray
    map: np.ndarray
    method: str
    target: str
    baseline: str | None = None
    layer: str | None = None
    delta: float | None = None
    target_value: float | None = None
    baseline_value: float | None = None
    original_size: tuple[int, int] | None = None
    max_side: int | None = None
    name: str = ""
    label: str | None = None
    raw: np.ndarray | None = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()
    weights: WeightsInfo | None = None  # the model's (``model.weights_info`` when it ran), as Result's

    def __post_init__(self) -> None:
        if self.label is None:
            where = f" @ {self.layer}" if self.layer else ""
            self.label = f"{self.method}{where}: {self.target}"
        self.notes = (*self.notes, *self._ig_notes())

    def _ig_notes(self) -> tuple[str, ...]:
        """IG's map sums to the explained difference, else a note says so (once: a replace()
        copy has it); a difference at rounding level is nothing to explain."""
        t, b, delta = self.target_value, self.baseline_value, self.delta
        if delta is None or t is None or b is None or any(n.startswith((NOT_CONVERGED, NOTHING)) for n in self.notes):
            return ()
        diff = t - b
        if same_target(t, b):
            why = f"the target is {t:.6g} for the image and {b:.6g} for the baseline, the same to rounding"
            return (nothing_note(why, shares=self.shares is not None, target=True),)
        if abs(delta) > max(0.1 * abs(diff), rounding_level(t, b)):  # the map's total is off by > 10 %
            return (
                f"{NOT_CONVERGED}: the map sums to {diff + delta:.3g}, the explained "
                f"difference is {diff:.3g} (delta {delta:.2g}): raise n_steps",
            )
        return ()

    @property
    def size(self) -> tuple[int, int]:
        return int(self.map.shape[0]), int(self.map.shape[1])

    @property
    def downscaled(self) -> bool:
        return self.original_size is not None and tuple(self.original_size) != self.size

    # Result-like fields for code written for Results; the viewers show to_result() (they call it)
    @property
    def conf(self) -> np.ndarray:
        """All ones (an attribution has no confidence map; nothing is hidden)."""
        return np.ones(self.size, dtype=np.float32)

    @property
    def noiseprint(self) -> np.ndarray:
        """The raw attribution map (what a viewer's grey, robust-range panel should show)."""
        return self.map

    @property
    def score(self) -> None:
        return None

    def display_map(self) -> np.ndarray:
        """``map`` scaled to [0, 1] for fixed-range colour maps: signed maps around 0.5
        (0.5 = no attribution), unsigned ones from 0; limit = the 99.5th percentile of |map|."""
        lim = _robust_abs(self.map)
        if _signed(self.map):
            return np.clip(0.5 + self.map / (2 * lim), 0, 1).astype(np.float32)
        return np.clip(self.map / lim, 0, 1).astype(np.float32)

    def to_result(self):
        """A :class:`~trufor_lab.inference.analyze.Result` showing this attribution (``map`` =
        :meth:`display_map`, ``noiseprint`` = the raw map, ``conf`` = ones, no score), e.g. for
        ``CompareViewer``."""
        return Result(
            image=self.image,
            noiseprint=self.map.astype(np.float32),
            map=self.display_map(),
            conf=self.conf,
            name=self.name,
            label=self.label,
            weights=self.weights,  # a comparison of two attributions says when two models made them
            notes=("attribution scaled to [0, 1] for display", self.title),
            captures={"shown": "Attribution (raw)", "map_title": "Attribution (0.5 = none)"},
        )

    @property
    def shares(self) -> dict[str, float] | None:
        """Modality shares of the total |attribution| (modality attribution only)."""
        return self.extras.get("shares")

    @property
    def title(self) -> str:
        parts = [self.method + (f" @ {self.layer}" if self.layer else ""), self.target]
        if self.baseline:
            parts.append(f"baseline {self.baseline}")
        if self.delta is not None:
            parts.append(f"delta {self.delta:.2g}")
        t = " | ".join(parts)
        if any(n.startswith(NOT_CONVERGED) for n in self.notes):
            t += " (not converged: raise n_steps)"
        if any(n.startswith(NOTHING) for n in self.notes):
            t += " (nothing to explain)"
        h, w = self.size
        if self.downscaled:
            H, W = self.original_size
            t += f"\ncomputed at {w}x{h}, downscaled from {W}x{H} (max_side={self.max_side})"
        if self.weights is not None:
            t += f"\nby {weights_label(self.weights)}"
        return t

    def _panel_title(self, width: int = 44) -> str:
        """:attr:`title` broken between its parts into lines of about ``width`` characters, for
        a panel: on one line it ran across the neighbouring panels' titles (notebook 06)."""
        lines = []
        for line in self.title.split("\n"):
            tokens = re.split(r"( \| | (?=\())", line)  # pieces, and between them " | " or " " before "("
            cur = tokens[0]
            for sep, piece in zip(tokens[1::2], tokens[2::2]):
                if len(cur) + len(sep) + len(piece) <= width:
                    cur += sep + piece
                else:
                    lines.append(cur)
                    cur = piece
            lines.append(cur)
        return "\n".join(lines)

    def _shown(self) -> np.ndarray:
        """The image averaged over blocks to at most :data:`~trufor_lab.viz.figures.MAX_DISPLAY_SIDE`
        pixels a side, as the maps are drawn (a 12 MP image and its maps were drawn whole)."""
        return for_display(self.image, display_stride(self.image.shape))

    def _overlay(self, ax, data: np.ndarray, alpha: float, shown: np.ndarray | None = None):
        """``data`` over the grey image (``shown``: :meth:`_shown`, once for every panel), both
        averaged over the same blocks, the colour scale from the whole map."""
        step = display_stride(self.image.shape)
        ax.imshow((self._shown() if shown is None else shown).mean(axis=2), cmap="gray", vmin=0, vmax=255)
        lim, signed = _robust_abs(data), _signed(data)
        im = ax.imshow(
            for_display(data, step),
            cmap=map_cmap("RdBu_r" if signed else "inferno"),  # NaN pixels seen, not the bare image
            vmin=-lim if signed else 0,
            vmax=lim,
            alpha=alpha,
        )
        if not np.isfinite(data).any():  # a colour bar of 0..1 and a panel of one colour: say why
            ax.text(
                0.5, 0.5, "no finite value\n(the map is NaN or Inf)", transform=ax.transAxes, ha="center", va="center"
            )
        ax.set_axis_off()
        return im

    def plot(self, ax=None, alpha: float = 0.6):
        """Overlay of ``map`` on the (gray) image; modality results without ``ax`` get the
        panel figure of :meth:`plot_modalities`. Returns the Figure."""
        if ax is None and self.shares is not None:
            return self.plot_modalities()
        if ax is None:
            fig = new_figure(figsize=(4.4, 4.4))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        im = self._overlay(ax, self.map, alpha)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(self._panel_title(), fontsize=8, parse_math=False)
        return fig

    def plot_modalities(self, fig=None, alpha: float = 0.6):
        """Image, RGB attribution, Noiseprint++ attribution and the share bar; returns the Figure."""
        if self.shares is None:
            raise ValueError("not a modality attribution")
        if fig is None:
            fig = new_figure(figsize=(13, 3.6))
        axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1, 0.8]))
        shown = self._shown()
        show_image(axes[0], shown, self.name or "image")
        axes[0].set_title(short_name(self.name) if self.name else "image", fontsize=9, parse_math=False)
        axes[0].set_axis_off()
        for ax, key in zip(axes[1:3], ("rgb", "noiseprint")):
            im = self._overlay(ax, self.extras["maps"][key], alpha, shown)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            share = self.shares[key]
            ax.set_title(f"{key}: {'no share' if np.isnan(share) else f'{100 * share:.1f}% of |attr|'}", fontsize=9)
        plot_modality_shares([self], ax=axes[3])
        fig.suptitle(self.title, fontsize=9, parse_math=False)
        return fig

    def __repr__(self) -> str:
        """One line: what was explained, and the arrays by dtype and shape."""
        h, w = self.image.shape[:2]
        parts = [f"{self.label!r}", f"name={self.name!r}", f"size={w}x{h}", f"map={brief(self.map)}"]
        parts += [
            f"{k}={brief(getattr(self, k))}"
            for k in ("baseline", "delta", "target_value", "baseline_value", "original_size")
            if getattr(self, k) is not None
        ]
        if self.raw is not None:
            parts.append(f"raw={brief(self.raw)}")
        if self.weights is not None:
            parts.append(f"weights={weights_label(self.weights)!r}")
        if self.notes:
            parts.append(f"notes={len(self.notes)} (see .notes)")
        return f"Attribution({', '.join(parts)})"

    def _repr_html_(self) -> str:
        return figure_html(self.plot(), self.title)


def plot_modality_shares(attributions: Sequence[Attribution], ax=None):
    """Stacked bars: share of |attribution| per modality for each image; returns the Figure.
    Attributions of different weights (two models' shares side by side) are said to be: each row
    names its weights, and so does the title (an own figure names the one model's weights too)."""
    mixed = mixed_weights_note((a.weights for a in attributions), "these shares")
    own = ax is None
    if ax is None:
        fig = new_figure(figsize=(4.5, 1.2 + 0.4 * len(attributions)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    names = [a.name or f"image{i}" for i, a in enumerate(attributions)]
    rgb = np.array([a.shares["rgb"] for a in attributions])
    y = np.arange(len(attributions))
    ax.barh(y, rgb, color="C0", label="RGB")
    ax.barh(y, 1 - rgb, left=rgb, color="C3", label="Noiseprint++")
    for i in np.flatnonzero(np.isnan(rgb)):  # NaN shares (nothing to explain): an empty row, unsaid
        ax.text(0.5, y[i], "no shares (see .notes)", ha="center", va="center", fontsize=7, color="0.3")
    ax.set_yticks(y)
    rows = [short_name(n) + (f"\n{weights_label(a.weights)}" if mixed else "") for n, a in zip(names, attributions)]
    ax.set_yticklabels(rows, fontsize=8 if not mixed else 6, parse_math=False)  # '$' as written
    if mixed:
        ax.set_title("from different weights (each row names its own)", fontsize=8, color="#b00020")
    elif own and attributions and attributions[0].weights is not None:
        ax.set_title(f"by {weights_label(attributions[0].weights)}", fontsize=7, parse_math=False)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of |attribution|")
    ax.legend(fontsize=7, loc="lower right")
    return fig
