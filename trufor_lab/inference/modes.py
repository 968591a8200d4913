"""How :func:`~trufor_lab.inference.predict.predict` runs the network: the exact and fast
presets (:class:`InferenceMode`), the encoder parts the fast mode can keep in float32, and the
label an output records of the mode it was computed in (:func:`mode_label`).

>>> InferenceMode.fast(amp_dtype=None).name
'fast'
>>> mode_label(InferenceMode.fast(amp_dtype=None))
'fast(amp_dtype=None)'
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from trufor_lab.common.device import cuda_bf16_native
from trufor_lab.model.fusion import FeatureFusionModule
from trufor_lab.model.lean import LeanConfig
from trufor_lab.model.precision import cpu_has_native_bf16
from trufor_lab.model.segformer import OverlapPatchEmbed, SpatialReductionAttention
from trufor_lab.model.winograd import winograd_applies

MODES = ("exact", "fast")


def _of_type(kind: type[nn.Module]) -> Callable[[nn.Module], list[nn.Module]]:
    return lambda backbone: [m for m in backbone.modules() if isinstance(m, kind)]


def _reductions(backbone: nn.Module) -> list[nn.Module]:
    return [m.sr for m in backbone.modules() if isinstance(m, SpatialReductionAttention) and hasattr(m, "sr")]


#: Encoder parts the fast mode can keep in float32 (``InferenceMode.keep_float32``): name ->
#: the modules of the dual encoder it names.
FLOAT32_PARTS: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    "patch_embed": _of_type(OverlapPatchEmbed),
    "attention": _of_type(SpatialReductionAttention),
    # the sr_ratio x sr_ratio, stride sr_ratio convolutions that shrink the keys and values
    "reduction": _reductions,
    "fusion": _of_type(FeatureFusionModule),  # the FFMs; the FRMs (rectification) follow amp_dtype
}

#: What the fast mode keeps float32 when ``keep_float32`` is ``None``, per device type. On CPUs
#: (oneDNN) a bfloat16 key/value reduction moved the demo model's map by up to 0.79 on a real
#: sample on an AMX Xeon (not on a Zen 4: CPUs' bfloat16 kernels round differently; float32
#: reduction: 1.1e-2, no slower); on CUDA the bfloat16 one gave 1.1e-2 already.
#: Measurements: bench/RESULTS.md.
DEFAULT_KEEP_FLOAT32 = {"cpu": ("patch_embed", "reduction", "fusion"), "cuda": ("patch_embed", "fusion")}


@dataclasses.dataclass(frozen=True)
class InferenceMode:
    """How :func:`predict` runs the network; build with :meth:`exact` or :meth:`fast`.

    ``lean``: use the memory-lean forward (``None``: only when the whole-image forward would not
    fit in free memory). ``chunks``: its chunk sizes, attention implementation and the oneDNN
    choice for Noiseprint++. ``noiseprint_channels_last``: Noiseprint++ channels-last (IEEE
    float32, another summation order; faster on CPUs); it decides for every path (the field of
    the same name in ``chunks`` is set from it). ``noiseprint_winograd``: Noiseprint++'s 3x3
    convolutions by Winograd's algorithm on float32 CPU tensors where PyTorch has NNPACK
    (IEEE float32, other rounding; :mod:`~trufor_lab.model.winograd`), set the same way.
    ``amp_dtype``: autocast dtype for the encoder
    (applied on CUDA; on the CPU only when ``amp_on_cpu`` is ``True``, or ``None`` and the CPU
    has native bfloat16; the fast preset sets ``False``: see the module docstring).
    ``keep_float32``: encoder parts that stay float32 under ``amp_dtype``, among
    :data:`FLOAT32_PARTS` (``None``: :data:`DEFAULT_KEEP_FLOAT32` of the device). ``channels_last``: channels-last encoder. ``token_bands``: the
    Mix-FFNs over bands of token rows on the CPU (:func:`~trufor_lab.model.layout.token_bands`;
    float32 rounding only: a GEMM over fewer rows may sum in another order). ``compile``:
    ``torch.compile`` the encoder of the whole-image forward (not the lean one; cached per model).
    """

    name: str = "exact"
    lean: bool | None = None
    chunks: LeanConfig = LeanConfig()
    amp_dtype: torch.dtype | None = None
    amp_on_cpu: bool | None = None
    keep_float32: tuple[str, ...] | None = ()
    noiseprint_channels_last: bool = False
    noiseprint_winograd: bool = False
    channels_last: bool = True
    token_bands: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.name not in MODES:
            raise ValueError(f"unknown inference mode {self.name!r}; choose from {MODES}")
        if self.name == "exact" and self.amp_dtype is not None:
            raise ValueError("exact mode runs in IEEE float32: amp_dtype must be None")
        if self.amp_dtype not in (None, torch.bfloat16, torch.float16):  # autocast runs no other
            raise ValueError(f"amp_dtype: torch.bfloat16, torch.float16 or None (float32), got {self.amp_dtype!r}")
        if isinstance(self.keep_float32, str):  # its letters were taken for part names
            raise ValueError(f"keep_float32: a tuple of part names, not a string (({self.keep_float32!r},))")
        if isinstance(self.keep_float32, list):  # a frozen mode is hashed: a tuple
            object.__setattr__(self, "keep_float32", tuple(self.keep_float32))
        if self.lean is not None and not isinstance(self.lean, bool):
            raise ValueError(f"lean: True, False or None (when it does not fit), got {self.lean!r}")
        if not isinstance(self.chunks, LeanConfig):
            raise ValueError(
                f"chunks: a LeanConfig(rows=..., attn_chunk=..., tile=...), got {type(self.chunks).__name__}"
            )
        fast_only = ("amp_on_cpu", "keep_float32", "noiseprint_winograd", "noiseprint_channels_last")
        fast_only = [k for k in fast_only if self.name == "exact" and getattr(self, k)]
        if fast_only:  # they would be ignored, or change the official arithmetic unsaid
            raise ValueError(
                f"{', '.join(fast_only)}: fast mode only (InferenceMode.fast(...)); exact runs as the official code"
            )
        if self.amp_dtype is None:  # nothing runs in reduced precision: nothing to keep out of it
            idle = [f"{k}={getattr(self, k)!r}" for k in ("keep_float32", "amp_on_cpu") if getattr(self, k)]
            if idle:
                raise ValueError(f"{', '.join(idle)}: applies under amp_dtype (autocast), and amp_dtype is None")
        if self.lean and self.compile:
            raise ValueError("compile: compiles the whole-image forward's encoder, which lean=True never runs")
        unknown = sorted(set(self.keep_float32 or ()) - set(FLOAT32_PARTS))
        if unknown:
            raise ValueError(f"keep_float32: unknown part(s) {unknown}; choose from {sorted(FLOAT32_PARTS)}")

    @classmethod
    def exact(cls, **overrides) -> "InferenceMode":
        """IEEE float32 (oneDNN on the CPU, no TF32), whole image when it fits, else lean."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def fast(cls, **overrides) -> "InferenceMode":
        """Approximate: float32 Noiseprint++ by Winograd (CPU, NNPACK) or channels-last; bfloat16
        encoder on CUDA GPUs that compute it natively (Ampere or later; float32 on older ones,
        which only emulate it), float32 on CPUs unless ``amp_on_cpu`` asks for bfloat16 (max
        |Δmap| ~2e-2 there)."""
        base = cls(
            name="fast",
            amp_dtype=torch.bfloat16,
            amp_on_cpu=False,
            keep_float32=None,
            noiseprint_channels_last=True,
            noiseprint_winograd=True,
            token_bands=True,
        )
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


def mode_label(mode: str | InferenceMode, device: str | torch.device | None = None) -> str:
    """The mode as an output records it: the preset's name (``"exact"``, ``"fast"``), followed by
    the settings that change the arithmetic and differ from it (``"fast(amp_dtype=None)"``), so
    that an output made otherwise is never reused for these. Where and in what pieces the work
    runs (``lean``, ``compile``, ``token_bands``, chunk sizes and budget) is left out: float32
    rounding only. With ``device``, a mode whose encoder precision depends on the device says
    which one it ran (``"fast[encoder bfloat16]"`` on an Ampere GPU, ``"fast[encoder float32]"``
    on a CPU or an older GPU), and a mode asking for Winograd Noiseprint++ says whether it ran
    (``"fast[encoder float32, noiseprint winograd]"`` on a CPU whose PyTorch has NNPACK; without
    it the convolutions are oneDNN's): the same settings are not the same arithmetic everywhere."""
    label = _settings_label(mode)
    m = resolve_mode(mode)
    if device is None:
        return label
    ran = []
    if m.amp_dtype is not None:
        dtype = m.amp_dtype if uses_autocast(m, device) else torch.float32
        ran.append(f"encoder {str(dtype).removeprefix('torch.')}")
    if m.noiseprint_winograd and winograd_applies(device, torch.float32):
        ran.append("noiseprint winograd")
    return label + (f"[{', '.join(ran)}]" if ran else "")


def _settings_label(mode: str | InferenceMode) -> str:
    m = resolve_mode(mode)
    preset = resolve_mode(m.name)
    diff = [
        f"{f.name}={getattr(m, f.name)!r}"
        for f in dataclasses.fields(m)
        if f.name not in ("lean", "compile", "chunks", "token_bands") and getattr(m, f.name) != getattr(preset, f.name)
    ]
    if m.chunks.onednn != preset.chunks.onednn:  # the convolution backend of Noiseprint++
        diff.append(f"chunks.onednn={m.chunks.onednn!r}")
    return m.name + (f"({', '.join(diff)})" if diff else "")


def uses_autocast(mode: str | InferenceMode, device: str | torch.device) -> bool:
    """Whether ``mode`` runs the encoder of a float32 model under autocast on ``device`` (a
    device or its type). CUDA: whenever ``amp_dtype`` is set, bfloat16 only where the GPU has it
    natively (Ampere or later: older ones emulate it, slower than float32); CPU: as
    ``amp_on_cpu`` says."""
    m = resolve_mode(mode)
    if m.amp_dtype is None:
        return False
    dev = torch.device(device)
    if dev.type == "cuda":
        return m.amp_dtype != torch.bfloat16 or cuda_bf16_native(dev)
    if dev.type != "cpu":
        return True
    return m.amp_on_cpu if m.amp_on_cpu is not None else cpu_has_native_bf16()
