"""What every attribution call does around Captum, in one place: the input prepared (copied,
checked as ``tl.analyze`` checks it, optionally downscaled), counts and per-method options
checked before any forward, and the model left as it was found (:func:`guard`: modes,
``requires_grad`` and hooks restored, even when the target or Captum raises). An attribution
holds its model for its thread: another thread's forward, capture or ablation of that model is
refused while it runs (:func:`guard`)."""

from __future__ import annotations

import math
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from trufor_lab.common.arrays import whole
from trufor_lab.common.memory import GiB, free_memory_bytes
from trufor_lab.inference.predict import plain_peak_bytes
from trufor_lab.inference.preprocess import ImageError, ImageLike, load_image, to_tensor
from trufor_lab.inference.result import MIN_TRUFOR_SIDE, require_full_precision
from trufor_lab.interpret.attribution import nothing_note, rounding_level
from trufor_lab.model import TruFor
from trufor_lab.model.interventions import active_interventions, registered
from trufor_lab.model.precision import ieee_float32


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def trufor_of(model: nn.Module) -> TruFor:
    """``model`` if it is a full TruFor in float32 or float64 (as ``tl.analyze`` requires)."""
    if not isinstance(model, TruFor):
        raise TypeError(f"attribution needs a full TruFor model, got {type(model).__name__}")
    require_full_precision(model)
    return model


@dataclass(frozen=True)
class Prepared:
    x: torch.Tensor  # (1, 3, h, w) RGB/256 on the model's device and dtype
    rgb: np.ndarray  # (h, w, 3) uint8, what is shown
    name: str
    original_size: tuple[int, int]


def fit_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def prepare(model: nn.Module, image: ImageLike, max_side: int | None) -> Prepared:
    """Image -> model input; float tensors are taken as RGB/256 inputs (copied). Made outside
    any ``torch.inference_mode()`` of the caller: an inference tensor cannot enter autograd.
    A model cast to bfloat16 or float16 after the attribution object was made is refused here
    (it ran in that precision, unsaid)."""
    require_full_precision(model)
    with torch.inference_mode(False):
        return _prepare(model, image, max_side)


def _prepare(model: nn.Module, image: ImageLike, max_side: int | None) -> Prepared:
    dev, dt = device_dtype(model)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        t = image.detach()
        t = t[None] if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise ValueError(f"a float tensor input must be (1, 3, H, W) RGB/256, got {tuple(image.shape)}")
        if not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1:
            lo, hi = float(t.nan_to_num().min()), float(t.nan_to_num().max())
            raise ImageError(
                f"<tensor>: a float tensor input is RGB/256 in [0, 1] (see to_tensor); this one "
                f"{'holds NaN or Inf' if not bool(torch.isfinite(t).all()) else f'spans [{lo:g}, {hi:g}]'}"
            )
        t = t.to(device=dev, dtype=dt).clone()
        size = (int(t.shape[2]), int(t.shape[3]))
        if max_side is not None and max(size) > max_side:
            t = F.interpolate(t, size=fit_size(*size, max_side), mode="area")
        rgb = (t[0].permute(1, 2, 0) * 256).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return check_side(Prepared(t, rgb, "<tensor>", size), max_side)
    loaded = load_image(image)
    rgb = loaded.rgb
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    if max_side is not None and max(size) > max_side:
        h, w = fit_size(*size, max_side)
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))
    return check_side(Prepared(to_tensor(rgb, dtype=dt, device=dev), rgb, loaded.name, size), max_side)


def check_counts(**counts: int | None) -> tuple[int | None, ...]:
    """Window, stride, steps and batch sizes are whole numbers >= 1 (``None``: the default),
    numpy's included (``np.int64(4)``), never True; returned as ints in the order given. 0 or a
    negative stride gave NaN maps, and 0 was quietly replaced by the default."""
    out = []
    for name, v in counts.items():
        n = whole(v)
        if v is not None and (n is None or n < 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        out.append(n)
    return tuple(out)


def check_side(p: Prepared, max_side: int | None) -> Prepared:
    """TruFor's smallest input (the stage-4 patch embedding), as tl.analyze checks it."""
    h, w = p.rgb.shape[:2]
    if min(h, w) < MIN_TRUFOR_SIDE:
        at = f" (max_side={max_side} made it {w}x{h})" if (h, w) != p.original_size else ""
        oh, ow = p.original_size
        raise ImageError(
            f"{p.name}: image is {ow}x{oh}{at}; TruFor needs at least {MIN_TRUFOR_SIDE} pixels on each side"
        )
    return p


def shrunk(p: Prepared, max_side: int | None) -> int | None:
    """``max_side`` if it shrank the image (a baseline that does not fit then names it)."""
    return max_side if tuple(p.x.shape[2:]) != p.original_size else None


def same_input_notes(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, shares: bool = False) -> tuple[str, ...]:
    """A note when every input equals its baseline to rounding (a flat image's blurred copy
    differs by one unit in the last place): whatever the map or the shares show is rounding noise."""
    gaps = [(float((x - b).abs().max()), float(x.abs().max())) for x, b in pairs]
    if any(gap > rounding_level(top) for gap, top in gaps):
        return ()
    why = f"the baseline is the image to rounding (they differ by at most {max(g for g, _ in gaps):.2g})"
    return (nothing_note(why, shares=shares),)


def uses_baseline(method: str, baseline: Any) -> bool:
    """Whether ``method`` compares with a baseline; one given to a method that does not is refused."""
    uses = method in ("ig", "occlusion", "conductance")
    if not uses and baseline is not None:
        raise ValueError(f"{method} uses no baseline; got baselines={baseline!r} (leave it out)")
    return uses


def refuse_unused(method: str, options: dict[str, Any], applies: bool) -> None:
    """Options given to a method they do not apply to raise (they were silently ignored)."""
    given = [k for k, v in options.items() if v is not None]
    if given and not applies:
        raise TypeError(f"{', '.join(given)}: not an option of {method!r}")


def finite_target(value: float, target: Any) -> float:
    """``value``, the target on the image; NaN or Inf (a target of one's own dividing by zero)
    raises: its attribution map was all NaN, with no word."""
    if not math.isfinite(value):
        raise ValueError(f"the target {type(target).__name__} is {value} on this image: nothing to attribute")
    return value


def auto_batch(h: int, w: int, n_steps: int) -> int:
    """Path points per forward: about 2**17 pixels per batch (2 at 256x256, ~2 GB), at least 1.

    Backward through Noiseprint++ keeps roughly 10 kB of activations per pixel and path
    point (17 levels of 64 channels), so a 1024x1024 image needs about 10 GB per point:
    use ``max_side`` (or a GPU) for large images."""
    return max(1, min(n_steps, (1 << 17) // max(1, h * w)))


def kept_floats(model: TruFor, h: int, w: int, parts: tuple[str, ...]) -> int:
    """Rough count of the values autograd keeps for the backward of one path point through
    ``parts`` of the network (``'noiseprint'``, ``'encoder'``, ``'decoders'``) for an ``h x w``
    image: Noiseprint++ two 64-channel maps per level (the BatchNorm input, the ReLU output),
    each transformer block its attention scores and about 16 values per token and channel, each
    decoder about 8 maps at stage-1 resolution. Measured on the CPU (float32, 256x256): 0.74
    GiB for saliency, 0.82 GiB per IG path point; this count says 0.91."""
    cfg = model.cfg
    n = 0
    if "noiseprint" in parts:
        n += 2 * 64 * cfg.np_levels * h * w
    hh, ww, first = h, w, 0
    for i in range(cfg.num_stages):
        k, s = cfg.patch_sizes[i], cfg.strides[i]
        hh, ww = (hh + 2 * (k // 2) - k) // s + 1, (ww + 2 * (k // 2) - k) // s + 1
        tokens, c, sr = hh * ww, cfg.embed_dims[i], cfg.sr_ratios[i]
        keys = ((hh - sr) // sr + 1) * ((ww - sr) // sr + 1) if sr > 1 else tokens
        first = first or tokens
        if "encoder" in parts:
            per_block = 2 * cfg.num_heads[i] * tokens * keys + tokens * c * (2 * cfg.mlp_ratios[i] + 8)
            n += 2 * cfg.depths[i] * per_block + 24 * tokens * c  # two branches; FRM and FFM
    if "decoders" in parts:
        n += 2 * 8 * cfg.decoder_embed_dim * first
    return n


def attribution_bytes(model: TruFor, x: torch.Tensor, points: int, parts: tuple[str, ...]) -> int:
    """Rough peak bytes of one pass of ``points`` path points (or windows) of ``x`` (1, 3, H, W):
    what autograd keeps for each (:func:`kept_floats`; ``parts=()``: no backward, occlusion)
    plus the plain forward's working memory for each."""
    h, w = x.shape[2:]
    size = torch.finfo(x.dtype).bits // 8
    return points * (kept_floats(model, h, w, parts) * size + plain_peak_bytes(model, x))


def fit_memory(
    model: TruFor,
    prep: Prepared,
    method: str,
    parts: tuple[str, ...],
    points: int,
    given: bool,
    count: str = "internal_batch_size",
) -> int:
    """The path points per pass (``points``, or fewer when they do not fit in free memory and
    were not ``given`` as ``count``), or a one-line ImageError saying what the attribution needs and the
    ``max_side`` that would fit, before any work: a large photo ran out of memory deep in
    autograd (a traceback on a GPU, the process killed on the CPU)."""
    x = prep.x
    free = free_memory_bytes(x.device)
    one = attribution_bytes(model, x, 1, parts)
    if attribution_bytes(model, x, points, parts) <= free:
        return points
    if one <= free and not given:
        return max(1, min(points, int(free // one)))
    h, w = x.shape[2:]
    side = max(h, w)
    lo, hi = MIN_TRUFOR_SIDE, side - 1  # the largest max_side whose single point fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fh, fw = fit_size(h, w, mid)
        small = x[:, :, :1, :1].expand(1, 3, fh, fw)  # its size, device and dtype; nothing allocated
        lo, hi = (mid, hi) if attribution_bytes(model, small, 1, parts) <= free else (lo, mid - 1)
    need = attribution_bytes(model, x, points, parts)
    fix = f"pass max_side={lo}" if lo < side and min(fit_size(h, w, lo)) >= MIN_TRUFOR_SIDE else "free memory"
    if given and one <= free:
        fix = f"pass {count}={int(free // one)} or less"
    per = f", {points} per pass" if points > 1 else ""
    raise ImageError(
        f"{prep.name}: {method} attribution of a {w}x{h} image needs about {need / GiB:.1f} GiB{per}, "
        f"{free / GiB:.1f} GiB free ({x.device.type}); {fix}"
    )


# --------------------------------------------------------------------------------------------
# safety
# --------------------------------------------------------------------------------------------

# each hook dict with the kind of hook it holds or flags ("forward", "pre"), as an intervention
# records its own (:func:`~trufor_lab.model.interventions.hook_keys`); backward hooks no
# intervention places
HOOK_DICTS = {
    "_forward_hooks": "forward",
    "_forward_pre_hooks": "pre",
    "_backward_hooks": "backward",
    "_backward_pre_hooks": "backward",
    "_forward_hooks_with_kwargs": "forward",
    "_forward_hooks_always_called": "forward",
    "_forward_pre_hooks_with_kwargs": "pre",
}


@contextlib.contextmanager
def guard(model: nn.Module, what: str = "attribution") -> Iterator[None]:
    """Eval mode, parameter gradients off, autograd on, IEEE float32 (no TF32 on a GPU, no
    autocast: captum's backward passes run inside too, not under the caller's settings); on
    exit every module's mode and every parameter's ``requires_grad`` are restored to what they
    were, and the hooks added meanwhile are removed, except those of an open capture or ablation
    (their own block removes them).

    ``what`` is registered as an intervention that changes every forward of the model
    (:func:`~trufor_lab.model.interventions.registered`, not passive): its modes, parameter flags
    and captum's layer hooks hold for the whole model, so while it runs a forward of the model in
    another thread is refused (it ran in eval mode without parameter gradients, and captum's layer
    hook took its output for the attribution's), and so is a capture or ablation opened on it in
    another thread (this cleanup removed its hooks: the capture recorded nothing, the ablation
    stopped acting, unsaid); an attribution while another thread has one open is refused too."""
    with registered(model, what, lean_ok=False, why="attribution runs the plain forward, with autograd"):
        with _restored(model):
            yield


@contextlib.contextmanager
def _restored(model: nn.Module) -> Iterator[None]:
    modules = list(model.modules())
    params = list(model.parameters())
    modes = [m.training for m in modules]
    flags = [p.requires_grad for p in params]
    before = [{a: set(getattr(m, a, {}) or {}) for a in HOOK_DICTS} for m in modules]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        # inference_mode(False): enable_grad alone does not lift a caller's inference mode
        with torch.inference_mode(False), torch.enable_grad(), ieee_float32(onednn=True):
            yield
    finally:
        for m, t in zip(modules, modes):
            m.training = t
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        # an intervention opened meanwhile (in this thread: another's is refused) keeps its hooks
        owned = set().union(*(i.hooks for i in active_interventions(model)))
        for m, b in zip(modules, before):
            for a, kind in HOOK_DICTS.items():
                d = getattr(m, a, None)
                if d:
                    for k in [k for k in d if k not in b[a] and (id(m), kind, k) not in owned]:
                        del d[k]
