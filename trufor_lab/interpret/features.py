"""Summaries of captured feature maps (numpy/torch only; ``.plot()`` draws them lazily).

Inputs are feature maps ``(1, C, H, W)`` / ``(C, H, W)`` (torch or numpy; a batch of several
images is refused: pass ``fmap[i]``) or a capture dict as returned by :func:`trufor_lab.capture` / ``Result.captures``.

>>> stats = channel_stats(cap.tensors["fusion.stage1.ffm"])
>>> stats.top(8)                                  # channel indices with most energy
>>> pca_rgb(cap.tensors["rgb.stage2.out"]).plot()
>>> result = tl.analyze(model, "photo.jpg", capture=branch_comparison_names())
>>> branch_similarity(result.captures).plot()     # RGB vs Noiseprint++ before/after FRM
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from trufor_lab.common.arrays import ArrayLike, pca_project, record_repr, to_chw, top_k
from trufor_lab.viz.figures import (
    figure_html,
    plot_branch_comparison,
    plot_channel_stats,
    plot_pca,
    plot_spatial_stats,
)

__all__ = [
    "BranchComparison",
    "ChannelStats",
    "PCAImage",
    "SpatialStats",
    "branch_comparison_names",
    "branch_similarity",
    "channel_stats",
    "cosine_similarity_map",
    "pca_rgb",
    "spatial_stats",
    "to_chw",
    "top_channels",
]


class _ShownAsFigure:
    """A feature view a notebook shows as its ``.plot()`` (under its ``name``, if it has one)."""

    def _repr_html_(self) -> str:
        return figure_html(self.plot(), getattr(self, "name", ""))  # type: ignore[attr-defined]


# -- per-channel statistics -------------------------------------------------------------------
@dataclass
class ChannelStats(_ShownAsFigure):
    """Per-channel mean, std, min, max and energy (mean square) of a ``(C, H, W)`` map."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    energy: np.ndarray
    name: str = ""

    @property
    def channels(self) -> int:
        return len(self.mean)

    def top(self, k: int = 16, by: str = "energy") -> np.ndarray:
        """Indices of the ``k`` channels with the largest ``by`` statistic, largest first."""
        return top_k(getattr(self, by), k)

    def plot(self, ax=None):
        """Energy per channel (bars) with mean ± std; returns the Figure."""
        return plot_channel_stats(self, ax=ax)


def channel_stats(fmap: ArrayLike, name: str = "") -> ChannelStats:
    """:class:`ChannelStats` of a feature map."""
    a = to_chw(fmap)
    a = a.reshape(a.shape[0], -1)
    return ChannelStats(a.mean(1), a.std(1), a.min(1), a.max(1), (a * a).mean(1), name)


def top_channels(fmap: ArrayLike, k: int = 16, by: str = "energy") -> np.ndarray:
    """Indices of the ``k`` strongest channels (``by`` one of mean, std, min, max, energy)."""
    return channel_stats(fmap).top(k, by)


# -- spatial statistics -----------------------------------------------------------------------
@dataclass
class SpatialStats(_ShownAsFigure):
    """Mean and standard deviation over channels at every pixel, ``(H, W)`` each."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    mean: np.ndarray
    std: np.ndarray
    name: str = ""

    def plot(self, fig=None):
        return plot_spatial_stats(self, fig=fig)


def spatial_stats(fmap: ArrayLike, name: str = "") -> SpatialStats:
    """:class:`SpatialStats` of a feature map."""
    a = to_chw(fmap)
    return SpatialStats(a.mean(0), a.std(0), name)


# -- PCA to RGB -------------------------------------------------------------------------------
@dataclass
class PCAImage(_ShownAsFigure):
    """The first principal components of the channels shown as colours.

    ``image`` is ``(H, W, 3)`` in ``[0, 1]``; ``explained`` the variance ratio of each component;
    ``components`` ``(k, C)`` the channel loadings.
    """

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    image: np.ndarray
    explained: np.ndarray
    components: np.ndarray
    name: str = ""

    def plot(self, ax=None):
        return plot_pca(self, ax=ax)


def pca_rgb(fmap: ArrayLike, n_components: int = 3, percentile: float = 1.0, name: str = "") -> PCAImage:
    """Project each pixel's channel vector on the top principal components, scaled to ``[0, 1]``.

    Each component is stretched between its ``percentile`` and ``100 - percentile`` values (robust
    to outliers). Fewer than 3 components (e.g. 1-channel maps) leave the rest grey (0.5).
    """
    image, explained, comps = pca_project(fmap, n_components, percentile)
    return PCAImage(image, explained, comps, name)


# -- branch comparison ------------------------------------------------------------------------
def cosine_similarity_map(a: ArrayLike, b: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity between the channel vectors of two maps at each pixel, ``(H, W)``."""
    x, y = to_chw(a), to_chw(b)
    if x.shape != y.shape:
        raise ValueError(f"feature maps differ in shape: {x.shape} vs {y.shape}")
    num = (x * y).sum(0)
    den = np.sqrt((x * x).sum(0) * (y * y).sum(0))
    return num / np.maximum(den, eps)


def _global_cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> float:
    x, y = a.ravel(), b.ravel()
    return float(x @ y / max(np.sqrt((x @ x) * (y @ y)), eps))


@dataclass
class BranchComparison(_ShownAsFigure):
    """How similar the RGB and Noiseprint++ streams are at each stage, before and after FRM.

    ``before``/``after``: mean per-pixel cosine similarity (channel vectors) per stage;
    ``before_global``/``after_global``: cosine of the whole flattened maps; ``maps_before`` /
    ``maps_after``: the per-pixel similarity maps.
    """

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    stages: list[int]
    before: np.ndarray
    after: np.ndarray
    before_global: np.ndarray
    after_global: np.ndarray
    maps_before: list[np.ndarray]
    maps_after: list[np.ndarray]

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "stage": list(self.stages),
            "before": self.before.tolist(),
            "after": self.after.tolist(),
            "before_global": self.before_global.tolist(),
            "after_global": self.after_global.tolist(),
        }

    def plot(self, fig=None):
        return plot_branch_comparison(self, fig=fig)


def branch_comparison_names(stages: Sequence[int] | None = None) -> list[str]:
    """Catalog names (patterns when ``stages`` is None) that :func:`branch_similarity` needs."""
    if stages is None:
        return ["rgb.stage*.out", "noiseprint.stage*.out", "fusion.stage*.frm.*"]
    out: list[str] = []
    for s in stages:
        out += [
            f"rgb.stage{s}.out",
            f"noiseprint.stage{s}.out",
            f"fusion.stage{s}.frm.rgb",
            f"fusion.stage{s}.frm.noiseprint",
        ]
    return out


def branch_similarity(captures: Mapping[str, ArrayLike], stages: Sequence[int] | None = None) -> BranchComparison:
    """Cosine similarity between RGB and Noiseprint++ features per stage, before and after FRM.

    ``captures`` must hold ``rgb.stageN.out``, ``noiseprint.stageN.out``, ``fusion.stageN.frm.rgb``
    and ``fusion.stageN.frm.noiseprint`` (capture :func:`branch_comparison_names`).
    """
    if hasattr(captures, "tensors"):
        captures = captures.tensors  # a Capture
    if stages is None:
        stages = sorted({int(m.group(1)) for k in captures if (m := re.fullmatch(r"rgb\.stage(\d+)\.out", k))})
    if not stages:
        raise KeyError("no 'rgb.stageN.out' in the captures: capture branch_comparison_names() first")
    need = branch_comparison_names(stages)
    missing = [n for n in need if n not in captures]
    if missing:
        raise KeyError(f"captures lack {missing}; capture branch_comparison_names({list(stages)})")
    mb, ma, gb, ga = [], [], [], []
    for s in stages:
        rb, nb = to_chw(captures[f"rgb.stage{s}.out"]), to_chw(captures[f"noiseprint.stage{s}.out"])
        ra, na = to_chw(captures[f"fusion.stage{s}.frm.rgb"]), to_chw(captures[f"fusion.stage{s}.frm.noiseprint"])
        mb.append(cosine_similarity_map(rb, nb))
        ma.append(cosine_similarity_map(ra, na))
        gb.append(_global_cosine(rb, nb))
        ga.append(_global_cosine(ra, na))
    return BranchComparison(
        list(stages),
        np.array([m.mean() for m in mb]),
        np.array([m.mean() for m in ma]),
        np.array(gb),
        np.array(ga),
        mb,
        ma,
    )
