"""Captum adapters for TruFor: which pixels, which fused stage, which modality drive an output.

One call shape, as in captum: the constructor binds the model (and the stage), ``attribute``
takes what changes per call. TruFor returns maps and a score, not class logits, so the
quantity to explain is a small *target* callable ``target(TruForOutput) -> (B,)``:
:class:`ScoreTarget` (detection logit or score), :class:`RegionTarget` (mean localization
probability inside a region), :class:`ConfidenceTarget` (mean confidence).

>>> from trufor_lab.interpret.attribute import ScoreTarget, attribute; a = attribute(model, "photo.png", method="ig", target=ScoreTarget(), baselines="blur")
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
level: same content and noise level, traces randomised); ``None`` is the default, ``'zeros'``
the attributed inputs at 0. A float, an RGB/256 tensor or an image is checked as the input is;
a method that uses no baseline (saliency, InputXGradient, GradCAM) refuses one.

Every call runs with the model in eval mode, parameter gradients off (only input gradients
are computed, nothing accumulates in ``.grad``) and restores both, and removes any hook left
behind (not an open capture's or ablation's), even when the target or captum raises. While it
runs, the model belongs to the calling thread, as under an ablation: another thread's forward,
capture or ablation of it is refused in one line (it ran in eval mode, its output taken by
captum's layer hook, and its capture's or ablation's hooks were removed at the end). Inputs are copied, never modified. Large
images can be downscaled with ``max_side`` (this changes the forensic traces; the choice is
recorded in the result and its title). The model's device is used (CPU or CUDA).

Targets and baselines live in :mod:`trufor_lab.interpret.targets` (re-exported here).
Attribution always runs the plain, differentiable forward (``model(x)``, or the backbone and
heads called as modules), never the memory-lean one of :mod:`trufor_lab.model.lean` (which is
inference-only, without autograd): memory grows with the image, so use ``max_side`` on large
photos (an attribution that would not fit in free memory is refused in one line, before any
forward, naming a ``max_side`` that fits; path points or windows per pass that were not given
are lowered to fit); ablations and captures active around an attribution are honoured (a capture keeps the
image's own forward, run last, not the baselines' or the path's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trufor_lab.common.imaging import tensor_to_numpy
from trufor_lab.inference.preprocess import ImageLike
from trufor_lab.model import TruFor, TruForOutput
from trufor_lab.common.arrays import whole
from trufor_lab.interpret.attribution import Attribution, plot_modality_shares, same_target
from trufor_lab.interpret.attribution_calls import (
    auto_batch,
    check_counts,
    finite_target,
    fit_memory,
    guard,
    prepare,
    refuse_unused,
    same_input_notes,
    shrunk,
    trufor_of,
    uses_baseline,
)
from trufor_lab.interpret.targets import (
    BASELINES,
    BaselineLike,
    ConfidenceTarget,
    RegionTarget,
    ScoreTarget,
    Target,
    baseline_label,
    baseline_options,
    fit_baseline,
    fit_target,
    make_baseline,
    per_item,
    resolve_target,
    target_label,
)

__all__ = [
    "Attribution",
    "BASELINES",
    "ConfidenceTarget",
    "INPUT_METHODS",
    "InputAttribution",
    "LAYER_METHODS",
    "LayerAttribution",
    "ModalityAttribution",
    "RegionTarget",
    "ScoreTarget",
    "attribute",
    "make_baseline",
    "plot_modality_shares",
]

INPUT_METHODS = ("ig", "saliency", "input_x_gradient", "occlusion")
LAYER_METHODS = ("gradcam", "conductance")
_ALL = ("noiseprint", "encoder", "decoders")  # what an input method's backward runs through
_ALIASES = {
    "integrated_gradients": "ig",
    "integratedgradients": "ig",
    "ixg": "input_x_gradient",
    "inputxgradient": "input_x_gradient",
    "layer_gradcam": "gradcam",
    "layergradcam": "gradcam",
    "grad_cam": "gradcam",
    "layer_conductance": "conductance",
    "layerconductance": "conductance",
}


def _canonical(method: str) -> str:
    key = method.lower().strip()
    return _ALIASES.get(key, key)


# --------------------------------------------------------------------------------------------
# attribution classes
# --------------------------------------------------------------------------------------------


def _rgb_forward(model: TruFor, target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(rgb: torch.Tensor) -> torch.Tensor:
        return per_item(target(model(rgb)), rgb.shape[0])

    return f


class InputAttribution:
    """Attribution w.r.t. the RGB/256 image: ``'ig'``, ``'saliency'``, ``'input_x_gradient'``
    or ``'occlusion'`` (captum). Gradients flow through both branches, Noiseprint++ included."""

    def __init__(self, model: nn.Module, method: str = "ig") -> None:
        self.model = trufor_of(model)
        self.method = _canonical(method)
        if self.method not in INPUT_METHODS:
            raise ValueError(f"input methods are {INPUT_METHODS}, got {method!r}")

    def attribute(
        self,
        image: ImageLike,
        target: Target | None = None,
        baselines: BaselineLike = None,
        *,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        max_side: int | None = None,
        window: int | None = None,
        stride: int | None = None,
        perturbations_per_eval: int | None = None,
        sigma: float | None = None,
        seed: int | None = None,
    ) -> Attribution:
        """Explain ``target`` (default :class:`ScoreTarget`) for ``image``.

        ``baselines`` (IG, occlusion fill): default ``'blur'`` (``sigma`` 3, ``seed`` 0 for
        ``'noise'``); saliency and InputXGradient use none and refuse one. IG: ``n_steps``
        Gauss-Legendre points (32), ``internal_batch_size`` points per forward (default: about
        2**17 pixels per batch). Occlusion: square ``window`` (32), ``stride`` (default
        ``window // 2``), ``perturbations_per_eval`` windows per forward (4). An option of
        another method is refused, not ignored.
        """
        import captum.attr as ca  # lazy: captum is only needed for attribution

        kind = self.method
        refuse_unused(
            kind,
            {"n_steps": n_steps, "internal_batch_size": internal_batch_size},
            kind == "ig",
        )
        refuse_unused(
            kind,
            {"window": window, "stride": stride, "perturbations_per_eval": perturbations_per_eval},
            kind == "occlusion",
        )
        refuse_unused(kind, {"sigma": sigma, "seed": seed}, kind in ("ig", "occlusion"))
        per_eval_given = perturbations_per_eval is not None
        n_steps = 32 if n_steps is None else n_steps
        window = 32 if window is None else window
        perturbations_per_eval = 4 if perturbations_per_eval is None else perturbations_per_eval
        sigma, seed = baseline_options(baselines, sigma, seed)
        window, stride, internal_batch_size, n_steps, perturbations_per_eval = check_counts(
            window=window,
            stride=stride,
            internal_batch_size=internal_batch_size,
            n_steps=n_steps,
            perturbations_per_eval=perturbations_per_eval,
        )
        if kind == "occlusion" and stride is not None and stride > window:  # was made the window, unsaid
            raise ValueError(
                f"occlusion: stride {stride} > window {window} leaves pixels that no window covers "
                "(no attribution there); use a stride of at most the window"
            )
        target = resolve_target(target)
        with_baseline = uses_baseline(kind, baselines)
        prep = prepare(self.model, image, max_side)
        target = fit_target(target, prep.original_size, tuple(prep.x.shape[2:]))
        x = prep.x
        h, w = x.shape[2:]
        # checked before any work; path points or windows per pass lowered to fit, unless given
        if kind == "occlusion":
            per_eval = fit_memory(
                self.model, prep, kind, (), perturbations_per_eval, per_eval_given, "perturbations_per_eval"
            )
            perturbations_per_eval = per_eval
        else:
            points = (internal_batch_size or auto_batch(h, w, n_steps)) if kind == "ig" else 1
            ibs = fit_memory(self.model, prep, kind, _ALL, points, internal_batch_size is not None)
        delta = bval = None
        extras: dict[str, Any] = {}
        notes: tuple[str, ...] = ()
        with guard(self.model, f"{kind} attribution"):
            f = _rgb_forward(self.model, target)
            b = None
            if with_baseline:
                b = make_baseline(x, baselines, sigma=sigma, seed=seed, max_side=shrunk(prep, max_side))
                notes = same_input_notes([(x, b)])
            if kind == "ig":
                attr, d = ca.IntegratedGradients(f).attribute(
                    x, baselines=b, n_steps=n_steps, internal_batch_size=ibs, return_convergence_delta=True
                )
                delta = float(d.reshape(-1)[0])
                extras.update(n_steps=n_steps, internal_batch_size=ibs)
            elif kind == "saliency":  # x is our own copy: requiring grad on it is harmless
                attr = ca.Saliency(f).attribute(x.requires_grad_(True), abs=True)
            elif kind == "input_x_gradient":
                attr = ca.InputXGradient(f).attribute(x.requires_grad_(True))
            else:
                wh, ww = min(window, h), min(window, w)
                st = stride or max(1, window // 2)
                attr = (
                    ca.Occlusion(f)
                    .attribute(
                        x,
                        sliding_window_shapes=(3, wh, ww),
                        strides=(3, min(st, wh), min(st, ww)),
                        baselines=b,
                        perturbations_per_eval=perturbations_per_eval,
                    )
                    .to(x.dtype)
                )  # captum returns float32 even for a float64 model
                # as applied
                extras.update(window=(wh, ww), stride=(min(st, wh), min(st, ww)), perturbations_per_eval=per_eval)
            with torch.no_grad():  # one at a time: a value must not depend on its batch position
                bval = None if b is None else float(f(b)[0])
                # the image last: a capture open around the call keeps the image's forward
                tval = finite_target(float(f(x)[0]), target)
        raw = tensor_to_numpy(attr[0])
        reduce = {"ig": np.sum, "input_x_gradient": np.sum, "saliency": np.max, "occlusion": np.mean}[kind]
        return Attribution(
            image=prep.rgb,
            map=reduce(raw, axis=0),
            method=kind,
            target=target_label(target),
            baseline=baseline_label(baselines, sigma) if with_baseline else None,
            delta=delta,
            target_value=tval,
            baseline_value=bval,
            original_size=prep.original_size,
            max_side=max_side,
            name=prep.name,
            weights=getattr(self.model, "weights_info", None),  # read after it ran, as analyze reads it
            raw=raw,
            extras=extras,
            notes=notes,
        )


class LayerAttribution:
    """Attribution at the fused map of stage ``stage`` (1-based, ``backbone.FFMs[stage - 1]``):
    ``'gradcam'`` (LayerGradCam) or ``'conductance'`` (LayerConductance, summed over channels),
    upsampled bilinearly to the image size.

    One stage's fused map is not the only way from the image to the output (the rectified streams
    go on to the next stage, and every stage's fused map reaches the decoders), so conductance at
    one stage is the part of the change that flows through that map: ``layer_map`` does not add up
    to ``target(image) - target(baseline)``, whatever ``n_steps``; the four stages' together do."""

    def __init__(self, model: nn.Module, stage: int, method: str = "gradcam") -> None:
        self.model = trufor_of(model)
        n = self.model.cfg.num_stages
        index = whole(stage)
        if index is None or not 1 <= index <= n:
            raise ValueError(f"stage is a 1-based integer in 1..{n}, got {stage!r}")
        self.stage = stage = index
        self.layer = self.model.backbone.FFMs[stage - 1]
        self.method = _canonical(method)
        if self.method not in LAYER_METHODS:
            raise ValueError(f"layer methods are {LAYER_METHODS}, got {method!r}")

    def attribute(
        self,
        image: ImageLike,
        target: Target | None = None,
        baselines: BaselineLike = None,
        *,
        relu: bool | None = None,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        max_side: int | None = None,
        sigma: float | None = None,
        seed: int | None = None,
    ) -> Attribution:
        """Explain ``target`` (default :class:`ScoreTarget`). GradCAM: ``relu`` (default True)
        keeps positive evidence only; it uses no baseline and refuses one. Conductance:
        ``baselines`` (default ``'blur'``, ``sigma``, ``seed``), ``n_steps`` (16: a forward per
        step through every layer after the stage), ``internal_batch_size``. An option of the
        other method is refused, not ignored."""
        import captum.attr as ca  # lazy: captum is only needed for attribution

        conductance = self.method == "conductance"
        refuse_unused(self.method, {"relu": relu}, not conductance)
        refuse_unused(
            self.method,
            {"n_steps": n_steps, "internal_batch_size": internal_batch_size, "sigma": sigma, "seed": seed},
            conductance,
        )
        relu = True if relu is None else relu
        n_steps = 16 if n_steps is None else n_steps
        sigma, seed = baseline_options(baselines, sigma, seed)

        n_steps, internal_batch_size = check_counts(n_steps=n_steps, internal_batch_size=internal_batch_size)
        target = resolve_target(target)
        uses_baseline(self.method, baselines)
        prep = prepare(self.model, image, max_side)
        target = fit_target(target, prep.original_size, tuple(prep.x.shape[2:]))
        x = prep.x
        h, w = x.shape[2:]
        # conductance differences consecutive path points: Captum runs at least 2 per batch (and warns)
        points = max(2, internal_batch_size or auto_batch(h, w, n_steps)) if conductance else 1
        points = fit_memory(self.model, prep, self.method, ("decoders",), points, internal_batch_size is not None)
        base_kind = b = None
        extras: dict[str, Any] = {}
        notes: tuple[str, ...] = ()
        with guard(self.model, f"{self.method} attribution"):
            f = _rgb_forward(self.model, target)
            if self.method == "gradcam":
                low = ca.LayerGradCam(f, self.layer).attribute(x, relu_attributions=relu)
                extras["relu"] = relu
            else:
                base_kind = "blur" if baselines is None else baselines
                b = make_baseline(x, base_kind, sigma=sigma, seed=seed, max_side=shrunk(prep, max_side))
                notes = same_input_notes([(x, b)])
                ibs = max(2, points)
                low = (
                    ca.LayerConductance(f, self.layer)
                    .attribute(x, baselines=b, n_steps=n_steps, internal_batch_size=ibs)
                    .sum(dim=1, keepdim=True)
                )
                extras.update(n_steps=n_steps, internal_batch_size=ibs)
            with torch.no_grad():  # one at a time: a value must not depend on its batch position
                bval = None if b is None else float(f(b)[0])
                # the image last: a capture open around the call keeps the image's forward
                tval = finite_target(float(f(x)[0]), target)
            up = F.interpolate(low.detach(), size=(h, w), mode="bilinear", align_corners=False)
        extras["layer_map"] = tensor_to_numpy(low[0, 0])
        return Attribution(
            image=prep.rgb,
            map=tensor_to_numpy(up[0, 0]),
            method=self.method,
            target=target_label(target),
            baseline=baseline_label(base_kind, sigma) if base_kind is not None else None,
            layer=f"fusion.stage{self.stage}.ffm",
            target_value=tval,
            baseline_value=bval,
            original_size=prep.original_size,
            max_side=max_side,
            name=prep.name,
            weights=getattr(self.model, "weights_info", None),  # read after it ran, as analyze reads it
            extras=extras,
            notes=notes,
        )


class ModalityAttribution:
    """IG over the two encoder inputs, normalised RGB and the Noiseprint++ map, to say how much
    of an output each modality accounts for (share of the total |attribution|)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = trufor_of(model)

    def forward(self, rgb_n: torch.Tensor, noiseprint: torch.Tensor, target: Target) -> torch.Tensor:
        """``target`` of the network fed the given encoder inputs (no DnCNN, no normalisation)."""
        m = self.model
        x_np = noiseprint.expand(-1, 3, -1, -1) if noiseprint.shape[1] == 1 else noiseprint
        logits, conf, det = m.forward_heads(m.backbone(rgb_n, x_np), rgb_n.shape[2:])
        return per_item(target(TruForOutput(logits, conf, det, noiseprint)), rgb_n.shape[0])

    def attribute(
        self,
        image: ImageLike,
        target: Target | None = None,
        baselines: BaselineLike | tuple[torch.Tensor, torch.Tensor] = None,
        *,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        max_side: int | None = None,
        sigma: float | None = None,
        seed: int | None = None,
    ) -> Attribution:
        """``n_steps`` (32), ``internal_batch_size`` as for IG. ``baselines``: ``'zeros'`` (both encoder inputs 0), an image baseline of
        :func:`make_baseline` (``None`` or ``'blur'``, the default: its normalised RGB and its own
        Noiseprint++; ``sigma``, ``seed`` as there), or a pair of tensors ``(rgb_normalised, noiseprint)``."""
        import captum.attr as ca  # lazy: captum is only needed for attribution

        sigma, seed = baseline_options(baselines, sigma, seed)
        n_steps, internal_batch_size = check_counts(
            n_steps=32 if n_steps is None else n_steps, internal_batch_size=internal_batch_size
        )
        target = resolve_target(target)
        m = self.model
        prep = prepare(m, image, max_side)
        target = fit_target(target, prep.original_size, tuple(prep.x.shape[2:]))
        x = prep.x
        h, w = x.shape[2:]
        ibs = internal_batch_size or auto_batch(h, w, n_steps)
        ibs = fit_memory(m, prep, "modality", ("encoder", "decoders"), ibs, internal_batch_size is not None)
        with guard(m, "modality attribution"):
            with torch.no_grad():
                # the Noiseprint++ map the encoder reads: m(x) honours an active ablation that
                # replaces it (a model pre-hook), which forward_noiseprint would bypass
                rgb_n, npm = m.normalize(x), m(x).noiseprint
                if isinstance(baselines, tuple):
                    if len(baselines) != 2:
                        raise ValueError("a tuple baseline is the pair (rgb_normalised, noiseprint)")
                    b_rgb, b_np = (
                        fit_baseline(torch.as_tensor(t), r, f"the {n} baseline", shrunk(prep, max_side))
                        for t, r, n in zip(baselines, (rgb_n, npm), ("RGB", "Noiseprint++"))
                    )
                    label, same = "tensors", [(rgb_n, b_rgb), (npm, b_np)]
                elif isinstance(baselines, str) and baselines == "zeros":
                    b_rgb, b_np = torch.zeros_like(rgb_n), torch.zeros_like(npm)
                    label, same = "zeros", [(rgb_n, b_rgb), (npm, b_np)]
                else:
                    bimg = make_baseline(x, baselines, sigma=sigma, seed=seed, max_side=shrunk(prep, max_side))
                    b_rgb, b_np = m.normalize(bimg), m(bimg).noiseprint
                    label = baseline_label(baselines, sigma)
                    # compared as an image: Noiseprint++ turns a one-ulp change of a flat image
                    # into a map difference that IG then explains, all of it rounding noise
                    same = [(x, bimg)]
                notes = same_input_notes(same, shares=True)

            def f(r: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
                # an input an ablation replaces (noiseprint_only's RGB) is not in the graph: its
                # attribution is 0, not captum's "appears to not have been used in the graph"
                unused = 0.0 * (r.flatten(1).sum(1) + n.flatten(1).sum(1))
                return self.forward(r, n, target) + unused

            (a_rgb, a_np), d = ca.IntegratedGradients(f).attribute(
                (rgb_n, npm),
                baselines=(b_rgb, b_np),
                n_steps=n_steps,
                internal_batch_size=ibs,
                return_convergence_delta=True,
            )
            with torch.no_grad():  # one at a time: a value must not depend on its batch position
                base = f(b_rgb, b_np)[0]
                # the image last, as one whole forward of the model (Noiseprint++ included, the same
                # arithmetic as f): a capture around the call keeps it. f runs the encoder and the
                # heads only, so a captured Noiseprint++ map was the blurred baseline's, unsaid
                vals = (per_item(target(m(x)), 1)[0], base)
                finite_target(float(vals[0]), target)
        tot_rgb, tot_np = float(a_rgb.abs().sum()), float(a_np.abs().sum())
        total = tot_rgb + tot_np
        nothing = bool(notes) or same_target(float(vals[0]), float(vals[1]))  # shares of rounding noise
        shares = (
            {"rgb": tot_rgb / total, "noiseprint": tot_np / total}
            if total > 0 and not nothing
            else {"rgb": math.nan, "noiseprint": math.nan}
        )
        maps = {"rgb": tensor_to_numpy(a_rgb[0].sum(dim=0)), "noiseprint": tensor_to_numpy(a_np[0].sum(dim=0))}
        extras = {
            "shares": shares,
            "maps": maps,
            "abs_totals": {"rgb": tot_rgb, "noiseprint": tot_np},
            "sums": {"rgb": float(a_rgb.sum()), "noiseprint": float(a_np.sum())},
            "n_steps": n_steps,
            "internal_batch_size": ibs,
        }
        return Attribution(
            image=prep.rgb,
            map=maps["rgb"] + maps["noiseprint"],
            method="modality_ig",
            target=target_label(target),
            baseline=label,
            delta=float(d.reshape(-1)[0]),
            target_value=float(vals[0]),
            baseline_value=float(vals[1]),
            original_size=prep.original_size,
            max_side=max_side,
            name=prep.name,
            weights=getattr(self.model, "weights_info", None),  # read after it ran, as analyze reads it
            extras=extras,
            notes=notes,
        )


def attribute(
    model: nn.Module,
    image: ImageLike,
    method: str = "ig",
    target: Target | None = None,
    baselines: Any = None,
    *,
    stage: int | None = None,
    **kw: Any,
) -> Attribution:
    """One call for every method: input methods (``'ig'``, ``'saliency'``, ``'input_x_gradient'``,
    ``'occlusion'``), layer methods at ``stage`` (``'gradcam'``, ``'conductance'``; default 4)
    and ``'modality'``. ``baselines`` and ``**kw`` go to the class's ``attribute`` (the same
    names as there, and as Captum's)."""
    if "baseline" in kw:
        raise TypeError("attribute(): the keyword is baselines= (as in the classes and in Captum), not baseline=")
    m = _canonical(method)
    if stage is not None and m not in LAYER_METHODS:
        raise TypeError(f"attribute(): stage applies to the layer methods {LAYER_METHODS}, not {m!r}")
    if m in INPUT_METHODS:
        return InputAttribution(model, m).attribute(image, target, baselines, **kw)
    if m in LAYER_METHODS:
        return LayerAttribution(model, 4 if stage is None else stage, m).attribute(image, target, baselines, **kw)
    if m == "modality":
        return ModalityAttribution(model).attribute(image, target, baselines, **kw)
    raise ValueError(f"unknown method {method!r}; choose from {INPUT_METHODS + LAYER_METHODS + ('modality',)}")
