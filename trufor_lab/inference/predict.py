"""Inference modes: ``predict(model, x, mode='exact' | 'fast')``.

``exact`` (the default) is the network in IEEE float32 (float64 for a double model): no TF32
anywhere (cuBLAS, cuDNN, oneDNN; flags set for the call only and restored), no autocast,
memory-efficient attention (SDPA over query chunks sized from free memory) and the memory-lean
forward of :mod:`trufor_lab.model.lean`, which runs a 24-megapixel image within 24 GB (GPU, or
RAM on the CPU) without resizing or tiling that would change the answer. It equals
``model(x)`` within float32 rounding (tests/test_inference.py).

``fast`` is opt-in and *not* exact: Noiseprint++ still runs in IEEE float32 (on the CPU with
oneDNN convolutions, which sum in a different order), everything after it in bfloat16 autocast
on CUDA, channels-last inputs, optionally ``torch.compile`` (worth it for repeated shapes).
Its deviation from ``exact`` is measured by ``python -m bench`` (:func:`deviation`); the lean
forward is used when the plain one would not fit in memory.

The lean forward calls the model's layers piece by piece: forward hooks on whole blocks,
stages or fusion modules (``trufor_lab.capture``, most ablations) do not fire there. While such
an intervention is active (:mod:`trufor_lab.model.interventions`) the plain forward is used
instead where it fits, and the image is refused with ``InterventionError`` where it does not.

>>> out = predict(model, x)                     # TruForOutput, exact float32
>>> out = predict(model, x, mode="fast")        # faster, approximate (see bench/RESULTS.md)
>>> r = predict_result(model, "photo.jpg")      # a trufor_lab.Result, like tl.analyze
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

import torch
from torch import nn

from trufor_lab.common.device import model_device, model_dtype
from trufor_lab.inference.preprocess import ImageLike
from trufor_lab.inference.result import Result, make_result, prepare_input
from trufor_lab.model.interventions import plain_forward_required
from trufor_lab.model.lean import (
    LeanConfig,
    estimate_plain_peak,
    free_memory_bytes,
    ieee_float32,
    lean_forward,
    noiseprint_tiled,
)
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.segformer import SpatialReductionAttention
from trufor_lab.model.trufor import TruFor, TruForOutput

MODES = ("exact", "fast")

__all__ = ["MODES", "InferenceMode", "attention_override", "deviation", "plain_fits", "plain_peak_bytes",
           "predict", "predict_result", "resolve_mode"]


@dataclasses.dataclass(frozen=True)
class InferenceMode:
    """How :func:`predict` runs the network; build with :meth:`exact` or :meth:`fast`.

    ``lean``: use the memory-lean forward (``None``: only when the plain forward would not fit
    in free memory). ``chunks``: its chunk sizes and attention implementation. ``amp_dtype``:
    autocast dtype for everything but Noiseprint++ (applied on CUDA; on the CPU only with
    ``amp_on_cpu``). ``channels_last``: channels-last input. ``compile``: ``torch.compile`` the
    model (plain forward only; cached per model).
    """

    name: str = "exact"
    lean: bool | None = True
    chunks: LeanConfig = LeanConfig()
    amp_dtype: torch.dtype | None = None
    amp_on_cpu: bool = False
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.name not in MODES:
            raise ValueError(f"unknown inference mode {self.name!r}; choose from {MODES}")
        if self.name == "exact" and self.amp_dtype is not None:
            raise ValueError("exact mode runs in IEEE float32: amp_dtype must be None")

    @classmethod
    def exact(cls, **overrides) -> "InferenceMode":
        """IEEE float32, lean forward, exact attention."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def fast(cls, **overrides) -> "InferenceMode":
        """Approximate: bfloat16 autocast (CUDA), channels-last, oneDNN Noiseprint++ on the CPU."""
        base = cls(name="fast", lean=None, chunks=LeanConfig(onednn=True), amp_dtype=torch.bfloat16,
                   channels_last=True)
        return dataclasses.replace(base, **overrides)


def resolve_mode(mode: str | InferenceMode) -> InferenceMode:
    """``'exact'``/``'fast'`` or an :class:`InferenceMode` -> :class:`InferenceMode`."""
    if isinstance(mode, InferenceMode):
        return mode
    if mode == "exact":
        return InferenceMode.exact()
    if mode == "fast":
        return InferenceMode.fast()
    raise ValueError(f"unknown inference mode {mode!r}; choose from {MODES}")


@contextlib.contextmanager
def attention_override(model: nn.Module, impl: str, chunk: int | None = None) -> Iterator[None]:
    """Set every SRA's ``impl``/``chunk`` for the duration of the block, then restore them."""
    mods = [m for m in model.modules() if isinstance(m, SpatialReductionAttention)]
    saved = [(m.impl, m.chunk) for m in mods]
    try:
        for m in mods:
            m.impl, m.chunk = impl, chunk
        yield
    finally:
        for m, (i, c) in zip(mods, saved):
            m.impl, m.chunk = i, c


#: Attribute of a model that holds its ``torch.compile``d module. Kept on the model itself (in
#: its ``__dict__``, so not registered as a submodule nor saved in its state dict): the pair is
#: freed together with the model. (A WeakKeyDictionary whose value, the compiled module, holds
#: its key never let a compiled model go.)
_COMPILED_ATTR = "_trufor_lab_compiled"


def _compiled(model: nn.Module) -> nn.Module:
    compiled = model.__dict__.get(_COMPILED_ATTR)
    if compiled is None:
        compiled = model.__dict__[_COMPILED_ATTR] = torch.compile(model)
    return compiled


def plain_peak_bytes(model: nn.Module, x: torch.Tensor, impl: str = "sdpa") -> int:
    """Rough peak bytes of the plain ``model(x)`` forward (TruFor, or Noiseprint++ alone)."""
    h, w = x.shape[2:]
    size = torch.finfo(x.dtype).bits // 8
    if isinstance(model, Noiseprint):  # 64-channel maps (+ a 9x im2col copy on the CPU)
        return int(x.shape[0] * 64 * (2 + (9 if x.device.type == "cpu" else 1)) * h * w * size)
    return int(x.shape[0] * estimate_plain_peak(h, w, model.cfg, x.device.type, impl, size))


def plain_fits(model: nn.Module, x: torch.Tensor, impl: str = "sdpa") -> bool:
    """Whether the plain forward's estimated peak fits in 80% of the free memory of ``x``'s device."""
    return plain_peak_bytes(model, x, impl) < 0.8 * free_memory_bytes(x.device)


def predict(model: TruFor | Noiseprint, x: torch.Tensor, mode: str | InferenceMode = "exact", *,
            noiseprint: torch.Tensor | None = None) -> TruForOutput | torch.Tensor:
    """Run ``model`` on ``x`` (RGB / 256, ``(B, 3, H, W)``) in ``mode``; no gradients.

    Returns a :class:`TruForOutput` (float32, or float64 for a double model), or the
    Noiseprint++ map ``(B, 1, H, W)`` when ``model`` is Noiseprint++ alone.
    """
    m = resolve_mode(mode)
    if model.training:
        raise ValueError("predict() runs inference: call model.eval() first")
    x = x.to(device=model_device(model), dtype=model_dtype(model))
    chunks = m.chunks
    with torch.no_grad():
        if isinstance(model, Noiseprint):
            return noiseprint_tiled(model, x, budget_bytes=chunks.budget_bytes, tile=chunks.tile,
                                    onednn=chunks.onednn)
        if not isinstance(model, TruFor):
            raise TypeError(f"predict() takes TruFor or Noiseprint, not {type(model).__name__}")
        if m.name == "exact":
            return _exact(model, x, m, noiseprint)
        return _fast(model, x, m, noiseprint)


def _exact(model: TruFor, x: torch.Tensor, m: InferenceMode, noiseprint: torch.Tensor | None) -> TruForOutput:
    # oneDNN stays on for the encoder (IEEE float32 on the CPU); Noiseprint++ chooses its own.
    with ieee_float32(onednn=True):
        fits = lambda: plain_fits(model, x, m.chunks.attention)  # noqa: E731
        if (m.lean or (m.lean is None and not fits())) and not plain_forward_required(model, fits):
            return lean_forward(model, x, noiseprint, m.chunks)
        if noiseprint is None:
            noiseprint = noiseprint_tiled(model.dncnn, x, budget_bytes=m.chunks.budget_bytes,
                                          tile=m.chunks.tile, onednn=m.chunks.onednn)
        with attention_override(model, m.chunks.attention, m.chunks.attn_chunk):
            return model(x, noiseprint=noiseprint)


def _fast(model: TruFor, x: torch.Tensor, m: InferenceMode, noiseprint: torch.Tensor | None) -> TruForOutput:
    chunks = m.chunks
    if noiseprint is None:
        onednn = chunks.onednn if chunks.onednn is not None else model.dncnn.onednn
        noiseprint = noiseprint_tiled(model.dncnn, x, budget_bytes=chunks.budget_bytes, tile=chunks.tile,
                                      onednn=onednn)
    fits = lambda: plain_fits(model, x, chunks.attention)  # noqa: E731
    use_lean = (m.lean if m.lean is not None else not fits()) and not plain_forward_required(model, fits)
    amp: contextlib.AbstractContextManager = contextlib.nullcontext()
    if m.amp_dtype is not None and (x.device.type == "cuda" or m.amp_on_cpu):
        amp = torch.autocast(x.device.type, dtype=m.amp_dtype)
    xin = x.contiguous(memory_format=torch.channels_last) if m.channels_last else x
    with amp:
        if use_lean:
            out = lean_forward(model, xin, noiseprint, chunks)
        else:
            fwd = _compiled(model) if m.compile else model
            with attention_override(model, chunks.attention, chunks.attn_chunk):
                out = fwd(xin, noiseprint=noiseprint)
    dt = x.dtype
    return TruForOutput(out.logits.to(dt), out.conf_logits.to(dt), out.det_logit.to(dt), noiseprint)


def deviation(out: TruForOutput, ref: TruForOutput) -> dict[str, float]:
    """Largest differences between two outputs: map, conf, score, Noiseprint++ (max |Δ|)."""
    def d(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() - b.double()).abs().max())
    return {"map": d(out.map, ref.map), "conf": d(out.conf, ref.conf), "score": d(out.score, ref.score),
            "noiseprint": d(out.noiseprint, ref.noiseprint)}


def predict_result(model: TruFor | Noiseprint, image: ImageLike, mode: str | InferenceMode = "exact", *,
                   name: str | None = None, exif_transpose: bool = False) -> Result:
    """Like :func:`trufor_lab.inference.analyze`, through :func:`predict` (exact and memory-lean by default)."""
    loaded, x = prepare_input(model, image, exif_transpose=exif_transpose)
    return make_result(model, loaded, predict(model, x, mode), name=name)
