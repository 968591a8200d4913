"""Winograd convolutions for Noiseprint++ in the fast mode (CPU, float32).

Noiseprint++ is fifteen 64->64 3x3 convolutions at full resolution: on a CPU they are most of
the fast mode's time, and oneDNN already runs them near the CPU's peak arithmetic rate. Winograd's
minimal filtering (Lavin & Gray, 2016) computes a 3x3 convolution with fewer multiplications;
NNPACK, built into PyTorch's CPU wheels, implements it (F(6x6, 3x3) tiles). Every operation is
still IEEE float32, but the tile transforms round differently from a direct convolution: measured
on a 2-core AVX-512 CPU against the float64 fixtures, Noiseprint++ of a 1 MP photo max 7e-4 /
mean 3e-5 (direct NCHW oneDNN: 9e-4 / 2.5e-5; channels-last oneDNN: 2.5e-3 / 8e-5), inside the
shared float32 tolerance (tests/test_winograd.py). It is used only where the fast mode asks for
it, on CPU float32 tensors when this PyTorch has NNPACK (:func:`winograd_usable`); elsewhere the
caller's direct convolution runs. The exact mode never uses it.

PyTorch keeps NNPACK's workspace (about four full-size maps: 0.9 GiB at 1 MP) for the life of
the thread that ran it, so :func:`winograd_forward` runs the layers in a short-lived thread of
its own: the memory is given back when the map is done. NNPACK's thread pool takes PyTorch's
thread count (``torch.set_num_threads``) at its first use in the process and keeps it.

The last layer (64 -> 1 channel) is a poor fit for any convolution kernel (one output channel):
:func:`conv_one_channel` computes it as a 1x1 product to the nine taps' planes, then sums the
shifted planes (float32, another summation order; float64 equals the convolution to 1e-12).
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "WORKSPACE_MAPS",
    "conv_one_channel",
    "nnpack_available",
    "winograd_applies",
    "winograd_conv",
    "winograd_usable",
]


def nnpack_available() -> bool:
    """Whether this PyTorch has NNPACK (asking also initialises it: a first call before that fails)."""
    try:
        return bool(torch.backends.nnpack.is_available())
    except (AttributeError, RuntimeError):
        return False


def winograd_applies(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether a fast-mode Noiseprint++ of a ``dtype`` model on ``device`` runs Winograd: float32
    on a CPU whose PyTorch has NNPACK."""
    return torch.device(device).type == "cpu" and dtype == torch.float32 and nnpack_available()


#: NNPACK's whole-map workspace (transformed input and output tiles), in full-size maps of the
#: convolution's channels: measured 3.6 at 0.5-3 MP.
WORKSPACE_MAPS = 4


def winograd_usable(x: torch.Tensor, w: torch.Tensor, pad: int) -> bool:
    """Whether :func:`winograd_conv` applies: a float32 CPU map, a stride-1 3x3 convolution with
    ``pad`` 1 to more than one channel, and NNPACK in this PyTorch."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and w.dtype == torch.float32
        and tuple(w.shape[2:]) == (3, 3)
        and pad == 1
        and w.shape[0] > 1
        and nnpack_available()
    )


def winograd_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool) -> torch.Tensor:
    """``conv2d(x, w, b, padding=1)`` (then ReLU) by NNPACK's Winograd F(6x6, 3x3), one image at
    a time (NNPACK's inference path: its workspace is a few tiles, not the whole batch)."""
    w, b = w.contiguous(), b.contiguous()
    outs = [torch._nnpack_spatial_convolution(x[i : i + 1].contiguous(), w, b, [1, 1]) for i in range(x.shape[0])]
    y = outs[0] if len(outs) == 1 else torch.cat(outs)
    return y.relu_() if relu else y


def winograd_forward(x: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor, int, bool]]) -> torch.Tensor:
    """The folded convolutions ``layers`` (``(weight, bias, padding, relu)`` each) applied to ``x``:
    Winograd where :func:`winograd_usable`, the one-channel layer as shifted planes, any other by
    ``conv2d``. Runs in a thread of its own: PyTorch keeps NNPACK's workspace (about
    :data:`WORKSPACE_MAPS` full-size maps) per thread until that thread ends, so it is given back
    with the thread instead of staying allocated in the caller's."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.no_grad():  # grad mode and autocast are per thread: a new one starts plain
                y = x
                for w, b, pad, relu in layers:
                    if winograd_usable(y, w, pad):
                        y = winograd_conv(y, w, b, relu)
                    elif w.shape[0] == 1 and not relu:
                        y = conv_one_channel(y, w, b, pad)
                    else:
                        y = F.conv2d(y, w, b, padding=pad)
                        y = y.relu_() if relu else y
                box["map"] = y
        except BaseException as e:  # raised again in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name="trufor_lab-winograd")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["map"]


def conv_one_channel(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, pad: int) -> torch.Tensor:
    """``conv2d(x, w, b, padding=pad)`` for one output channel (stride 1, a square odd kernel of
    side ``2 pad + 1``): the taps' planes in one matrix product, then summed shifted."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    if w.shape[0] != 1 or w.shape[-2] != k or k != 2 * pad + 1:
        return F.conv2d(x, w, b, padding=pad)
    taps = w[0].permute(1, 2, 0).reshape(k * k, c)  # (ky, kx) x cin
    planes = torch.matmul(taps, x.reshape(n, c, h * wd)).reshape(n, k, k, h, wd)
    out = x.new_empty((n, h, wd))
    out.copy_(b.reshape(1, 1, 1).expand(n, h, wd))  # a copy: b itself is never written
    for dy in range(k):
        y0, y1 = max(0, pad - dy), min(h, h + pad - dy)
        for dx in range(k):
            x0, x1 = max(0, pad - dx), min(wd, wd + pad - dx)
            if y1 > y0 and x1 > x0:
                out[:, y0:y1, x0:x1] += planes[:, dy, dx, y0 + dy - pad : y1 + dy - pad, x0 + dx - pad : x1 + dx - pad]
    return out[:, None]
