"""What an attribution explains, and what the image is compared with.

Targets: TruFor returns maps and a score, not class logits, so the quantity to explain is a
callable ``target(TruForOutput) -> (B,)``: :class:`ScoreTarget` (detection logit or score),
:class:`RegionTarget` (mean localization probability inside a region), :class:`ConfidenceTarget`
(mean confidence).

Forensic baselines (:func:`make_baseline`): ``'blur'`` (Gaussian-blurred copy: same content, no
high-frequency traces; the default), ``'black'``, ``'mean'`` (flat per-channel mean colour),
``'noise'`` (the blurred copy plus fresh Gaussian noise with the image's residual level). A float
or a tensor also works.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trufor_lab.model import TruForOutput

__all__ = [
    "BASELINES",
    "BaselineLike",
    "ConfidenceTarget",
    "RegionTarget",
    "ScoreTarget",
    "Target",
    "baseline_label",
    "gaussian_blur",
    "make_baseline",
    "per_item",
    "target_label",
]

Target = Callable[[TruForOutput], torch.Tensor]
BaselineLike = Union[str, float, torch.Tensor, None]

BASELINES = ("blur", "black", "mean", "noise")


class ScoreTarget(nn.Module):
    """Detection output per image: ``'logit'`` (default; unbounded, gradients do not saturate)
    or ``'score'`` (the sigmoid, the integrity score)."""

    def __init__(self, kind: str = "logit") -> None:
        super().__init__()
        if kind not in ("logit", "score"):
            raise ValueError(f"kind must be 'logit' or 'score', got {kind!r}")
        self.kind = kind

    @property
    def label(self) -> str:
        return "detection logit" if self.kind == "logit" else "integrity score"

    def forward(self, out: TruForOutput) -> torch.Tensor:
        return out.det_logit[:, 0] if self.kind == "logit" else out.score


class RegionTarget(nn.Module):
    """Mean localization probability (P(forged)) inside ``mask`` (HxW, nonzero = inside);
    ``None`` means the whole image. A mask of the image's shape at another size (the input was
    shrunk by ``max_side``) is resized (nearest); one of another shape is refused."""

    quantity = "map"

    def __init__(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        if mask is None:
            self.mask = None
        else:
            m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask.detach().cpu())
            if m.ndim != 2:
                raise ValueError(f"the region mask must be (H, W), got shape {tuple(m.shape)}")
            if not bool((m != 0).any()):
                raise ValueError("the region mask is empty")
            self.mask = (m != 0).to(torch.float64)

    @property
    def label(self) -> str:
        where = "whole image" if self.mask is None else f"region of {float(self.mask.mean()):.1%} of the image"
        return f"mean {self.quantity} ({where})"

    def _values(self, out: TruForOutput) -> torch.Tensor:
        return out.map

    def forward(self, out: TruForOutput) -> torch.Tensor:
        v = self._values(out)  # (B, H, W)
        if self.mask is None:
            return v.mean(dim=(1, 2))
        w = self.mask.to(device=v.device, dtype=v.dtype)
        if w.shape != v.shape[-2:]:
            (mh, mw), (h, ww) = w.shape, v.shape[-2:]
            if abs(mh * ww - mw * h) > max(mh, mw, h, ww):  # not the same shape at another size
                hint = " (transposed?)" if (mh, mw) == (ww, h) else ""
                raise ValueError(f"the region mask is {mw}x{mh} but the image is {ww}x{h}{hint}")
            w = F.interpolate(w[None, None], size=v.shape[-2:], mode="nearest")[0, 0]
        n = w.sum()
        if float(n) == 0:
            raise ValueError("the region mask is empty at this resolution")
        return (v * w).sum(dim=(1, 2)) / n


class ConfidenceTarget(RegionTarget):
    """Mean confidence (sigmoid of the confidence logits) inside ``mask`` (whole image if None)."""

    quantity = "confidence"

    def _values(self, out: TruForOutput) -> torch.Tensor:
        return out.conf


def target_label(target: Any) -> str:
    return str(getattr(target, "label", None) or getattr(target, "__name__", None) or type(target).__name__)


def per_item(v: Any, batch: int) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"a target must return a tensor, got {type(v).__name__}")
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (batch,):
        raise ValueError(f"a target must return one value per batch item, shape ({batch},); got {tuple(v.shape)}")
    return v


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding (radius ``ceil(3 sigma)``)."""
    if sigma <= 0:
        return x.clone()
    r = min(math.ceil(3 * sigma), x.shape[2] - 1, x.shape[3] - 1)
    if r < 1:
        return x.clone()
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(device=x.device, dtype=x.dtype)
    c = x.shape[1]
    y = F.pad(x, (r, r, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_baseline(
    x: torch.Tensor, baseline: BaselineLike = "blur", *, sigma: float = 3.0, seed: int = 0
) -> torch.Tensor:
    """The reference input for ``x`` (RGB/256, ``(B, 3, H, W)``); see the module docstring."""
    if isinstance(baseline, torch.Tensor):
        return baseline.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "black":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if baseline == "blur":
        return gaussian_blur(x, sigma)
    if baseline == "noise":
        low = gaussian_blur(x, sigma)
        level = (x - low).std(dim=(2, 3), keepdim=True)
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
        return (low + level * z).clamp(0, 255 / 256)
    raise ValueError(f"baseline must be one of {BASELINES}, a number or a tensor; got {baseline!r}")


def baseline_label(baseline: BaselineLike, sigma: float) -> str:
    if isinstance(baseline, torch.Tensor):
        return "tensor"
    if baseline in ("blur", "noise"):
        return f"{baseline} (sigma {sigma:g})"
    return str(baseline)
