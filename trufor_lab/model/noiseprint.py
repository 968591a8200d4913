"""Noiseprint++: the learned camera/processing fingerprint extractor of TruFor.

A 17-layer DnCNN (Zhang et al., 2017) without the residual connection:
conv3x3(3->64, bias) + ReLU, 15 x [conv3x3(64->64) + BatchNorm + ReLU], conv3x3(64->1, bias).
It takes the RGB image scaled by 1/256 and returns a one-channel map of the same size.

Noiseprint++ is sensitive to arithmetic precision: TF32, float16 and bfloat16 visibly change
the map. Its forward therefore always runs in IEEE float32 (or float64 when the module is
double), with autocast and TF32 switched off for the duration of the call only.

Weights: GRIP-UNINA research licence (``weights/LICENSE-GRIP-UNINA.txt``).
"""
from __future__ import annotations

import torch
from torch import nn

from .precision import ieee_float32


def exact_float32(onednn: bool = False):
    """Run the enclosed convolutions in IEEE float32: no autocast, no TF32 (restored on exit).

    On the CPU, oneDNN's convolution accumulates float32 sums less accurately than the BLAS
    GEMM path (measured on the parity input: Noiseprint++ mean error 4.5e-5 vs 2.0e-5 against
    float64, enough to push the fused stage-1 features past the float32 tolerance), so it is
    off unless ``onednn=True`` (about 2.5x faster on CPU).
    """
    return ieee_float32(onednn=onednn)


class Noiseprint(nn.Sequential):
    """DnCNN extracting the Noiseprint++ map from an RGB/256 tensor ``(B, 3, H, W)``.

    Submodules are numbered like the official ``nn.Sequential`` so that checkpoint keys
    (``0.weight``, ``2.weight``, ``3.running_mean``, ...) load unchanged.
    """

    def __init__(self, num_levels: int = 17, in_channels: int = 3, features: int = 64,
                 out_channels: int = 1, bn_momentum: float = 0.1) -> None:
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
        #: Use oneDNN convolutions on the CPU: faster, slightly less accurate (see exact_float32).
        self.onednn = False

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # noqa: D401
        """Noiseprint++ map ``(B, 1, H, W)`` of ``rgb`` (RGB / 256, ``(B, 3, H, W)``)."""
        dtype = self[0].weight.dtype
        with exact_float32(self.onednn):
            x = rgb.to(dtype)
            for layer in self:
                x = layer(x)
        return x
