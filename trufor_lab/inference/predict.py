"""Inference modes: ``predict(model, x, mode='exact' | 'fast')``.

``exact`` (the default) computes what the official code computes, the way it does on that
device: IEEE float32 (float64 for a double model), oneDNN convolutions on the CPU, no TF32 on
CUDA (flags set for the call only and restored), no autocast. What costs time without
changing the network is removed, and what only reorders float32 sums is used where it is
faster: Noiseprint++ with its BatchNorms folded, computed on the CPU in row strips into two
reused maps (bit-identical: fresh full-size maps cost more in page faults than the
convolutions save), channels-last inputs, SDPA attention (unless ``model.set_attention`` or
the mode's ``chunks`` chose another), both decoders folded into
per-scale products built in bands of rows (:func:`~trufor_lab.model.decoder.folded_decode`).
When the image does not fit in free memory as a whole, the memory-lean forward of
:mod:`trufor_lab.model.lean` runs instead (a 24-megapixel image within 24 GB). It equals
``model(x)`` within float32 rounding (tests/test_inference.py) and meets the float32 parity
tolerances (float64: 1e-6).

``fast`` is opt-in and *not* exact: Noiseprint++ still runs in IEEE float32 (always), but on
CPUs by Winograd's algorithm where PyTorch has NNPACK (:mod:`~trufor_lab.model.winograd`:
at 1 MP on a 2-core AVX-512 CPU ~1.6x the exact path's oneDNN convolutions, about as close to
the float64 reference), else channels-last (oneDNN sums in another order: 1.2-1.65x, further
from the reference, still within the shared float32 tolerance); the dual encoder in bfloat16
autocast on CUDA; on the CPU the encoder stays float32 and the Mix-FFNs run over bands of token
rows (``token_bands``); the decoders as in ``exact``; optionally ``torch.compile``. On CPUs
with native bfloat16 (AVX512-BF16 / AMX, :func:`~trufor_lab.model.precision.cpu_has_native_bf16`)
a bfloat16 encoder is 0.7-1.5 s faster at 1 MP but moved the map by ~2e-2 (beyond the 1e-2 the fast mode
promises), so it is opt-in: ``InferenceMode.fast(amp_on_cpu=None)`` (where native) or
``True`` (always). ``keep_float32`` names encoder parts kept float32 under autocast, by default
per device (:data:`DEFAULT_KEEP_FLOAT32`; on CPUs the attention's key/value reductions too,
whose bfloat16 oneDNN convolution moved a trained model's map by up to 0.9). A caller's own
``torch.autocast`` changes neither mode, nor does a global TF32 or oneDNN bfloat16 setting for
float32 (both modes pin IEEE float32 outside their own autocast). Its deviation from ``exact`` is measured by ``python -m bench`` (:func:`deviation`,
:func:`deviation_quantiles`; bench/RESULTS.md).

The exact and fast forwards call the model's layers piece by piece: forward hooks on
Noiseprint++ layers and on the decoders (and, in the lean forward, on whole blocks, stages or
fusion modules) would not fire there. So a model with a hook or an active intervention
(:mod:`trufor_lab.model.interventions`, e.g. an ablation) runs the plain forward, in IEEE
float32, whatever the mode; where only the lean forward fits, interventions it cannot honour
refuse the image with ``InterventionError``. Use ``tl.analyze`` to capture intermediate layers.

>>> out = predict(model, x)                     # TruForOutput, exact float32
>>> out = predict(model, x, mode="fast")        # faster, approximate (see bench/RESULTS.md)
>>> r = predict_result(model, "photo.jpg")      # a trufor_lab.Result, like tl.analyze
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Iterator

import torch
from torch import nn

from trufor_lab.common.device import model_device, model_dtype
from trufor_lab.inference.deviation import deviation, deviation_quantiles
from trufor_lab.inference.modes import (
    DEFAULT_KEEP_FLOAT32,
    FLOAT32_PARTS,
    MODES,
    InferenceMode,
    mode_label,
    resolve_mode,
    uses_autocast,
)
from trufor_lab.inference.preprocess import ImageLike
from trufor_lab.inference.load import unwrapped
from trufor_lab.inference.result import Result, make_result, prepare_input, require_full_precision
from trufor_lab.model.attention import check_attention
from trufor_lab.model.config import MIT_B2
from trufor_lab.model.decoder import require_eval
from trufor_lab.model.interventions import (
    acts_here,
    intervention_label,
    plain_forward_required,
)
from trufor_lab.model.layout import channels_last_weights, token_bands
from trufor_lab.model.lean import (
    MIN_BUDGET,
    LeanConfig,
    estimate_lean_peak,
    estimate_plain_peak,
    free_memory_bytes,
    gemm_convolution,
    ieee_float32,
    lean_forward,
    noiseprint_maps,
    noiseprint_tiled,
)
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.precision import full_precision
from trufor_lab.model.segformer import SpatialReductionAttention
from trufor_lab.model.trufor import TruFor, TruForOutput
from trufor_lab.model.winograd import winograd_applies

__all__ = [
    "DEFAULT_KEEP_FLOAT32",
    "FLOAT32_PARTS",
    "MODES",
    "InferenceMode",
    "attention_override",
    "lean_peak_bytes",
    "deviation",
    "deviation_quantiles",
    "mode_label",
    "plain_fits",
    "plain_peak_bytes",
    "predict",
    "predict_result",
    "resolve_mode",
    "uses_autocast",
]


def attention_override(model: nn.Module, impl: str, chunk: int | None = None) -> contextlib.AbstractContextManager:
    """Set every SRA's ``impl``/``chunk`` for the duration of the block, then restore them."""
    check_attention(impl, chunk)
    return _attention_set(model, lambda _impl, _chunk: (impl, chunk))


def _mode_attention(model: nn.Module, c: LeanConfig) -> contextlib.AbstractContextManager:
    """The attention ``c`` sets (``attention``, ``attn_chunk``) for the block; what it leaves
    ``None`` stays as the model's ``set_attention`` chose."""
    return _attention_set(model, lambda impl, chunk: (c.attention or impl, c.attn_chunk or chunk))


@contextlib.contextmanager
def _attention_set(model: nn.Module, choose: Callable[[str, int | None], tuple[str, int | None]]) -> Iterator[None]:
    """Every SRA's ``(impl, chunk)`` replaced by ``choose(impl, chunk)`` in the block, then restored."""
    mods = [m for m in model.modules() if isinstance(m, SpatialReductionAttention)]
    saved = [(m.impl, m.chunk) for m in mods]
    try:
        for m in mods:
            m.impl, m.chunk = choose(m.impl, m.chunk)
        yield
    finally:
        for m, (i, c) in zip(mods, saved):
            m.impl, m.chunk = i, c


def _model_attention(model: nn.Module) -> str:
    """``"plain"`` when any SRA of the model evaluates the formula as written, else ``"sdpa"``."""
    plain = any(isinstance(m, SpatialReductionAttention) and m.impl == "plain" for m in model.modules())
    return "plain" if plain else "sdpa"


#: Attribute of a model that holds its ``torch.compile``d encoder (:class:`_CompiledEncoder`). Kept
#: on the model itself (in its ``__dict__``, so not registered as a submodule nor saved in its
#: state dict): the pair is freed together with the model. (A WeakKeyDictionary whose value, the
#: compiled module, holds its key never let a compiled model go.)
_COMPILED_ATTR = "_trufor_lab_compiled"


class _CompiledEncoder:
    """A model's compiled encoder and the ``id`` of the model it was compiled for. Bound to that
    model (its weights, its device), so never copied with it: ``copy.deepcopy`` of the model
    leaves the copy none (it compiles its own; a copy of the compiled function ran the original's
    weights, and kept the original model alive as long as the copy lived)."""

    __slots__ = ("fn", "owner")

    def __init__(self, owner: int, fn: Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]) -> None:
        self.owner, self.fn = owner, fn

    def __deepcopy__(self, memo: dict) -> None:
        return None


def _compiled(model: TruFor) -> Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]:
    """``torch.compile`` of the model's encoder (``forward_features``), cached on the model: the
    compiled part runs in the same contexts (layout, autocast, float32 parts) as the eager one.
    A copy compiles its own (:class:`_CompiledEncoder`; ``copy.copy``, which shares the entry,
    by its ``id``)."""
    held = model.__dict__.get(_COMPILED_ATTR)
    if not isinstance(held, _CompiledEncoder) or held.owner != id(model):
        held = model.__dict__[_COMPILED_ATTR] = _CompiledEncoder(id(model), torch.compile(model.forward_features))
    return held.fn


def plain_peak_bytes(
    model: nn.Module, x: torch.Tensor, impl: str | None = None, onednn: bool | None = None, winograd: bool = False
) -> int:
    """Rough peak bytes of the plain ``model(x)`` forward (TruFor, or Noiseprint++ alone);
    ``impl``: the attention (``None``: the model's); ``onednn``: the Noiseprint++ convolution
    backend on the CPU (``None``: the module's); ``winograd``: the fast mode's Noiseprint++."""
    h, w = x.shape[2:]
    size = torch.finfo(x.dtype).bits // 8
    net = model if isinstance(model, Noiseprint) else model.dncnn
    im2col = x.device.type == "cpu" and gemm_convolution(net.onednn if onednn is None else onednn, x.dtype)
    winograd = winograd and winograd_applies(x.device, x.dtype)
    if isinstance(model, Noiseprint):  # 64-channel maps (+ im2col's 9 copies, oneDNN's reorder, NNPACK's workspace)
        return int(x.shape[0] * 64 * noiseprint_maps(x.device.type, im2col, winograd) * h * w * size)
    impl = impl or _model_attention(model)
    return int(x.shape[0] * estimate_plain_peak(h, w, model.cfg, x.device.type, impl, size, im2col, winograd=winograd))


def lean_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Least peak bytes of the memory-lean forward of ``model`` (TruFor, or Noiseprint++ alone in
    tiles) on ``x``: its whole-image tensors (:func:`~trufor_lab.model.lean.estimate_lean_peak`)
    plus the smallest chunk working set it runs with. More than free memory: it cannot run."""
    h, w = x.shape[2:]
    full = isinstance(model, TruFor)
    phases = estimate_lean_peak(h, w, model.cfg if full else MIT_B2, 0, x.element_size())
    return int(x.shape[0] * phases["peak" if full else "noiseprint"] + MIN_BUDGET)


def plain_fits(
    model: nn.Module, x: torch.Tensor, impl: str | None = None, onednn: bool | None = None, winograd: bool = False
) -> bool:
    """Whether the plain forward's estimated peak fits in 80% of the free memory of ``x``'s device."""
    return plain_peak_bytes(model, x, impl, onednn, winograd) < 0.8 * free_memory_bytes(x.device)


def predict(
    model: TruFor | Noiseprint,
    x: torch.Tensor,
    mode: str | InferenceMode = "exact",
    *,
    noiseprint: torch.Tensor | None = None,
) -> TruForOutput | torch.Tensor:
    """Run ``model`` on ``x`` (RGB / 256, ``(B, 3, H, W)``) in ``mode``; no gradients.

    Returns a :class:`TruForOutput` (float32, or float64 for a double model), or the
    Noiseprint++ map ``(B, 1, H, W)`` when ``model`` is Noiseprint++ alone. Attention follows
    ``mode.chunks`` where it sets one, else the model's ``set_attention`` (SDPA unless changed).
    A model cast to another precision (``model.half()``), an input that is not RGB / 256 (NaN,
    0..255, mean/std-normalised) or a ``noiseprint`` map of another shape is refused in one line.
    """
    m = resolve_mode(mode)
    model = unwrapped(model)
    require_eval(model, "predict()")
    require_full_precision(model)
    _check_input(model, x, noiseprint)
    x = x.to(device=model_device(model), dtype=model_dtype(model))
    with torch.no_grad():
        if isinstance(model, Noiseprint):
            if hooked(model):  # the folded forward would skip the hooks: run every layer
                with ieee_float32(onednn=True):
                    return model(x)
            return _noiseprint(model, x, m)
        if not isinstance(model, TruFor):
            raise TypeError(f"predict() takes TruFor or Noiseprint, not {type(model).__name__}")
        # decided once: asking twice could pick lean, then the whole-image path that skips hooks
        use_lean = _use_lean(model, x, m)
        if hooked(model) and not use_lean:
            # the exact and fast paths fuse and skip modules: an ablation or a user's hook would
            # silently not act; the plain forward runs every module (IEEE float32)
            with ieee_float32(onednn=True):
                return model(x, noiseprint=noiseprint)
        if m.name == "exact":
            return _exact(model, x, m, noiseprint, use_lean)
        return _fast(model, x, m, noiseprint, use_lean)


def hooked(model: nn.Module) -> bool:
    """Whether anything acts on the model's modules (an intervention, a user's hook): the exact
    and fast paths fuse and skip modules, so such a model runs the plain forward, where every
    hook fires. Another thread's capture does not count: its hooks let this thread's forwards
    pass (it sent them to the plain forward, other numbers by ~1e-3, under a note naming it)."""
    return acts_here(model)


def _noiseprint(net: Noiseprint, x: torch.Tensor, m: InferenceMode) -> torch.Tensor:
    """Noiseprint++ in halo tiles as ``m`` says (one tile when it fits)."""
    c = m.chunks
    return noiseprint_tiled(
        net,
        x,
        budget_bytes=c.budget_bytes,
        tile=c.tile,
        onednn=c.onednn,
        channels_last=m.noiseprint_channels_last,
        winograd=m.noiseprint_winograd,
    )


def _whole(
    model: TruFor,
    x: torch.Tensor,
    m: InferenceMode,
    noiseprint: torch.Tensor | None,
    amp: contextlib.AbstractContextManager | None = None,
) -> TruForOutput:
    """The whole image at once, no chunking: folded Noiseprint++, channels-last encoder with
    ``m.chunks.attention`` (SDPA by default), folded decoders. ``amp`` (fast mode) covers the
    encoder only: the folded decoders are cheap and stay in the model's precision. ``m.compile``
    compiles the encoder alone, so the arithmetic is the eager one's (a compiled whole forward
    ran the unfolded decoders under the encoder's autocast: in bfloat16)."""
    if noiseprint is None:
        noiseprint = model.dncnn.forward_folded(x, m.chunks.onednn, m.noiseprint_channels_last, m.noiseprint_winograd)
    amp = amp or contextlib.nullcontext()
    xin, np_in = x, noiseprint
    layout: contextlib.AbstractContextManager = contextlib.nullcontext()
    if m.channels_last:
        xin = x.contiguous(memory_format=torch.channels_last)
        # the three identical channels, materialised channels-last (an expanded view is copied anyway)
        np_in = noiseprint.to(x.dtype).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
        layout = channels_last_weights(model.backbone)
    bands = token_bands(model.backbone) if m.token_bands else contextlib.nullcontext()
    features = _compiled(model) if m.compile else model.forward_features
    with _mode_attention(model, m.chunks), layout, bands, amp:
        feats = features(xin, np_in)
    feats = [f.to(x.dtype) for f in feats]
    logits, conf, det = model.forward_heads(feats, tuple(x.shape[2:]), folded=True)
    return TruForOutput(logits, conf, det, noiseprint)


def _lean(
    model: TruFor,
    x: torch.Tensor,
    m: InferenceMode,
    noiseprint: torch.Tensor | None,
    amp: contextlib.AbstractContextManager | None = None,
) -> TruForOutput:
    """The memory-lean forward (channels-last encoder weights when ``m.channels_last``); ``amp``
    (fast mode) covers the encoder only, as in :func:`_whole`."""
    layout = channels_last_weights(model.backbone) if m.channels_last else contextlib.nullcontext()
    chunks = dataclasses.replace(
        m.chunks, noiseprint_channels_last=m.noiseprint_channels_last, noiseprint_winograd=m.noiseprint_winograd
    )
    with layout:
        return lean_forward(model, x, noiseprint, chunks, encoder_context=amp)


def _check_input(model: nn.Module, x: torch.Tensor, noiseprint: torch.Tensor | None = None) -> None:
    """A one-line ``ValueError`` for a tensor that is not a batch of RGB / 256 images the model can
    take (an integer tensor of 0..255, NaN, a mean/std-normalised batch would each become a wrong
    answer silently), or a ``noiseprint`` map that does not fit it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"predict() takes a tensor (B, 3, H, W), not {type(x).__name__}: use tl.analyze for images")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1:
        raise ValueError(f"predict() takes a batch of RGB images (B >= 1, 3, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"predict() takes RGB / 256 as floating point; got {x.dtype} (divide 0..255 values by 256 first)"
        )
    h, w = x.shape[2:]
    if min(h, w) < 1:
        raise ValueError(f"predict() got an empty image: shape {tuple(x.shape)}")
    _check_values(x, "the input")
    if isinstance(model, TruFor):
        model.check_input(x, noiseprint)
        if noiseprint is not None:
            _check_values(noiseprint, "noiseprint=", rgb=False)
    elif noiseprint is not None:
        raise ValueError(f"noiseprint= replaces the map TruFor's encoder reads; {type(model).__name__} takes none")


def _check_values(t: torch.Tensor, what: str, rgb: bool = True) -> None:
    """NaN or Inf refused (every map and the score would be NaN); for RGB, values outside what
    RGB / 256 can be, said by the bound that failed: above 2 is 0..255 (or, up to ~2.7,
    mean/std-normalised), below -0.5 is mean/std-normalised. A little outside [0, 1) passes:
    noise or an attribution path may leave it there."""
    lo, hi = (float(v) for v in torch.aminmax(t.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(t.detach())).sum())
        raise ValueError(f"predict(): {what} has {bad} NaN or Inf value(s); every map and the score would be NaN")
    if not rgb:
        return
    normalised = "looks mean/std-normalised: pass RGB / 256 in [0, 1], TruFor normalises its RGB branch itself"
    if lo < -0.5:
        raise ValueError(f"predict() takes RGB / 256; got values down to {lo:g} ({normalised})")
    if hi > 2.0:
        why = normalised if hi < 2.7 else "0..255? divide by 256 first"
        raise ValueError(f"predict() takes RGB / 256; got values up to {hi:g} ({why})")


def _use_lean(model: TruFor, x: torch.Tensor, m: InferenceMode) -> bool:
    """The lean forward when asked for (or when the plain one would not fit), unless an active
    intervention or a user's hook needs the plain forward (:mod:`trufor_lab.model.interventions`;
    raises ``InterventionError`` when that one does not fit)."""
    fits = lambda: plain_fits(model, x, m.chunks.attention, m.chunks.onednn, m.noiseprint_winograd)  # noqa: E731
    return bool(m.lean or (m.lean is None and not fits())) and not plain_forward_required(model, fits)


def _exact(
    model: TruFor, x: torch.Tensor, m: InferenceMode, noiseprint: torch.Tensor | None, use_lean: bool
) -> TruForOutput:
    with ieee_float32(onednn=True):  # oneDNN for the encoder (IEEE float32); Noiseprint++ chooses its own
        if use_lean:
            return _lean(model, x, m, noiseprint)
        return _whole(model, x, m, noiseprint)


@contextlib.contextmanager
def _reduced_precision(model: TruFor, x: torch.Tensor, m: InferenceMode) -> Iterator[None]:
    """``m.amp_dtype`` autocast where :func:`uses_autocast` says so, with the parts named in
    ``m.keep_float32`` kept float32 (see bench/RESULTS.md for what each costs and buys)."""
    if not uses_autocast(m, x.device) or x.dtype != torch.float32:  # autocast only lowers float32
        yield
        return
    names = (
        m.keep_float32
        if m.keep_float32 is not None
        else DEFAULT_KEEP_FLOAT32.get(x.device.type, DEFAULT_KEEP_FLOAT32["cpu"])
    )
    keep = list({id(mod): mod for k in names for mod in FLOAT32_PARTS[k](model.backbone)}.values())
    with torch.autocast(x.device.type, dtype=m.amp_dtype), full_precision(keep):
        yield


def _fast(
    model: TruFor, x: torch.Tensor, m: InferenceMode, noiseprint: torch.Tensor | None, use_lean: bool
) -> TruForOutput:
    # the mode's own precision only: a caller's torch.autocast (bfloat16 on a CPU) lowered the
    # encoder without the parts kept float32 and the decoders too (map 1.7e-2 off), and a global
    # TF32 or oneDNN bf16 float32 setting reached the float32 parts; the mode's autocast is inside
    with ieee_float32(onednn=True):
        return _fast_unwrapped(model, x, m, noiseprint, use_lean)


def _fast_unwrapped(
    model: TruFor, x: torch.Tensor, m: InferenceMode, noiseprint: torch.Tensor | None, use_lean: bool
) -> TruForOutput:
    chunks = m.chunks
    if noiseprint is None:  # IEEE float32 always, outside autocast
        noiseprint = (
            _noiseprint(model.dncnn, x, m)
            if use_lean
            else model.dncnn.forward_folded(x, chunks.onednn, m.noiseprint_channels_last, m.noiseprint_winograd)
        )
    if use_lean:
        out = _lean(model, x, m, noiseprint, _reduced_precision(model, x, m))
    else:
        out = _whole(model, x, m, noiseprint, _reduced_precision(model, x, m))
    dt = x.dtype
    return TruForOutput(out.logits.to(dt), out.conf_logits.to(dt), out.det_logit.to(dt), noiseprint)


def predict_result(
    model: TruFor | Noiseprint,
    image: ImageLike,
    mode: str | InferenceMode = "exact",
    *,
    name: str | None = None,
    exif_transpose: bool = False,
) -> Result:
    """Like :func:`trufor_lab.inference.analyze.analyze`, through :func:`predict` (exact and
    memory-lean by default); a result computed under an intervention or a hook says so in its notes."""
    model = unwrapped(model)
    loaded, x = prepare_input(model, image, name)
    acting = intervention_label(model)  # an ablation's output is not the model's
    out = predict(model, x, mode)
    if acting:
        loaded = dataclasses.replace(loaded, notes=(*loaded.notes, f"computed under {acting}"))
    result = make_result(model, loaded, out, name=name)
    return result.as_shown() if exif_transpose else result
