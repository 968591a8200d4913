"""How the encoder's work is laid out in memory for the duration of a call.

:func:`channels_last_weights`: channels-last convolution weights (values unchanged).
:func:`token_bands`: the Mix-FFNs over bands of token rows (float32 rounding only).

PyTorch's CPU convolution (oneDNN) picks its memory format from the input *and* the weight.
The encoder's feature maps are channels-last views of ``(B, N, C)`` tokens, but a contiguous
NCHW weight, or a weight whose layout is ambiguous (depth-wise ``(C, 1, k, k)``, 1x1 kernels),
makes it copy the input to NCHW and return NCHW, which the next token operation copies back
(measured on a 2-core CPU: Mix-FFN depth-wise 3x3 at 1/4 resolution 170 ms -> 28 ms, SRA
reduction 16 -> 1 ms). Giving the weights channels-last strides removes both copies; the
convolution itself is the same.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .segformer import MixFFN

#: Hidden bytes per band of the Mix-FFNs under :func:`token_bands` (stage 1 at 1 MP: ~28 of 217
#: token rows). Each full-size hidden map (64 MiB at 1 MP) is otherwise written to fresh pages.
TOKEN_BAND_BYTES = 8 * 2**20


def _channels_last_copy(w: torch.Tensor) -> torch.Tensor:
    """``w`` with explicit channels-last strides (``empty_like`` resolves ambiguous shapes)."""
    return torch.empty_like(w, memory_format=torch.channels_last).copy_(w)


@contextlib.contextmanager
def channels_last_weights(module: nn.Module) -> Iterator[None]:
    """Every 2-D convolution weight under ``module`` channels-last inside the block, restored
    (same tensors, same layout) on exit. Inference only: the swap is not seen by autograd."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.weight.dim() == 4]
    saved = [m.weight.data for m in convs]
    try:
        with torch.no_grad():
            for m in convs:
                m.weight.data = _channels_last_copy(m.weight.data)
        yield
    finally:
        for m, w in zip(convs, saved):
            m.weight.data = w


@contextlib.contextmanager
def token_bands(module: nn.Module, band_bytes: int | None = TOKEN_BAND_BYTES) -> Iterator[None]:
    """Every Mix-FFN under ``module`` runs over bands of token rows (CPU only) inside the block,
    restored on exit: the same network without the full-size hidden maps (stage 1 and 2 Mix-FFNs
    ~1.5x faster on a 2-core CPU at 1 MP), up to float32 rounding (a GEMM over fewer rows may sum
    in another order; tests/test_cpu_work_layout.py). Used by the fast mode only."""
    mods = [m for m in module.modules() if isinstance(m, MixFFN)]
    saved = [m.band_bytes for m in mods]
    try:
        for m in mods:
            m.band_bytes = band_bytes
        yield
    finally:
        for m, b in zip(mods, saved):
            m.band_bytes = b
