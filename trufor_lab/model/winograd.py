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

The maps are kept as bands of rows (:data:`BAND_BYTES` each), each convolved by NNPACK as an
image of its own; the two rows on either side of a band boundary, which that computation pads
with zeros, are then recomputed from both bands by a direct convolution. So NNPACK's workspace
(about 3.6 times its input) stays a few bands, not several full-size maps, and no band is copied
between layers. PyTorch keeps that workspace for the life of the thread that ran it:
:func:`winograd_forward` runs in a short-lived thread of its own, which gives it back. NNPACK's
thread pool takes PyTorch's thread count (``torch.set_num_threads``) at its first use in the
process and keeps it.

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
    "BAND_BYTES",
    "conv_one_channel",
    "nnpack_available",
    "winograd_applies",
    "winograd_conv",
    "winograd_forward",
    "winograd_usable",
]

#: Bytes of one band of rows of a feature map (under glibc's largest dynamic mmap threshold,
#: 32 MiB, so that freed bands are reused from the heap rather than faulted in afresh).
BAND_BYTES = 24 * 2**20

Layer = tuple[torch.Tensor, torch.Tensor, int, bool]


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


def band_rows(height: int, width: int, channels: int, element_size: int = 4) -> list[tuple[int, int]]:
    """Row spans ``[r0, r1)`` of the bands of a ``height x width`` map of ``channels`` channels:
    :data:`BAND_BYTES` each, at least two rows (a boundary's direct convolution reads two on each side)."""
    rows = max(2, BAND_BYTES // max(1, channels * width * element_size))
    spans = [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < 2:  # a one-row last band joins the one before
        spans[-2:] = [(spans[-2][0], height)]
    return spans


class _Stopped(Exception):
    """The caller gave up (Ctrl-C, an error): the worker stops at the next band."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _Stopped


def _banded_layer(
    bands: list[torch.Tensor], w: torch.Tensor, b: torch.Tensor, relu: bool, stop: threading.Event | None = None
) -> list[torch.Tensor]:
    """One 3x3 convolution (padding 1) over a map kept as bands: NNPACK per band, then the rows next
    to each inner boundary from both bands (a direct convolution over the four rows around it)."""
    outs = []
    for t in bands:
        _check(stop)
        outs.append(winograd_conv(t, w, b, relu=False))
    for i in range(len(bands) - 1):
        window = torch.cat([bands[i][:, :, -2:], bands[i + 1][:, :, :2]], dim=2)
        edge = F.conv2d(window, w, b, padding=(0, 1))  # the last row of band i, the first of band i + 1
        outs[i][:, :, -1:] = edge[:, :, :1]
        outs[i + 1][:, :, :1] = edge[:, :, 1:]
    return [o.relu_() for o in outs] if relu else outs


def _layers(x: torch.Tensor, layers: Sequence[Layer], stop: threading.Event | None = None) -> torch.Tensor:
    n, _, h, wd = x.shape
    channels = max(w.shape[0] for w, _, _, _ in layers)
    bands = [x[:, :, r0:r1].contiguous() for r0, r1 in band_rows(h, wd, channels, x.element_size())]
    for k, (w, b, pad, relu) in enumerate(layers):
        _check(stop)
        if winograd_usable(bands[0], w, pad):
            bands = _banded_layer(bands, w, b, relu, stop)
        elif k == len(layers) - 1 and w.shape[0] == 1 and not relu:
            return conv_one_channel(bands, w, b, pad)
        else:  # another kind of layer (not in Noiseprint++): the whole map, directly
            y = F.conv2d(torch.cat(bands, dim=2), w, b, padding=pad)
            y = y.relu_() if relu else y
            bands = [y[:, :, r0:r1].contiguous() for r0, r1 in band_rows(h, wd, channels, y.element_size())]
    return torch.cat(bands, dim=2)


def winograd_forward(x: torch.Tensor, layers: Sequence[Layer]) -> torch.Tensor:
    """The folded convolutions ``layers`` (``(weight, bias, padding, relu)`` each) applied to ``x``:
    Winograd in bands where :func:`winograd_usable`, the one-channel last layer as shifted planes,
    any other by ``conv2d``. Runs in a thread of its own, which takes NNPACK's workspace with it;
    interrupted (Ctrl-C), the caller raises once the thread has stopped after its current band."""
    box: dict[str, Any] = {}
    stop, done = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with torch.no_grad():  # grad mode and autocast are per thread: a new one starts plain
                box["map"] = _layers(x, layers, stop)
        except _Stopped:
            pass
        except BaseException as e:  # raised again in the caller's thread
            box["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=run, name="trufor_lab-winograd")
    worker.start()
    try:
        worker.join()
    except BaseException:  # KeyboardInterrupt in the caller: the worker is not left running
        stop.set()
        done.wait()  # one band (an interrupted join no longer waits for the thread at exit)
        raise
    if "error" in box:
        raise box["error"]
    return box["map"]


def conv_one_channel(
    x: torch.Tensor | Sequence[torch.Tensor], w: torch.Tensor, b: torch.Tensor, pad: int
) -> torch.Tensor:
    """``conv2d(x, w, b, padding=pad)`` for one output channel (stride 1, a square odd kernel of
    side ``2 pad + 1``): the taps' planes in one matrix product, then summed shifted. ``x`` may be
    a map or its bands of rows (top to bottom)."""
    bands = [x] if isinstance(x, torch.Tensor) else list(x)
    n, c, _, wd = bands[0].shape
    k = w.shape[-1]
    if w.shape[0] != 1 or w.shape[-2] != k or k != 2 * pad + 1:
        return F.conv2d(torch.cat(bands, dim=2), w, b, padding=pad)
    taps = w[0].permute(1, 2, 0).reshape(k * k, c)  # (ky, kx) x cin
    planes = torch.cat([torch.matmul(taps, t.reshape(n, c, -1)).reshape(n, k, k, -1, wd) for t in bands], dim=3)
    h = planes.shape[3]
    out = planes.new_empty((n, h, wd))
    out.copy_(b.reshape(1, 1, 1).expand(n, h, wd))  # a copy: b itself is never written
    for dy in range(k):
        y0, y1 = max(0, pad - dy), min(h, h + pad - dy)
        for dx in range(k):
            x0, x1 = max(0, pad - dx), min(wd, wd + pad - dx)
            if y1 > y0 and x1 > x0:
                out[:, y0:y1, x0:x1] += planes[:, dy, dx, y0 + dy - pad : y1 + dy - pad, x0 + dx - pad : x1 + dx - pad]
    return out[:, None]
