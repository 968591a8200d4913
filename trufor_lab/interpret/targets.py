"""What an attribution explains, and what the image is compared with.

Targets: TruFor returns maps and a score, not class logits, so the quantity to explain is a
callable ``target(TruForOutput) -> (B,)``: :class:`ScoreTarget` (detection logit or score),
:class:`RegionTarget` (mean localization probability inside a region), :class:`ConfidenceTarget`
(mean confidence).

Forensic baselines (:func:`make_baseline`): ``'blur'`` (Gaussian-blurred copy: same content, no
high-frequency traces; the default), ``'black'``, ``'mean'`` (flat per-channel mean colour),
``'noise'`` (the blurred copy plus fresh Gaussian noise with the image's residual level); ``None``
is the default and ``'zeros'`` is ``'black'`` (the model input 0). A number, an RGB/256 tensor
(broadcastable to the image) or an image (numpy array, PIL, uint8 tensor: converted as the input
is) also works; like the input, a baseline must be finite and within [0, 1] (RGB/256).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from trufor_lab.inference.preprocess import load_image, to_tensor
from trufor_lab.model import TruForOutput

__all__ = [
    "BASELINES",
    "BaselineLike",
    "ConfidenceTarget",
    "RegionTarget",
    "ScoreTarget",
    "Target",
    "baseline_label",
    "baseline_options",
    "fit_target",
    "fit_baseline",
    "gaussian_blur",
    "make_baseline",
    "per_item",
    "resolve_target",
    "target_label",
]

Target = Callable[[TruForOutput], torch.Tensor]
BaselineLike = Union[str, float, torch.Tensor, np.ndarray, Image.Image, None]

BASELINES = ("blur", "black", "mean", "noise")
#: Other names for the baselines (``'zeros'``: the attributed input is 0).
BASELINE_ALIASES = {"zeros": "black"}


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
    ``None`` means the whole image. The mask has the image's size; where an attribution's
    ``max_side`` shrank the input it is resized with it (nearest, :func:`fit_target`); any other
    size is refused (a mask of a larger picture was resized onto a crop of it, unsaid)."""

    quantity = "map"

    def __init__(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        if mask is None:
            self.mask = None
        else:
            # contiguous: a flipped mask (negative strides) is a mask like any other
            m = torch.as_tensor(
                np.ascontiguousarray(mask) if not isinstance(mask, torch.Tensor) else mask.detach().cpu()
            )
            if m.ndim != 2:
                raise ValueError(f"the region mask must be (H, W), got shape {tuple(m.shape)}")
            if not bool((m != 0).any()):
                raise ValueError("the region mask is empty")
            self.mask = (m != 0).to(torch.float64)
        #: The region's share of the image (kept when :meth:`fitted` resizes the mask).
        self.share = None if self.mask is None else float(self.mask.mean())

    @property
    def label(self) -> str:
        where = "whole image" if self.share is None else f"region of {self.share:.1%} of the image"
        return f"mean {self.quantity} ({where})"

    def _values(self, out: TruForOutput) -> torch.Tensor:
        return out.map

    def forward(self, out: TruForOutput) -> torch.Tensor:
        v = self._values(out)  # (B, H, W)
        if self.mask is None:
            return v.mean(dim=(1, 2))
        w = self.mask.to(device=v.device, dtype=v.dtype)
        _same_size(w.shape, v.shape[-2:])
        return (v * w).sum(dim=(1, 2)) / w.sum()

    def fitted(self, size: tuple[int, int]) -> "RegionTarget":
        """This target with its mask resized (nearest) to ``size`` (H, W): the input shrunk by ``max_side``."""
        out = copy.copy(self)
        out.mask = F.interpolate(self.mask[None, None], size=size, mode="nearest")[0, 0]
        if float(out.mask.sum()) == 0:
            raise ValueError(f"the region mask is empty at {size[1]}x{size[0]} (the input shrunk by max_side)")
        return out


def _same_size(mask: tuple[int, ...], image: tuple[int, ...]) -> None:
    (mh, mw), (h, w) = tuple(mask), tuple(image)
    if (mh, mw) != (h, w):
        hint = " (transposed?)" if (mh, mw) == (w, h) else ""
        raise ValueError(f"the region mask is {mw}x{mh} but the image is {w}x{h}{hint}")


def fit_target(target: Target, original_size: tuple[int, int], size: tuple[int, int]) -> Target:
    """``target`` for an input of ``size`` (H, W) made from an image of ``original_size``: a
    region mask must have the image's size, and is resized with the input where ``max_side``
    shrank it."""
    if not isinstance(target, RegionTarget) or target.mask is None:
        return target
    _same_size(target.mask.shape, original_size)
    return target if tuple(size) == tuple(original_size) else target.fitted(tuple(size))


class ConfidenceTarget(RegionTarget):
    """Mean confidence (sigmoid of the confidence logits) inside ``mask`` (whole image if None)."""

    quantity = "confidence"

    def _values(self, out: TruForOutput) -> torch.Tensor:
        return out.conf


def resolve_target(target: Any) -> Target:
    """``target`` itself (``None``: :class:`ScoreTarget`), refused in one line before any forward
    when it is not a callable on the model's output (a captum class index, a string)."""
    if target is None:
        return ScoreTarget()
    if not callable(target):
        raise TypeError(
            f"target must be a callable on TruFor's output, such as ScoreTarget(), ScoreTarget('score'), "
            f"RegionTarget(mask) or ConfidenceTarget(), got {target!r}; TruFor has no classes, so captum "
            "class indices do not apply"
        )
    return target


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


def fit_baseline(b: torch.Tensor, like: torch.Tensor, what: str, max_side: int | None = None) -> torch.Tensor:
    """``b`` broadcast to ``like`` (a copy on its device and dtype), or a one-line ValueError when
    the shapes do not fit (naming ``max_side`` when it shrank the image) or ``b`` is not finite."""
    try:
        fits = torch.broadcast_shapes(b.shape, like.shape) == like.shape
    except RuntimeError:
        fits = False
    if not fits:
        at = f" (max_side={max_side} shrank the image; give a baseline of its new size, or a name)" if max_side else ""
        raise ValueError(f"{what} has shape {tuple(b.shape)}, which does not fit the input's {tuple(like.shape)}{at}")
    b = b.detach().to(device=like.device, dtype=like.dtype).expand_as(like).clone()
    if not bool(torch.isfinite(b).all()):
        raise ValueError(f"{what} holds NaN or Inf")
    return b


def make_baseline(
    x: torch.Tensor,
    baseline: BaselineLike = "blur",
    *,
    sigma: float = 3.0,
    seed: int = 0,
    max_side: int | None = None,
) -> torch.Tensor:
    """The reference input for ``x`` (RGB/256, ``(B, 3, H, W)``); see the module docstring.
    ``max_side``: the value that shrank ``x``, named when a baseline does not fit it."""
    baseline = "blur" if baseline is None else baseline
    if isinstance(baseline, str):
        kind = BASELINE_ALIASES.get(baseline, baseline)
        if kind not in BASELINES:
            names = BASELINES + tuple(BASELINE_ALIASES)
            raise ValueError(f"baseline must be one of {names}, a number, a tensor or an image; got {baseline!r}")
        if kind in ("blur", "noise") and not 0 < float(sigma) < math.inf:
            raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r} (the {kind!r} baseline)")
        b = _named_baseline(x, kind, sigma, seed)
    elif isinstance(baseline, (int, float, np.integer, np.floating)) and not isinstance(baseline, bool):
        b = torch.full_like(x, float(baseline))
    elif isinstance(baseline, torch.Tensor) and baseline.dtype != torch.uint8:  # values (RGB/256), as before
        b = fit_baseline(baseline.to(x.dtype), x, "the baseline tensor", max_side)
    elif isinstance(baseline, (np.ndarray, Image.Image, torch.Tensor)):  # an image, read as the input is
        b = fit_baseline(to_tensor(load_image(baseline).rgb, dtype=x.dtype), x, "the baseline image", max_side)
    else:
        raise ValueError(f"baseline must be a name, a number, a tensor or an image; got {type(baseline).__name__}")
    if not bool(torch.isfinite(b).all()) or float(b.min()) < 0 or float(b.max()) > 1:
        what = (
            "holds NaN or Inf"
            if not bool(torch.isfinite(b).all())
            else f"spans [{float(b.min()):g}, {float(b.max()):g}]"
        )
        raise ValueError(f"a baseline is RGB/256 in [0, 1], like the input (see to_tensor); this one {what}")
    return b


def _named_baseline(x: torch.Tensor, kind: str, sigma: float, seed: int) -> torch.Tensor:
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    low = gaussian_blur(x, sigma)
    if kind == "blur":
        return low
    level = (x - low).std(dim=(2, 3), keepdim=True)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    return (low + level * z).clamp(0, 255 / 256)


def baseline_options(baseline: Any, sigma: float | None, seed: int | None) -> tuple[float, int]:
    """``sigma`` and ``seed`` for ``baseline`` (defaults 3 and 0); one the baseline does not use
    (``sigma`` beside ``'black'``, ``seed`` beside ``'blur'``) raises TypeError: it was ignored."""
    name = "blur" if baseline is None else baseline
    kind = BASELINE_ALIASES.get(name, name) if isinstance(name, str) else None
    uses = {"blur": ("sigma",), "noise": ("sigma", "seed")}.get(kind or "", ())
    unused = [k for k, v in (("sigma", sigma), ("seed", seed)) if v is not None and k not in uses]
    if unused:
        what = f"the {name!r} baseline" if isinstance(name, str) else f"a {type(name).__name__} baseline"
        raise TypeError(f"{', '.join(unused)}: not an option of {what} (sigma: 'blur', 'noise'; seed: 'noise')")
    return 3.0 if sigma is None else sigma, 0 if seed is None else seed


def baseline_label(baseline: BaselineLike, sigma: float) -> str:
    baseline = "blur" if baseline is None else baseline
    if isinstance(baseline, torch.Tensor):
        return "tensor" if baseline.is_floating_point() else "image"
    if isinstance(baseline, (np.ndarray, Image.Image)):
        return "image"
    if baseline in ("blur", "noise"):
        return f"{baseline} (sigma {sigma:g})"
    return str(baseline)
