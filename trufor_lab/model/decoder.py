"""SegFormer's all-MLP decoder, used twice by TruFor: anomaly map and confidence map.

Each fused encoder scale c1..c4 is projected to ``embed_dim`` channels by a linear layer,
upsampled to 1/4 resolution, concatenated (c4, c3, c2, c1), fused by a 1x1 conv + BN + ReLU
and classified by a 1x1 conv. The anomaly decoder has 2 output classes (pristine, forged);
the confidence decoder has 1 (a logit of how reliable the anomaly map is at each pixel).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Linear projection of a ``(B, C, H, W)`` map's channels, returned as a map."""

    def __init__(self, input_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class MLPDecoder(nn.Module):
    """All-MLP decoder head over the four fused scales; ``forward`` returns logits at 1/4."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, embed_dim: int = 512,
                 dropout: float = 0.1, norm_layer: type[nn.Module] = nn.BatchNorm2d,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        for i in range(len(self.in_channels), 0, -1):  # official names and order: c4 .. c1
            setattr(self, f"linear_c{i}", MLP(self.in_channels[i - 1], embed_dim))
        n = len(self.in_channels)
        self.linear_fuse = nn.Sequential(
            nn.Conv2d(embed_dim * n, embed_dim, 1), norm_layer(embed_dim, eps=bn_eps), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)

    def scale_projections(self) -> list[MLP]:
        """The per-scale projections ``[linear_c1, ..., linear_cN]``."""
        return [getattr(self, f"linear_c{i}") for i in range(1, len(self.in_channels) + 1)]

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[2:]
        embs = []
        for proj, f in zip(self.scale_projections(), feats):
            e = proj(f)
            if e.shape[2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
            embs.append(e)
        fused = self.linear_fuse(torch.cat(embs[::-1], dim=1))  # order c4, c3, c2, c1
        return self.linear_pred(self.dropout(fused))
