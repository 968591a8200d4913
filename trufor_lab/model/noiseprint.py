"""Noiseprint++: the learned camera/processing fingerprint extractor of TruFor.

A 17-layer DnCNN (Zhang et al., 2017) without the residual connection:
conv3x3(3->64, bias) + ReLU, 15 x [conv3x3(64->64) + BatchNorm + ReLU], conv3x3(64->1, bias).
It takes the RGB image scaled by 1/256 and returns a one-channel map of the same size.

Noiseprint++ is sensitive to arithmetic precision: TF32, float16 and bfloat16 visibly change
the map. Its forward therefore always runs in IEEE float32 (or float64 when the module is
double), with autocast and TF32 switched off for the duration of the call only.

Convolution backend on the CPU (``Noiseprint.onednn``, default on, as the official code runs):
oneDNN and the GEMM (im2col) path are both IEEE float32 and sum in different orders. Measured on
a 2-core AVX-512 CPU against the float64 fixtures: oneDNN gives what the official float32 code
gives (fused stage 1 max 7.1e-4 / mean 6.6e-5, Noiseprint++ mean 1.7e-5); the GEMM path is no
closer (fused stage 1 max 1.7e-3 / mean 1.9e-4), about 2.5x slower and needs a 9x im2col copy.
Other CPUs round differently; both stay within the shared float32 tolerances.

The fast mode may instead compute the 3x3 convolutions by Winograd's algorithm (NNPACK, CPU
float32; :mod:`.winograd`): fewer multiplications, other rounding, as close to float64 as oneDNN.

:meth:`Noiseprint.forward_folded` (eval mode, used by ``predict``) folds every BatchNorm into
the preceding convolution and applies ReLU in place: the same network
up to float32 rounding (tests/test_parity.py), fewer passes over the 64-channel maps. With
oneDNN on a float32 CPU tensor the ReLU runs inside the convolution (oneDNN's post-op, via
:func:`conv_relu`): bit-identical to convolution then ReLU, one pass fewer over each map.

Weights: GRIP-UNINA research licence (``weights/LICENSE-GRIP-UNINA.txt``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .identity import LoadedWeights
from .precision import ieee_float32
from .strips import row_strips
from .winograd import winograd_applies, winograd_forward


def exact_float32(onednn: bool = True):
    """Run the enclosed convolutions in IEEE float32: no autocast, no TF32 (restored on exit).

    ``onednn=False`` uses the GEMM (im2col) convolution on the CPU instead of oneDNN (see the
    module docstring for the measured differences).
    """
    return ieee_float32(onednn=onednn)


def _fused_conv_relu_available() -> bool:
    return hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available()


def conv_relu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int | tuple[int, int]) -> torch.Tensor:
    """``relu(conv2d(x, w, b, padding))``; on a float32 CPU tensor with oneDNN enabled, the ReLU
    is oneDNN's post-op of the same convolution (identical values, no second pass over the map;
    tests/test_inference.py); elsewhere the convolution then an in-place ReLU."""
    p = [padding, padding] if isinstance(padding, int) else list(padding)
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.enabled
        and _fused_conv_relu_available()
    ):
        return torch.ops.mkldnn._convolution_pointwise(x, w, b, p, [1, 1], [1, 1], 1, "relu", [], "")
    return F.conv2d(x, w, b, padding=tuple(p)).relu_()


#: Output bytes of one row strip of a folded Noiseprint++ convolution on the CPU. Every layer
#: writes a fresh full-size map otherwise (256 MiB at 1 MP, each page faulted in by the kernel:
#: ~90 ms a layer on a 2-core CPU; oneDNN's NCHW path adds two reorder copies of that size).
#: Strips this small come from the allocator's reused heap; see :func:`conv_rows`.
STRIP_BYTES = 8 * 2**20
#: Narrower maps are convolved whole (oneDNN may choose another kernel for a narrow strip).
STRIP_MIN_WIDTH = 256


def _strips_exact(w: torch.Tensor, pad: int, width: int) -> bool:
    """Whether :func:`conv_rows` gives the whole-map values bit for bit here (oneDNN picks the
    same kernel for a strip as for the whole map): measured on AVX-512 CPUs for maps at least
    :data:`STRIP_MIN_WIDTH` wide with more than one output channel (tests/test_cpu_work_layout.py)."""
    return w.shape[0] > 1 and w.shape[-1] == w.shape[-2] == 2 * pad + 1 and width >= STRIP_MIN_WIDTH


def conv_rows(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, pad: int, relu: bool, out: torch.Tensor, rows: int
) -> torch.Tensor:
    """``conv2d(x, w, b, padding=pad)`` (then ReLU) written into ``out`` in strips of ``rows``
    output rows: each strip reads its rows plus ``pad`` halo rows of ``x``, so every output pixel
    sums the same inputs in the same order as the whole-map convolution (bit-identical on the
    CPU, tests/test_cpu_work_layout.py). ``w`` is ``(cout, cin, 2 pad + 1, 2 pad + 1)``, stride 1."""
    for s in row_strips(x.shape[2], rows, pad):
        xs, p = x[:, :, s.a : s.z], (s.pad_rows, pad)
        y = conv_relu(xs, w, b, p) if relu else F.conv2d(xs, w, b, padding=p)
        out[:, :, s.r0 : s.r1].copy_(y[:, :, s.offset : s.offset + s.r1 - s.r0])
    return out


def streamed_exact(net: "Noiseprint", rgb: torch.Tensor, onednn: bool) -> bool:
    """Whether :func:`forward_streamed` gives ``net.forward_folded(rgb)`` bit for bit: oneDNN's
    float32 convolutions on the CPU, maps at least :data:`STRIP_MIN_WIDTH` wide (every layer then
    in row strips, the one-channel last one included: measured, tests/test_cpu_work_layout.py).
    Not float64 (nor the GEMM path): its sums depend on how many rows one call convolves."""
    mk = torch.backends.mkldnn
    cpu32 = rgb.device.type == "cpu" and net[0].weight.dtype == torch.float32
    return cpu32 and onednn and mk.is_available() and mk.enabled and rgb.shape[3] >= STRIP_MIN_WIDTH


def forward_streamed(net: "Noiseprint", rgb: torch.Tensor, rows: int, onednn: bool | None = None) -> torch.Tensor:
    """``net.forward_folded(rgb)`` (NCHW) computed in bands of ``rows`` image rows, each band
    through all the layers before the next one is read: a layer keeps the last two rows of its
    input for the next band, so no row is computed twice (halo tiles recompute a 17-pixel rim
    through all 17 layers) and only a band of each map, plus those rows, exists at a time. Each
    layer's output rows are those of its whole-map convolution (row strips, :mod:`.strips`)."""
    layers = net.folded()
    dtype, onednn = net[0].weight.dtype, net.onednn if onednn is None else onednn
    b, _, h, w = rgb.shape
    out = torch.empty((b, layers[-1][0].shape[0], h, w), dtype=dtype, device=rgb.device)
    done = [0] * (len(layers) + 1)  # rows of each layer's input computed so far (0: the image's)
    carry: list[torch.Tensor | None] = [None] * len(layers)  # rows [done[k + 1] - pad, done[k]) of them
    with exact_float32(onednn), torch.no_grad():
        for end in range(rows, h + rows, rows):
            new = rgb[:, :, done[0] : min(h, end)].to(dtype).contiguous()
            done[0] = min(h, end)
            for k, (wk, bk, pad, relu) in enumerate(layers):
                x = new if carry[k] is None else torch.cat((carry[k], new), 2)
                r0, r1 = done[k + 1], (done[k] - pad if done[k] < h else h)
                if r1 <= r0:  # not enough rows yet for this layer: keep them all
                    carry[k] = x
                    break
                ph = max(0, pad - r0, r1 + pad - h)  # x holds rows [max(0, r0 - pad), done[k])
                y = conv_relu(x, wk, bk, (ph, pad)) if relu else F.conv2d(x, wk, bk, padding=(ph, pad))
                off = r0 - max(0, r0 - pad) - pad + ph
                new, done[k + 1] = y[:, :, off : off + r1 - r0], r1
                carry[k] = x[:, :, x.shape[2] - (done[k] - max(0, r1 - pad)) :].clone() if r1 < h else None
                del x, y
            else:
                out[:, :, r0:r1] = new
    return out


class HalfPrecisionWarning(UserWarning):
    """Noiseprint++ ran in float16/bfloat16 (a cast model's raw forward): not the official numerics."""


class Noiseprint(LoadedWeights, nn.Sequential):
    """DnCNN extracting the Noiseprint++ map from an RGB/256 tensor ``(B, 3, H, W)``.

    Submodules are numbered like the official ``nn.Sequential`` so that checkpoint keys
    (``0.weight``, ``2.weight``, ``3.running_mean``, ...) load unchanged.
    """

    def __init__(
        self,
        num_levels: int = 17,
        in_channels: int = 3,
        features: int = 64,
        out_channels: int = 1,
        bn_momentum: float = 0.1,
    ) -> None:
        layers: list[nn.Module] = []
        for i in range(num_levels):
            first, last = i == 0, i == num_levels - 1
            cin = in_channels if first else features
            cout = out_channels if last else features
            with_bn = not (first or last)
            layers.append(nn.Conv2d(cin, cout, 3, padding=1, bias=not with_bn))
            if with_bn:
                layers.append(nn.BatchNorm2d(cout, momentum=bn_momentum))
            if not last:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.num_levels = num_levels
        #: oneDNN convolutions on the CPU (as the official code); ``False``: the GEMM path.
        self.onednn = True

    def folded(self) -> list[tuple[torch.Tensor, torch.Tensor, int, bool]]:
        """``(weight, bias, padding, relu)`` per convolution, every eval-mode BatchNorm folded into the
        convolution before it: ``w * g / sqrt(var + eps)``, ``beta + (b - mean) * g / sqrt(var + eps)``."""
        out: list[tuple[torch.Tensor, torch.Tensor, int, bool]] = []
        layers = list(self)
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Conv2d):
                continue
            w = layer.weight
            b = layer.bias if layer.bias is not None else w.new_zeros(w.shape[0])
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, nn.BatchNorm2d):
                s = nxt.weight * torch.rsqrt(nxt.running_var + nxt.eps)
                w, b = w * s[:, None, None, None], nxt.bias + (b - nxt.running_mean) * s
                nxt = layers[i + 2] if i + 2 < len(layers) else None
            out.append((w.detach(), b.detach(), layer.padding[0], isinstance(nxt, nn.ReLU)))
        return out

    def forward_folded(
        self, rgb: torch.Tensor, onednn: bool | None = None, channels_last: bool = False, winograd: bool = False
    ) -> torch.Tensor:
        """:meth:`forward` with the BatchNorms folded (eval mode only) and in-place ReLU.

        Same network up to float32 rounding; skips 15 BatchNorm passes. Hooks on the submodules
        do not fire here. ``onednn``: override :attr:`onednn` for this call.

        ``channels_last`` (used by the fast mode): still IEEE float32, but oneDNN sums in another
        order. Measured on a 2-core AVX-512 CPU: ~1.65x faster at 1 MP, and ~3x further from the
        float64 reference (mean 5e-5 instead of 1.7e-5, max 7e-4 instead of 1.8e-4 on
        ``pristine1.jpg``), still inside the shared float32 tolerance. The default (NCHW) sums
        like the official code, and every output pixel in the same order whatever the image
        width, so halo tiles are bit-identical to the whole map.

        ``winograd`` (the fast mode on CPUs): the 3x3 convolutions by Winograd's algorithm and the
        one-channel last layer as shifted planes, where :func:`~.winograd.winograd_usable` (float32
        CPU, NNPACK in PyTorch); elsewhere ``channels_last`` decides. See :mod:`.winograd`.
        """
        if self.training:
            raise ValueError("forward_folded uses the running BatchNorm statistics: call eval() first")
        dtype = self[0].weight.dtype
        onednn = self.onednn if onednn is None else onednn
        if winograd and winograd_applies(rgb.device, dtype):
            with exact_float32(onednn), torch.no_grad():
                return winograd_forward(rgb.to(dtype).contiguous(), self.folded()).contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        with exact_float32(onednn), torch.no_grad():
            x = rgb.to(dtype).contiguous(memory_format=fmt)
            spare: torch.Tensor | None = None  # the map two layers back (never the input), overwritten
            for k, (w, b, pad, relu) in enumerate(self.folded()):
                w = w.contiguous(memory_format=fmt)
                n, _, h, wd = x.shape
                strip = n * w.shape[0] * wd * x.element_size()
                if x.device.type != "cpu" or h * strip <= STRIP_BYTES or not _strips_exact(w, pad, wd):
                    nxt = conv_relu(x, w, b, pad) if relu else F.conv2d(x, w, b, padding=pad)
                else:
                    if spare is None or spare.shape[1] != w.shape[0]:
                        spare = torch.empty((n, w.shape[0], h, wd), dtype=x.dtype, device=x.device, memory_format=fmt)
                    nxt = conv_rows(x, w, b, pad, relu, spare, max(1, STRIP_BYTES // strip))
                spare, x = (x if k > 0 else None), nxt
        return x.contiguous()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # noqa: D401
        """Noiseprint++ map ``(B, 1, H, W)`` of ``rgb`` (RGB / 256, ``(B, 3, H, W)``).

        In the weights' precision: a module cast to float16/bfloat16 (``model.half()``) runs, for
        experiments, with a :class:`HalfPrecisionWarning` (its map visibly differs from the
        official float32 one; ``predict``/``analyze`` refuse such a model)."""
        dtype = self[0].weight.dtype
        if dtype in (torch.float16, torch.bfloat16):
            warnings.warn(
                f"Noiseprint++ weights are {str(dtype).removeprefix('torch.')}: its map visibly differs from the "
                "official float32 one; model.float() (or model.dncnn.float()) for the official numerics",
                HalfPrecisionWarning,
                stacklevel=2,
            )
        with exact_float32(self.onednn):
            x = rgb.to(dtype)
            for layer in self:
                x = layer(x)
        return x
