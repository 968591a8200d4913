"""Captum adapters for TruFor: which pixels, which fused stage, which modality drive an output.

One call shape, as in captum: the constructor binds the model (and the stage), ``attribute``
takes what changes per call. TruFor returns maps and a score, not class logits, so the
quantity to explain is a small *target* callable ``target(TruForOutput) -> (B,)``:
:class:`ScoreTarget` (detection logit or score), :class:`RegionTarget` (mean localization
probability inside a region), :class:`ConfidenceTarget` (mean confidence).

>>> a = tl.attribute.attribute(model, "photo.png", method="ig", target=ScoreTarget(), baseline="blur")
>>> a.map.shape, a.delta      # (H, W) attribution, IG convergence delta
>>> a.plot()

- Input methods (``'ig'``, ``'saliency'``, ``'input_x_gradient'``, ``'occlusion'``) explain
  w.r.t. the RGB/256 image; gradients flow through Noiseprint++ as well as the RGB branch.
- Layer methods (``'gradcam'``, ``'conductance'``) explain at the fused map of
  ``backbone.FFMs[stage - 1]``, upsampled (bilinear) to the image size.
- Modality attribution runs IG over ``(normalised RGB, Noiseprint++ map)``, the two encoder
  inputs, and reports each modality's share of the total |attribution|.

Forensic baselines (what the image is compared with): ``'blur'`` (Gaussian-blurred copy: same
content, no high-frequency traces; the default), ``'black'``, ``'mean'`` (flat per-channel mean
colour), ``'noise'`` (the blurred copy plus fresh Gaussian noise with the image's residual
level: same content and noise level, traces randomised). A float or a tensor also works.

Every call runs with the model in eval mode, parameter gradients off (only input gradients
are computed, nothing accumulates in ``.grad``) and restores both, and removes any hook left
behind, even when the target or captum raises. Inputs are copied, never modified. Large
images can be downscaled with ``max_side`` (this changes the forensic traces; the choice is
recorded in the result and its title). The model's device is used (CPU or CUDA).
"""
from __future__ import annotations

import base64
import contextlib
import html
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from trufor_lab.inference.analyze import Result
from trufor_lab.inference.preprocess import ImageLike, load_image, to_tensor
from trufor_lab.model import TruFor, TruForOutput
from trufor_lab.viz.figures import new_figure

__all__ = [
    "Attribution", "BASELINES", "ConfidenceTarget", "INPUT_METHODS", "InputAttribution", "LAYER_METHODS",
    "LayerAttribution", "ModalityAttribution", "RegionTarget", "ScoreTarget", "attribute", "make_baseline",
    "plot_modality_shares",
]

Target = Callable[[TruForOutput], torch.Tensor]
BaselineLike = Union[str, float, torch.Tensor, None]

INPUT_METHODS = ("ig", "saliency", "input_x_gradient", "occlusion")
LAYER_METHODS = ("gradcam", "conductance")
BASELINES = ("blur", "black", "mean", "noise")
_ALIASES = {
    "integrated_gradients": "ig", "integratedgradients": "ig", "ixg": "input_x_gradient",
    "inputxgradient": "input_x_gradient", "layer_gradcam": "gradcam", "layergradcam": "gradcam",
    "grad_cam": "gradcam", "layer_conductance": "conductance", "layerconductance": "conductance",
}


def _canonical(method: str) -> str:
    key = method.lower().strip()
    return _ALIASES.get(key, key)


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------

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
    ``None`` means the whole image. A mask of another size is resized (nearest)."""

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
        where = "whole image" if self.mask is None else f"region of {int(self.mask.sum())} px"
        return f"mean {self.quantity} ({where})"

    def _values(self, out: TruForOutput) -> torch.Tensor:
        return out.map

    def forward(self, out: TruForOutput) -> torch.Tensor:
        v = self._values(out)  # (B, H, W)
        if self.mask is None:
            return v.mean(dim=(1, 2))
        w = self.mask.to(device=v.device, dtype=v.dtype)
        if w.shape != v.shape[-2:]:
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


def _target_label(target: Any) -> str:
    return str(getattr(target, "label", None) or getattr(target, "__name__", None) or type(target).__name__)


def _per_item(v: Any, batch: int) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"a target must return a tensor, got {type(v).__name__}")
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (batch,):
        raise ValueError(f"a target must return one value per batch item, shape ({batch},); got {tuple(v.shape)}")
    return v


# --------------------------------------------------------------------------------------------
# inputs and baselines
# --------------------------------------------------------------------------------------------

def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _trufor(model: nn.Module) -> TruFor:
    if not isinstance(model, TruFor):
        raise TypeError(f"attribution needs a full TruFor model, got {type(model).__name__}")
    return model


@dataclass(frozen=True)
class _Prepared:
    x: torch.Tensor               # (1, 3, h, w) RGB/256 on the model's device and dtype
    rgb: np.ndarray               # (h, w, 3) uint8, what is shown
    name: str
    original_size: tuple[int, int]


def _fit_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _prepare(model: nn.Module, image: ImageLike, max_side: int | None) -> _Prepared:
    """Image -> model input; float tensors are taken as RGB/256 inputs (copied)."""
    dev, dt = _device_dtype(model)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        t = image.detach()
        t = t[None] if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise ValueError(f"a float tensor input must be (1, 3, H, W) RGB/256, got {tuple(image.shape)}")
        t = t.to(device=dev, dtype=dt).clone()
        size = (int(t.shape[2]), int(t.shape[3]))
        if max_side is not None and max(size) > max_side:
            t = F.interpolate(t, size=_fit_size(*size, max_side), mode="area")
        rgb = (t[0].permute(1, 2, 0) * 256).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return _Prepared(t, rgb, "<tensor>", size)
    loaded = load_image(image)
    rgb = loaded.rgb
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    if max_side is not None and max(size) > max_side:
        h, w = _fit_size(*size, max_side)
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))
    return _Prepared(to_tensor(rgb, dtype=dt, device=dev), rgb, loaded.name, size)


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


def make_baseline(x: torch.Tensor, baseline: BaselineLike = "blur", *, sigma: float = 3.0,
                  seed: int = 0) -> torch.Tensor:
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


def _baseline_label(baseline: BaselineLike, sigma: float) -> str:
    if isinstance(baseline, torch.Tensor):
        return "tensor"
    if baseline in ("blur", "noise"):
        return f"{baseline} (sigma {sigma:g})"
    return str(baseline)


def _auto_batch(h: int, w: int, n_steps: int) -> int:
    """Path points per forward: about 2**17 pixels per batch (2 at 256x256, ~2 GB), at least 1.

    Backward through Noiseprint++ keeps roughly 10 kB of activations per pixel and path
    point (17 levels of 64 channels), so a 1024x1024 image needs about 10 GB per point:
    use ``max_side`` (or a GPU) for large images."""
    return max(1, min(n_steps, (1 << 17) // max(1, h * w)))


# --------------------------------------------------------------------------------------------
# safety
# --------------------------------------------------------------------------------------------

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


@contextlib.contextmanager
def _guard(model: nn.Module) -> Iterator[None]:
    """Eval mode, parameter gradients off, autograd on; on exit every module's mode, every
    parameter's ``requires_grad`` and every hook dict are restored to what they were."""
    modules = list(model.modules())
    params = list(model.parameters())
    modes = [m.training for m in modules]
    flags = [p.requires_grad for p in params]
    before = [{a: set(getattr(m, a, {}) or {}) for a in _HOOK_DICTS} for m in modules]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for m, t in zip(modules, modes):
            m.training = t
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        for m, b in zip(modules, before):
            for a in _HOOK_DICTS:
                d = getattr(m, a, None)
                if d:
                    for k in [k for k in d if k not in b[a]]:
                        del d[k]


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

def _robust_abs(a: np.ndarray, pct: float = 99.5) -> float:
    """Colour limit: the ``pct`` percentile of |a|, else its max, else 1."""
    if not a.size:
        return 1.0
    for v in (float(np.nanpercentile(np.abs(a), pct)), float(np.nanmax(np.abs(a)))):
        if v > 0:
            return v
    return 1.0


@dataclass
class Attribution:
    """An attribution map ``(H, W)`` aligned with ``image`` ``(H, W, 3)`` uint8.

    ``map`` reduces the per-channel attributions ``raw`` ``(C, H, W)``: summed over channels
    for IG, InputXGradient and the modality map (so IG's map sums to the explained
    difference), max of |gradient| for saliency, the mean for occlusion (equal channels). For
    layer methods ``map`` is the stage map upsampled to the image. ``delta`` is IG's
    convergence delta ``sum(attr) - (target(x) - target(baseline))``. With ``max_side``,
    ``image`` is the downscaled image that was explained and ``original_size`` the input's.
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

    def __post_init__(self) -> None:
        if self.label is None:
            where = f" @ {self.layer}" if self.layer else ""
            self.label = f"{self.method}{where}: {self.target}"

    @property
    def size(self) -> tuple[int, int]:
        return int(self.map.shape[0]), int(self.map.shape[1])

    @property
    def downscaled(self) -> bool:
        return self.original_size is not None and tuple(self.original_size) != self.size

    # Result-like fields, so that viewers written for Results accept an Attribution as it is
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
        if np.nanmin(self.map) < 0:
            return np.clip(0.5 + self.map / (2 * lim), 0, 1).astype(np.float32)
        return np.clip(self.map / lim, 0, 1).astype(np.float32)

    def to_result(self):
        """A :class:`~trufor_lab.inference.analyze.Result` showing this attribution (``map`` =
        :meth:`display_map`, ``noiseprint`` = the raw map, ``conf`` = ones, no score), e.g. for
        ``CompareViewer``."""
        return Result(image=self.image, noiseprint=self.map.astype(np.float32), map=self.display_map(),
                      conf=self.conf, name=self.name, label=self.label,
                      notes=("attribution scaled to [0, 1] for display", self.title))

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
        h, w = self.size
        if self.downscaled:
            H, W = self.original_size
            t += f"\ncomputed at {w}x{h}, downscaled from {W}x{H} (max_side={self.max_side})"
        return t

    def _overlay(self, ax, data: np.ndarray, alpha: float):
        ax.imshow(self.image.mean(axis=2), cmap="gray", vmin=0, vmax=255)
        if np.nanmin(data) < 0:
            lim = _robust_abs(data)
            im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=alpha)
        else:
            im = ax.imshow(data, cmap="inferno", vmin=0, vmax=_robust_abs(data), alpha=alpha)
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
        ax.set_title(self.title, fontsize=8)
        return fig

    def plot_modalities(self, fig=None, alpha: float = 0.6):
        """Image, RGB attribution, Noiseprint++ attribution and the share bar; returns the Figure."""
        if self.shares is None:
            raise ValueError("not a modality attribution")
        if fig is None:
            fig = new_figure(figsize=(13, 3.6))
        axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1, 0.8]))
        axes[0].imshow(self.image)
        axes[0].set_title(self.name or "image", fontsize=9)
        axes[0].set_axis_off()
        for ax, key in zip(axes[1:3], ("rgb", "noiseprint")):
            im = self._overlay(ax, self.extras["maps"][key], alpha)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{key}: {100 * self.shares[key]:.1f}% of |attr|", fontsize=9)
        plot_modality_shares([self], ax=axes[3])
        fig.suptitle(self.title, fontsize=9)
        return fig

    def _repr_html_(self) -> str:
        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        img = base64.b64encode(buf.getvalue()).decode()
        return f'<div><b>{html.escape(self.title)}</b></div><img src="data:image/png;base64,{img}"/>'


def plot_modality_shares(attributions: Sequence[Attribution], ax=None):
    """Stacked bars: share of |attribution| per modality for each image; returns the Figure."""
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
    ax.set_yticks(y)
    ax.set_yticklabels([n.split("/")[-1] for n in names], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of |attribution|")
    ax.legend(fontsize=7, loc="lower right")
    return fig


# --------------------------------------------------------------------------------------------
# attribution classes
# --------------------------------------------------------------------------------------------

def _rgb_forward(model: TruFor, target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(rgb: torch.Tensor) -> torch.Tensor:
        return _per_item(target(model(rgb)), rgb.shape[0])
    return f


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t if t.dtype == torch.float64 else t.float()).numpy()


class InputAttribution:
    """Attribution w.r.t. the RGB/256 image: ``'ig'``, ``'saliency'``, ``'input_x_gradient'``
    or ``'occlusion'`` (captum). Gradients flow through both branches, Noiseprint++ included."""

    def __init__(self, model: nn.Module, method: str = "ig") -> None:
        self.model = _trufor(model)
        self.method = _canonical(method)
        if self.method not in INPUT_METHODS:
            raise ValueError(f"input methods are {INPUT_METHODS}, got {method!r}")

    def attribute(self, image: ImageLike, target: Target | None = None, baselines: BaselineLike = None, *,
                  n_steps: int = 32, internal_batch_size: int | None = None, max_side: int | None = None,
                  window: int = 32, stride: int | None = None, perturbations_per_eval: int = 4,
                  sigma: float = 3.0, seed: int = 0) -> Attribution:
        """Explain ``target`` (default :class:`ScoreTarget`) for ``image``.

        ``baselines`` (IG, occlusion fill): default ``'blur'``; ignored by saliency and
        InputXGradient. IG: ``n_steps`` Gauss-Legendre points, ``internal_batch_size`` points
        per forward (default: about 2**18 pixels per batch). Occlusion: square ``window``,
        ``stride`` (default ``window // 2``), ``perturbations_per_eval`` windows per forward.
        """
        import captum.attr as ca  # lazy: captum is only needed for attribution
        target = ScoreTarget() if target is None else target
        prep = _prepare(self.model, image, max_side)
        x = prep.x
        h, w = x.shape[2:]
        kind = self.method
        uses_baseline = kind in ("ig", "occlusion")
        base_kind = (baselines if baselines is not None else "blur") if uses_baseline else None
        delta = bval = None
        extras: dict[str, Any] = {}
        with _guard(self.model):
            f = _rgb_forward(self.model, target)
            b = make_baseline(x, base_kind, sigma=sigma, seed=seed) if uses_baseline else None
            if kind == "ig":
                ibs = internal_batch_size or _auto_batch(h, w, n_steps)
                attr, d = ca.IntegratedGradients(f).attribute(
                    x, baselines=b, n_steps=n_steps, internal_batch_size=ibs, return_convergence_delta=True)
                delta = float(d.reshape(-1)[0])
                extras.update(n_steps=n_steps, internal_batch_size=ibs)
            elif kind == "saliency":  # x is our own copy: requiring grad on it is harmless
                attr = ca.Saliency(f).attribute(x.requires_grad_(True), abs=True)
            elif kind == "input_x_gradient":
                attr = ca.InputXGradient(f).attribute(x.requires_grad_(True))
            else:
                wh, ww = min(window, h), min(window, w)
                st = stride or max(1, window // 2)
                attr = ca.Occlusion(f).attribute(
                    x, sliding_window_shapes=(3, wh, ww), strides=(3, min(st, wh), min(st, ww)), baselines=b,
                    perturbations_per_eval=perturbations_per_eval)
                extras.update(window=(wh, ww), stride=st)
            with torch.no_grad():
                vals = f(x if b is None else torch.cat([x, b]))
        tval = float(vals[0])
        if b is not None:
            bval = float(vals[1])
        raw = _np(attr[0])
        reduce = {"ig": np.sum, "input_x_gradient": np.sum, "saliency": np.max, "occlusion": np.mean}[kind]
        return Attribution(
            image=prep.rgb, map=reduce(raw, axis=0), method=kind, target=_target_label(target),
            baseline=_baseline_label(base_kind, sigma) if uses_baseline else None, delta=delta,
            target_value=tval, baseline_value=bval, original_size=prep.original_size, max_side=max_side,
            name=prep.name, raw=raw, extras=extras)


class LayerAttribution:
    """Attribution at the fused map of stage ``stage`` (1-based, ``backbone.FFMs[stage - 1]``):
    ``'gradcam'`` (LayerGradCam) or ``'conductance'`` (LayerConductance, summed over channels),
    upsampled bilinearly to the image size."""

    def __init__(self, model: nn.Module, stage: int, method: str = "gradcam") -> None:
        self.model = _trufor(model)
        n = self.model.cfg.num_stages
        if not (isinstance(stage, int) and 1 <= stage <= n):
            raise ValueError(f"stage is a 1-based integer in 1..{n}, got {stage!r}")
        self.stage = stage
        self.layer = self.model.backbone.FFMs[stage - 1]
        self.method = _canonical(method)
        if self.method not in LAYER_METHODS:
            raise ValueError(f"layer methods are {LAYER_METHODS}, got {method!r}")

    def attribute(self, image: ImageLike, target: Target | None = None, baselines: BaselineLike = None, *,
                  relu: bool = True, n_steps: int = 16, internal_batch_size: int | None = None,
                  max_side: int | None = None, sigma: float = 3.0, seed: int = 0) -> Attribution:
        """Explain ``target`` (default :class:`ScoreTarget`). GradCAM: ``relu`` keeps positive
        evidence only. Conductance: ``baselines`` (default ``'blur'``), ``n_steps``,
        ``internal_batch_size``."""
        import captum.attr as ca  # lazy: captum is only needed for attribution
        target = ScoreTarget() if target is None else target
        prep = _prepare(self.model, image, max_side)
        x = prep.x
        h, w = x.shape[2:]
        base_kind = None
        extras: dict[str, Any] = {}
        with _guard(self.model):
            f = _rgb_forward(self.model, target)
            if self.method == "gradcam":
                low = ca.LayerGradCam(f, self.layer).attribute(x, relu_attributions=relu)
                extras["relu"] = relu
            else:
                base_kind = baselines if baselines is not None else "blur"
                b = make_baseline(x, base_kind, sigma=sigma, seed=seed)
                ibs = internal_batch_size or _auto_batch(h, w, n_steps)
                low = ca.LayerConductance(f, self.layer).attribute(
                    x, baselines=b, n_steps=n_steps, internal_batch_size=ibs).sum(dim=1, keepdim=True)
                extras.update(n_steps=n_steps, internal_batch_size=ibs)
            with torch.no_grad():
                tval = float(f(x)[0])
            up = F.interpolate(low.detach(), size=(h, w), mode="bilinear", align_corners=False)
        extras["layer_map"] = _np(low[0, 0])
        return Attribution(
            image=prep.rgb, map=_np(up[0, 0]), method=self.method, target=_target_label(target),
            baseline=_baseline_label(base_kind, sigma) if base_kind is not None else None,
            layer=f"fusion.stage{self.stage}.ffm", target_value=tval, original_size=prep.original_size,
            max_side=max_side, name=prep.name, extras=extras)


class ModalityAttribution:
    """IG over the two encoder inputs, normalised RGB and the Noiseprint++ map, to say how much
    of an output each modality accounts for (share of the total |attribution|)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = _trufor(model)

    def forward(self, rgb_n: torch.Tensor, noiseprint: torch.Tensor, target: Target) -> torch.Tensor:
        """``target`` of the network fed the given encoder inputs (no DnCNN, no normalisation)."""
        m = self.model
        x_np = noiseprint.expand(-1, 3, -1, -1) if noiseprint.shape[1] == 1 else noiseprint
        logits, conf, det = m.forward_heads(m.backbone(rgb_n, x_np), rgb_n.shape[2:])
        return _per_item(target(TruForOutput(logits, conf, det, noiseprint)), rgb_n.shape[0])

    def attribute(self, image: ImageLike, target: Target | None = None,
                  baselines: str | tuple[torch.Tensor, torch.Tensor] = "blur", *, n_steps: int = 32,
                  internal_batch_size: int | None = None, max_side: int | None = None,
                  sigma: float = 3.0, seed: int = 0) -> Attribution:
        """``baselines``: ``'zeros'`` (both encoder inputs 0), an image baseline of
        :func:`make_baseline` (``'blur'`` default: its normalised RGB and its own Noiseprint++),
        or a pair of tensors ``(rgb_normalised, noiseprint)``."""
        import captum.attr as ca  # lazy: captum is only needed for attribution
        target = ScoreTarget() if target is None else target
        m = self.model
        prep = _prepare(m, image, max_side)
        x = prep.x
        h, w = x.shape[2:]
        with _guard(m):
            with torch.no_grad():
                rgb_n, npm = m.normalize(x), m.forward_noiseprint(x)
                if isinstance(baselines, tuple):
                    b_rgb, b_np = (t.to(device=x.device, dtype=x.dtype).expand_as(r)
                                   for t, r in zip(baselines, (rgb_n, npm)))
                    label = "tensors"
                elif baselines == "zeros":
                    b_rgb, b_np = torch.zeros_like(rgb_n), torch.zeros_like(npm)
                    label = "zeros"
                else:
                    bimg = make_baseline(x, baselines, sigma=sigma, seed=seed)
                    b_rgb, b_np = m.normalize(bimg), m.forward_noiseprint(bimg)
                    label = _baseline_label(baselines, sigma)

            def f(r: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
                return self.forward(r, n, target)
            ibs = internal_batch_size or _auto_batch(h, w, n_steps)
            (a_rgb, a_np), d = ca.IntegratedGradients(f).attribute(
                (rgb_n, npm), baselines=(b_rgb, b_np), n_steps=n_steps, internal_batch_size=ibs,
                return_convergence_delta=True)
            with torch.no_grad():
                vals = f(torch.cat([rgb_n, b_rgb]), torch.cat([npm, b_np]))
        tot_rgb, tot_np = float(a_rgb.abs().sum()), float(a_np.abs().sum())
        total = tot_rgb + tot_np
        shares = ({"rgb": tot_rgb / total, "noiseprint": tot_np / total} if total > 0
                  else {"rgb": math.nan, "noiseprint": math.nan})
        maps = {"rgb": _np(a_rgb[0].sum(dim=0)), "noiseprint": _np(a_np[0].sum(dim=0))}
        extras = {"shares": shares, "maps": maps, "abs_totals": {"rgb": tot_rgb, "noiseprint": tot_np},
                  "sums": {"rgb": float(a_rgb.sum()), "noiseprint": float(a_np.sum())},
                  "n_steps": n_steps, "internal_batch_size": ibs}
        return Attribution(
            image=prep.rgb, map=maps["rgb"] + maps["noiseprint"], method="modality_ig",
            target=_target_label(target), baseline=label, delta=float(d.reshape(-1)[0]),
            target_value=float(vals[0]), baseline_value=float(vals[1]), original_size=prep.original_size,
            max_side=max_side, name=prep.name, extras=extras)


def attribute(model: nn.Module, image: ImageLike, method: str = "ig", target: Target | None = None,
              baseline: Any = None, *, stage: int = 4, **kw: Any) -> Attribution:
    """One call for every method: input methods (``'ig'``, ``'saliency'``, ``'input_x_gradient'``,
    ``'occlusion'``), layer methods at ``stage`` (``'gradcam'``, ``'conductance'``) and
    ``'modality'``. ``baseline`` and ``**kw`` go to the class's ``attribute``."""
    m = _canonical(method)
    if m in INPUT_METHODS:
        return InputAttribution(model, m).attribute(image, target, baseline, **kw)
    if m in LAYER_METHODS:
        return LayerAttribution(model, stage, m).attribute(image, target, baseline, **kw)
    if m == "modality":
        return ModalityAttribution(model).attribute(image, target, "blur" if baseline is None else baseline, **kw)
    raise ValueError(f"unknown method {method!r}; choose from {INPUT_METHODS + LAYER_METHODS + ('modality',)}")
