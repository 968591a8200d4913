"""Reversible interventions on TruFor ("ablations"): the interventions and their registry.

Every ablation is a context manager bound to one model. Entering it flips an attribute
(``lambda_c``, ``cross_enabled``, ``pool.weighting``) or registers a hook; leaving it, normally
or through an exception, restores exactly what was there. Weights are never touched, so the
state dict stays bit-identical.

>>> from trufor_lab.interpret import ablate
>>> with ablate.rgb_only(model) as ab:
...     r = ab.analyze("photo.png")          # a normal Result, r.label == "rgb_only"

Studies (every image under every ablation) are :mod:`trufor_lab.interpret.ablate`.

What each one does (stages and scales are 1-based, as in the paper):

- ``rgb_only``: the Noiseprint++ branch reads zeros (``fill='zeros'``, the same as
  ``model(x, noiseprint=torch.zeros(B, 1, H, W))``) or the map's per-image mean (``fill='mean'``).
- ``noiseprint_only``: the RGB branch's normalised input is replaced: ``'zeros'`` (0 after
  normalisation, i.e. a flat image of the ImageNet mean colour), ``'mean'`` (the image's
  per-channel mean colour) or ``'gray'`` (a flat 0.5 image). Noiseprint++ still sees the image.
- ``noiseprint_from``: Noiseprint++ of another image (see its docstring for the size policy).
- ``noiseprint_noise``: Gaussian noise with the map's mean and standard deviation.
- ``no_frm`` / ``no_ffm_cross``: CMX rectification off / FFM cross-attention path off.
- ``drop_scales``: zero the per-scale embeddings ``linear_cK`` of the decoders.
- ``uniform_pooling``: anomaly statistics pooled uniformly instead of confidence-weighted.
- ``map_only_detection``: the detection head sees a constant confidence, so the score is a
  function of the localization map alone (see its docstring).

Noiseprint replacements act on ``model(rgb, noiseprint=...)`` calls (the replaced map is the
``noiseprint`` of the output, so ``Result.noiseprint`` shows what the encoder read); RGB
replacement acts on the encoder's input, so it also applies to ``forward_features``.

While active, an ablation registers itself on the model (:mod:`trufor_lab.model.interventions`)
with ``lean_ok``: whether the memory-lean forward honours it. The modality ablations hook the
model's or the encoder's call, which the lean forward bypasses (``lean_ok=False``: analyze and
predict then use the plain forward where it fits, and refuse the image where it does not);
``no_frm``, ``no_ffm_cross``, ``uniform_pooling`` (attributes the lean forward reads),
``drop_scales`` (hooks on ``linear_cK``) and ``map_only_detection`` (hook on ``pool``) act on
modules the lean forward calls too (``lean_ok=True``).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.preprocess import ImageLike, load_image, to_tensor
from trufor_lab.common.arrays import whole
from trufor_lab.model import TruFor
from trufor_lab.model.interventions import hook_keys, registered
from trufor_lab.model.identity import state_key
from trufor_lab.model.noiseprint import exact_float32

Setup = Callable[[contextlib.ExitStack], None]

__all__ = [
    "ABLATIONS",
    "Ablation",
    "AblationRegistry",
    "AblationSpec",
    "UnknownAblation",
    "baseline",
    "compose",
    "drop_scales",
    "get_ablation",
    "map_only_detection",
    "no_ffm_cross",
    "no_frm",
    "noiseprint_from",
    "noiseprint_noise",
    "noiseprint_only",
    "register_ablation",
    "rgb_only",
    "uniform_pooling",
]


class Ablation:
    """A named, reversible intervention on one model; a re-usable (not re-entrant) context manager.

    ``setup(stack)`` applies the change and pushes its undo onto ``stack``; the stack is
    unwound on exit, and also if ``setup`` itself fails half-way. While active, the ablation is
    registered on the model as an intervention (see ``lean_ok``).
    """

    def __init__(
        self,
        model: nn.Module,
        name: str,
        setup: Setup,
        description: str = "",
        *,
        lean_ok: bool = False,
        identity: str | None = None,
    ) -> None:
        self.model = model
        self.name = name
        #: What an output computed under it records (default: the name). Set where the name does
        #: not say everything that changes the outputs (whose Noiseprint++ is swapped in).
        self.identity = identity or name
        self.description = description
        #: Whether the memory-lean forward honours it (False, the safe default, makes analyze and
        #: predict use the plain forward while it is active, or refuse an image too large for it).
        self.lean_ok = lean_ok
        self._setup = setup
        self._stack: contextlib.ExitStack | None = None

    @property
    def active(self) -> bool:
        return self._stack is not None

    def __enter__(self) -> "Ablation":
        if self._stack is not None:
            raise RuntimeError(f"ablation {self.name!r} is already active")
        stack = contextlib.ExitStack()
        try:
            entry = stack.enter_context(
                registered(
                    self.model,
                    self.name,
                    record=self.identity,
                    lean_ok=self.lean_ok,
                    why=f"{self.description or self.name} acts through hooks it skips",
                )
            )
            before = hook_keys(self.model)
            self._setup(stack)
            entry.hooks.update(hook_keys(self.model) - before)  # its own: not taken for a user's
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def analyze(self, image: ImageLike, analyze_fn: Callable[..., Result] | None = None, **kw: Any) -> Result:
        """``analyze(model, image)`` under this ablation, with ``Result.label`` set to its name."""
        fn = analyze if analyze_fn is None else analyze_fn
        with contextlib.nullcontext() if self.active else self:
            r = fn(self.model, image, **kw)
        r.label = self.name
        return r

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"<Ablation {self.name!r} ({state}){': ' + self.description if self.description else ''}>"


# --------------------------------------------------------------------------------------------
# building blocks: every change registers its own undo
# --------------------------------------------------------------------------------------------


def _set(stack: contextlib.ExitStack, obj: object, attr: str, value: Any) -> None:
    """``obj.attr = value`` while the ablation is active. The values set on one attribute are
    layered (kept on the object while any is active), so ablations exited out of order, as
    notebook cells may, still end with the original value."""
    layers = obj.__dict__.setdefault("_ablation_layers", {})
    base, active = layers.setdefault(attr, (getattr(obj, attr), []))
    token = object()
    active.append((token, value))
    setattr(obj, attr, value)

    def undo() -> None:
        active[:] = [(t, v) for t, v in active if t is not token]
        setattr(obj, attr, active[-1][1] if active else base)
        if not active:
            del layers[attr]
            if not layers:
                del obj.__dict__["_ablation_layers"]

    stack.callback(undo)


def _trufor(model: nn.Module) -> TruFor:
    if not isinstance(model, TruFor):
        raise TypeError(
            f"ablations need a full TruFor model, got {type(model).__name__} "
            "(Noiseprint++ alone has no fusion, decoders or detection head)"
        )
    return model


def _stage_indices(model: TruFor, stages: int | Iterable[int]) -> list[int]:
    n = model.cfg.num_stages
    if isinstance(stages, np.ndarray) and stages.ndim == 0:
        stages = stages.item()
    single = whole(stages) is not None or not isinstance(stages, Iterable) or isinstance(stages, (str, bytes))
    stages = [stages] if single else list(stages)  # type: ignore[arg-type]
    ints = [whole(s) for s in stages]
    if not stages or any(i is None or not 1 <= i <= n for i in ints):
        raise ValueError(f"stages are 1-based integers in 1..{n}, got {stages!r}")
    return sorted({i - 1 for i in ints if i is not None})  # (3, 1) and (1, 3, 3) name the same ablation as (1, 3)


def _suffix(default: bool, *parts: object) -> str:
    return "" if default else "_" + "_".join(str(p) for p in parts)


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _noiseprint_hook(model: TruFor, make: Callable[[TruFor, torch.Tensor, torch.Tensor | None], torch.Tensor]) -> Setup:
    """Forward pre-hook on the model that sets ``noiseprint=make(model, rgb, given)``."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        args, kwargs = tuple(args), dict(kwargs)
        rgb = args[0] if args else kwargs["rgb"]
        given = args[1] if len(args) > 1 else kwargs.get("noiseprint")
        kwargs["noiseprint"] = make(module, rgb.to(_model_dtype(module)), given)
        return args[:1], kwargs

    def setup(stack: contextlib.ExitStack) -> None:
        stack.callback(model.register_forward_pre_hook(hook, with_kwargs=True).remove)

    return setup


def _quiet_noiseprint(model: TruFor, rgb: torch.Tensor) -> torch.Tensor:
    """The Noiseprint++ map, the same arithmetic as ``model.forward_noiseprint``, without firing
    hooks on the DnCNN: a capture must record what the encoder reads, not this helper's map."""
    net = model.dncnn
    with exact_float32(net.onednn):
        x = rgb.to(next(net.parameters()).dtype)
        for layer in net:
            x = layer.forward(x)
    return x


def _real_noiseprint(model: TruFor, rgb: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    return _quiet_noiseprint(model, rgb) if given is None else given


# --------------------------------------------------------------------------------------------
# modality
# --------------------------------------------------------------------------------------------


def rgb_only(model: nn.Module, fill: str = "zeros") -> Ablation:
    """Noiseprint++ branch blinded: its input is zeros or the per-image mean of the map."""
    m = _trufor(model)
    if fill not in ("zeros", "mean"):
        raise ValueError(f"fill must be 'zeros' or 'mean', got {fill!r}")

    def make(mod: TruFor, rgb: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
        if fill == "zeros":
            shape = given.shape if given is not None else (rgb.shape[0], 1, *rgb.shape[2:])
            return rgb.new_zeros(shape)
        npm = _real_noiseprint(mod, rgb, given)
        return npm.mean(dim=(1, 2, 3), keepdim=True).expand_as(npm)

    return Ablation(
        m,
        "rgb_only" + _suffix(fill == "zeros", fill),
        _noiseprint_hook(m, make),
        f"Noiseprint++ input replaced by {fill}",
    )


def noiseprint_only(model: nn.Module, fill: str = "zeros") -> Ablation:
    """RGB branch blinded: its normalised input becomes ``'zeros'`` (ImageNet mean colour),
    ``'mean'`` (per-image, per-channel mean colour) or ``'gray'`` (flat 0.5). Noiseprint++
    is still computed from the real image."""
    m = _trufor(model)
    if fill not in ("zeros", "mean", "gray"):
        raise ValueError(f"fill must be 'zeros', 'mean' or 'gray', got {fill!r}")

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        args, kwargs = list(args), dict(kwargs)
        x = args[0] if args else kwargs["x_rgb"]
        if fill == "zeros":
            new = torch.zeros_like(x)
        elif fill == "mean":
            new = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        else:
            new = ((0.5 - m.rgb_mean) / m.rgb_std).to(x.dtype).expand_as(x)
        if args:
            args[0] = new
        else:
            kwargs["x_rgb"] = new
        return tuple(args), kwargs

    def setup(stack: contextlib.ExitStack) -> None:
        stack.callback(m.backbone.register_forward_pre_hook(hook, with_kwargs=True).remove)

    return Ablation(
        m, "noiseprint_only" + _suffix(fill == "zeros", fill), setup, f"RGB branch input replaced by {fill}"
    )


def _fit_periodic(npm: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop (top-left) or tile ``npm`` (1, 1, H, W) to (1, 1, h, w) without resampling. Along a
    side that is tiled, the tile is first cut to a multiple of 8, so that every tile keeps the
    JPEG 8x8 grid phase of the first."""
    H, W = npm.shape[-2:]
    H = H if h <= H or H < 8 else H // 8 * 8
    W = W if w <= W or W < 8 else W // 8 * 8
    npm = npm[..., :H, :W]
    reps = (math.ceil(h / H), math.ceil(w / W))
    if reps != (1, 1):
        npm = npm.repeat(1, 1, *reps)
    return npm[..., :h, :w]


def noiseprint_from(model: nn.Module, other_image: ImageLike, name: str | None = None) -> Ablation:
    """Noiseprint++ of ``other_image`` fed in place of the image's own (a fingerprint swap).

    Size policy: the other map is computed once at its full size (never resampled, which would
    smear the fingerprint and shift the JPEG 8x8 grid), then cropped from the top-left corner
    when larger, or tiled periodically from the top-left when smaller (each tile cut to a
    multiple of 8 pixels first), so pixel (0, 0) and the grid phase are kept. The tiles' seams
    are edges of the swapped fingerprint themselves, as a splice's would be.
    """
    m = _trufor(model)
    loaded = load_image(other_image)
    rgb_other = loaded.rgb
    cache: dict[tuple, torch.Tensor] = {}

    def make(mod: TruFor, rgb: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
        key = (rgb.device, rgb.dtype, mod.dncnn.onednn, state_key(mod.dncnn))  # its weights now, not the first
        if key not in cache:
            cache.clear()  # one map held
            with torch.no_grad():
                cache[key] = _quiet_noiseprint(mod, to_tensor(rgb_other, dtype=rgb.dtype, device=rgb.device))
        fitted = _fit_periodic(cache[key], rgb.shape[2], rgb.shape[3])
        return fitted.expand(rgb.shape[0], -1, -1, -1)

    label = name or "noiseprint_from_" + (os.path.basename(loaded.name) if not loaded.name.startswith("<") else "image")
    # two donors of one name (camA/IMG_1.png, camB/IMG_1.png, two arrays) are two interventions
    pixels = hashlib.sha256(repr(rgb_other.shape).encode() + rgb_other.tobytes()).hexdigest()[:12]
    return Ablation(
        m,
        label,
        _noiseprint_hook(m, make),
        f"Noiseprint++ of another image ({rgb_other.shape[1]}x{rgb_other.shape[0]}), cropped/tiled",
        identity=f"{label} [donor pixels sha256 {pixels}]",
    )


def noiseprint_noise(model: nn.Module, std: float | None = None, seed: int = 0) -> Ablation:
    """Noiseprint++ replaced by i.i.d. Gaussian noise: with the map's per-image mean and std
    (``std=None``), or zero-mean with the given ``std`` (then the DnCNN is not run).
    The noise is drawn on the CPU from ``seed`` at every forward, so it is reproducible: one
    (H, W) field shared by the batch, so an image's answer does not depend on its position in a
    batch (captum batches path points and occlusion windows)."""
    m = _trufor(model)

    def make(mod: TruFor, rgb: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
        shape = given.shape if given is not None else (rgb.shape[0], 1, *rgb.shape[2:])
        g = torch.Generator().manual_seed(seed)
        z = torch.randn((1, 1, *shape[2:]), generator=g, dtype=torch.float64).expand(shape)  # one (H, W) field
        z = z.to(device=rgb.device, dtype=rgb.dtype)
        if std is not None:
            return z * std
        npm = _real_noiseprint(mod, rgb, given)  # not detached: an attribution's gradient follows its mean, std
        return npm.mean(dim=(1, 2, 3), keepdim=True) + npm.std(dim=(1, 2, 3), keepdim=True) * z

    return Ablation(
        m,
        "noiseprint_noise" + (f"_std{std:g}" if std is not None else "") + (f"_seed{seed}" if seed else ""),
        _noiseprint_hook(m, make),
        "Noiseprint++ replaced by Gaussian noise",
    )


# --------------------------------------------------------------------------------------------
# fusion, decoders, detection
# --------------------------------------------------------------------------------------------


def no_frm(model: nn.Module, stages: int | Iterable[int] = (1, 2, 3, 4)) -> Ablation:
    """Feature rectification off (``lambda_c = lambda_s = 0``) at the given stages."""
    m = _trufor(model)
    idx = _stage_indices(m, stages)

    def setup(stack: contextlib.ExitStack) -> None:
        for i in idx:
            _set(stack, m.backbone.FRMs[i], "lambda_c", 0.0)
            _set(stack, m.backbone.FRMs[i], "lambda_s", 0.0)

    full = len(idx) == m.cfg.num_stages
    return Ablation(
        m,
        "no_frm" + _suffix(full, "".join(str(i + 1) for i in idx)),
        setup,
        f"FRM off at stages {[i + 1 for i in idx]}",
        lean_ok=True,
    )


def no_ffm_cross(model: nn.Module, stages: int | Iterable[int] = (1, 2, 3, 4)) -> Ablation:
    """FFM cross-attention path skipped (streams go straight to the channel embedding)."""
    m = _trufor(model)
    idx = _stage_indices(m, stages)

    def setup(stack: contextlib.ExitStack) -> None:
        for i in idx:
            _set(stack, m.backbone.FFMs[i], "cross_enabled", False)

    full = len(idx) == m.cfg.num_stages
    return Ablation(
        m,
        "no_ffm_cross" + _suffix(full, "".join(str(i + 1) for i in idx)),
        setup,
        f"FFM cross path off at stages {[i + 1 for i in idx]}",
        lean_ok=True,
    )


_DECODERS = {"anomaly": "decode_head", "confidence": "decode_head_conf"}


def drop_scales(
    model: nn.Module,
    scales: str | int | Iterable[str | int] = ("c4",),
    decoders: str | Iterable[str] = ("anomaly", "confidence"),
) -> Ablation:
    """Zero the per-scale embeddings (outputs of ``linear_cK``) of the chosen decoders, so the
    fuse layer sees nothing from those scales. Scales are ``'c1'..'c4'`` or 1..4."""
    m = _trufor(model)
    single = isinstance(scales, str) or whole(scales) is not None or not isinstance(scales, Iterable)
    scales = [scales] if single else list(scales)  # type: ignore[arg-type]
    decoders = [decoders] if isinstance(decoders, str) else list(decoders)
    ks = []
    for s in scales:
        k = int(s[1:]) if isinstance(s, str) and s.lower().startswith("c") and s[1:].isdigit() else whole(s)
        if k is None or not 1 <= k <= m.cfg.num_stages:
            raise ValueError(f"scales are 'c1'..'c{m.cfg.num_stages}' (or 1..{m.cfg.num_stages}), got {s!r}")
        ks.append(k)
    for d in decoders:
        if d not in _DECODERS:
            raise ValueError(f"decoders are {sorted(_DECODERS)}, got {d!r}")
    if not ks or not decoders:  # an ablation named 'drop_' that changed nothing, or an IndexError
        raise ValueError(f"drop_scales needs at least one scale and one decoder, got {scales!r} and {decoders!r}")
    ks, decoders = sorted(set(ks)), sorted(set(decoders))

    def zero(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(out)

    def setup(stack: contextlib.ExitStack) -> None:
        for d in decoders:
            head = getattr(m, _DECODERS[d])
            for k in ks:
                stack.callback(getattr(head, f"linear_c{k}").register_forward_hook(zero).remove)

    name = "drop_" + "_".join(f"c{k}" for k in ks) + ("" if len(decoders) == 2 else f"_{decoders[0]}")
    return Ablation(m, name, setup, f"scales {['c%d' % k for k in ks]} zeroed in {decoders} decoder(s)", lean_ok=True)


def uniform_pooling(model: nn.Module) -> Ablation:
    """Detection pools the anomaly logits uniformly (the confidence still enters through its
    own four statistics)."""
    m = _trufor(model)

    def setup(stack: contextlib.ExitStack) -> None:
        _set(stack, m.pool, "weighting", "uniform")

    return Ablation(m, "uniform_pooling", setup, "confidence weighting of the pooling off", lean_ok=True)


def map_only_detection(model: nn.Module, conf_logit: float = 0.0) -> Ablation:
    """Score from the localization map alone.

    The pooling layer receives a constant confidence logit (``conf_logit``, default 0, i.e.
    confidence 0.5) instead of the confidence decoder's output: the four confidence statistics
    become fixed numbers and the anomaly statistics are pooled uniformly, so the detection
    logit is a function of the anomaly logit difference, i.e. of the map, only. The returned
    ``conf`` map is unchanged.
    """
    m = _trufor(model)

    def hook(module: nn.Module, args: tuple) -> tuple:
        logits, conf = args
        return logits, torch.full_like(conf, conf_logit)

    def setup(stack: contextlib.ExitStack) -> None:
        stack.callback(m.pool.register_forward_pre_hook(hook).remove)

    return Ablation(
        m,
        "map_only_detection" + _suffix(conf_logit == 0.0, conf_logit),
        setup,
        f"detection sees a constant confidence logit {conf_logit:g}",
        lean_ok=True,
    )


def baseline(model: nn.Module) -> Ablation:
    """The identity: the model as it is (the reference row of a study)."""
    return Ablation(model, "baseline", lambda stack: None, "no intervention", lean_ok=True)


def compose(*ablations: Ablation, name: str | None = None) -> Ablation:
    """All of ``ablations`` at once (entered in order, left in reverse); one model only."""
    if not ablations:
        raise ValueError("compose() needs at least one ablation")
    models = {id(a.model) for a in ablations}
    if len(models) != 1:
        raise ValueError("compose() combines ablations of one and the same model")

    def setup(stack: contextlib.ExitStack) -> None:
        for a in ablations:
            stack.enter_context(a)

    return Ablation(
        ablations[0].model,
        name or "+".join(a.name for a in ablations),
        setup,
        "; ".join(a.description for a in ablations if a.description),
        lean_ok=all(a.lean_ok for a in ablations),
    )


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------

Factory = Callable[..., Ablation]


class UnknownAblation(KeyError, ValueError):
    """An unknown ablation name (the message suggests the closest)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AblationRegistry(Mapping[str, Factory]):
    """name -> factory ``f(model, **kw) -> Ablation``; refuses duplicates, suggests on typos."""

    def __init__(self) -> None:
        self._d: dict[str, Factory] = {}

    def register(self, name: str, factory: Factory, *, overwrite: bool = False) -> None:
        if not callable(factory):
            raise TypeError(f"an ablation factory must be callable, got {type(factory).__name__}")
        if name in self._d and not overwrite:
            raise ValueError(f"ablation {name!r} is already registered")
        self._d[name] = factory

    def __getitem__(self, name: str) -> Factory:
        if name in self._d:
            return self._d[name]
        close = difflib.get_close_matches(str(name), list(self._d), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(self._d)}"
        raise UnknownAblation(f"unknown ablation {name!r}{hint}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"AblationRegistry({', '.join(self._d)})"


#: The named ablations (``noiseprint_from`` needs ``other_image=``).
ABLATIONS = AblationRegistry()


def register_ablation(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Add ``factory(model, **kw) -> Ablation`` to :data:`ABLATIONS`."""
    ABLATIONS.register(name, factory, overwrite=overwrite)


def get_ablation(model: nn.Module, spec: "AblationSpec", **kw: Any) -> Ablation:
    """An :class:`Ablation` bound to ``model`` from a name, an Ablation or a factory."""
    if isinstance(spec, Ablation):
        if spec.model is not model:
            raise ValueError(f"ablation {spec.name!r} is bound to another model")
        return spec
    if isinstance(spec, str):
        return ABLATIONS[spec](model, **kw)
    if callable(spec):
        out = spec(model, **kw)
        if not isinstance(out, Ablation):
            raise TypeError(f"an ablation factory must return an Ablation, got {type(out).__name__}")
        return get_ablation(model, out)  # one bound to another model acted on that one: a baseline row
    raise TypeError(f"expected an ablation name, Ablation or factory, got {type(spec).__name__}")


def _variant(factory: Factory, **fixed: Any) -> Factory:
    def f(model: nn.Module, **kw: Any) -> Ablation:
        return factory(model, **{**fixed, **kw})

    f.__doc__ = factory.__doc__
    return f


for _name, _factory in {
    "baseline": baseline,
    "rgb_only": rgb_only,
    "rgb_only_mean": _variant(rgb_only, fill="mean"),
    "noiseprint_only": noiseprint_only,
    "noiseprint_only_mean": _variant(noiseprint_only, fill="mean"),
    "noiseprint_only_gray": _variant(noiseprint_only, fill="gray"),
    "noiseprint_from": noiseprint_from,
    "noiseprint_noise": noiseprint_noise,
    "no_frm": no_frm,
    "no_ffm_cross": no_ffm_cross,
    "no_fusion": lambda model: compose(no_frm(model), no_ffm_cross(model), name="no_fusion"),
    **{f"drop_c{k}": _variant(drop_scales, scales=(f"c{k}",)) for k in range(1, 5)},
    "uniform_pooling": uniform_pooling,
    "map_only_detection": map_only_detection,
}.items():
    register_ablation(_name, _factory)

AblationSpec = Union[str, Ablation, Factory]

# --------------------------------------------------------------------------------------------
# studies
