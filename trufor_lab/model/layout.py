"""Channels-last convolution weights for the duration of a call (memory layout only).

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
