"""CMX cross-modal fusion (Zhang et al., "CMX", T-ITS 2023), as used by TruFor.

At the end of every encoder stage the RGB features ``x1`` and the Noiseprint++ features ``x2``
pass through

- the Feature Rectification Module (FRM): each stream is corrected with the other one,
  weighted per channel and per pixel; the rectified streams feed the next stage;
- the Feature Fusion Module (FFM): a cross-attention path exchanges global context between the
  streams, then a channel embedding merges them into the single fused map the decoders read.

``lambda_c``/``lambda_s`` (FRM) and ``cross_enabled`` (FFM) are the knobs that ablations turn.
"""

from __future__ import annotations

import torch
from torch import nn

from .segformer import tokens_to_map


class ChannelWeights(nn.Module):
    """Per-channel weights for both streams from global average and max pooling."""

    def __init__(self, dim: int, reduction: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(dim * 4, dim * 4 // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(dim * 4 // reduction, dim * 2),
            nn.Sigmoid(),
        )

    @staticmethod
    def pool(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``(B, 4C)``: average then max pooling of the concatenated streams (no concatenation copy)."""
        return torch.cat((x1.mean(dim=(2, 3)), x2.mean(dim=(2, 3)), x1.amax(dim=(2, 3)), x2.amax(dim=(2, 3))), 1)

    def weights(self, pooled: torch.Tensor) -> torch.Tensor:
        """Channel weights ``(2, B, C, 1, 1)`` from :meth:`pool`'s statistics."""
        return self.mlp(pooled).reshape(pooled.shape[0], 2, self.dim, 1, 1).transpose(0, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.weights(self.pool(x1, x2))


class SpatialWeights(nn.Module):
    """Per-pixel weights for both streams from a 1x1-convolution MLP."""

    def __init__(self, dim: int, reduction: int = 1) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(dim * 2, dim // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x1.shape
        return self.mlp(torch.cat((x1, x2), dim=1)).reshape(b, 2, 1, h, w).transpose(0, 1)


class FeatureRectifyModule(nn.Module):
    """FRM: ``x1 += lc * wc[1] * x2 + ls * ws[1] * x2`` and symmetrically for ``x2``."""

    def __init__(self, dim: int, reduction: int = 1, lambda_c: float = 0.5, lambda_s: float = 0.5) -> None:
        super().__init__()
        self.lambda_c = lambda_c
        self.lambda_s = lambda_s
        self.channel_weights = ChannelWeights(dim, reduction)
        self.spatial_weights = SpatialWeights(dim, reduction)

    @property
    def enabled(self) -> bool:
        return not (self.lambda_c == 0 and self.lambda_s == 0)

    def rectify(
        self, x1: torch.Tensor, x2: torch.Tensor, cw: torch.Tensor, sw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The FRM equation, given channel weights ``cw`` and spatial weights ``sw`` (any row span)."""
        out1 = x1 + self.lambda_c * cw[1] * x2 + self.lambda_s * sw[1] * x2
        out2 = x2 + self.lambda_c * cw[0] * x1 + self.lambda_s * sw[0] * x1
        return out1, out2

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return x1, x2
        return self.rectify(x1, x2, self.channel_weights(x1, x2), self.spatial_weights(x1, x2))


class CrossAttention(nn.Module):
    """Efficient cross attention: each stream queries the other's d x d context, softmax over keys."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.kv1 = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim * 2, bias=qkv_bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def context_sum(self, kv: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """``k^T v`` summed over the tokens of ``x`` ``(B, N, C)``: ``(B, heads, d, d)``; additive
        over token chunks (the lean forward accumulates it chunk by chunk)."""
        b, n, c = x.shape
        k, v = kv(x).reshape(b, n, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return k.transpose(-2, -1) @ v

    def normalize_context(self, ctx_sum: torch.Tensor) -> torch.Tensor:
        """Scaled softmax over the keys of a :meth:`context_sum`."""
        return (ctx_sum * self.scale).softmax(dim=-2)

    def attend(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Queries ``x`` ``(B, N, C)`` (any token span) against the other stream's context."""
        b, n, c = x.shape
        return (self._heads(x) @ ctx).transpose(1, 2).reshape(b, n, c)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx1 = self.normalize_context(self.context_sum(self.kv1, x1))
        ctx2 = self.normalize_context(self.context_sum(self.kv2, x2))
        return self.attend(x1, ctx2), self.attend(x2, ctx1)


class CrossPath(nn.Module):
    """Split each stream into a residual half and a half exchanged by cross attention."""

    def __init__(self, dim: int, num_heads: int, reduction: int = 1) -> None:
        super().__init__()
        inner = dim // reduction
        self.channel_proj1 = nn.Linear(dim, inner * 2)
        self.channel_proj2 = nn.Linear(dim, inner * 2)
        self.act1 = nn.ReLU(inplace=True)
        self.act2 = nn.ReLU(inplace=True)
        self.cross_attn = CrossAttention(inner, num_heads=num_heads)
        self.end_proj1 = nn.Linear(inner * 2, dim)
        self.end_proj2 = nn.Linear(inner * 2, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def split(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Channel projections: (residual half y1, exchanged half u1, y2, u2)."""
        y1, u1 = self.act1(self.channel_proj1(x1)).chunk(2, dim=-1)
        y2, u2 = self.act2(self.channel_proj2(x2)).chunk(2, dim=-1)
        return y1, u1, y2, u2

    def merge(
        self, x1: torch.Tensor, x2: torch.Tensor, y1: torch.Tensor, v1: torch.Tensor, y2: torch.Tensor, v2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """End projections, residual and LayerNorm of both streams (any token span)."""
        out1 = self.norm1(x1 + self.end_proj1(torch.cat((y1, v1), dim=-1)))
        out2 = self.norm2(x2 + self.end_proj2(torch.cat((y2, v2), dim=-1)))
        return out1, out2

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, u1, y2, u2 = self.split(x1, x2)
        v1, v2 = self.cross_attn(u1, u2)
        return self.merge(x1, x2, y1, v1, y2, v2)


class ChannelEmbed(nn.Module):
    """Merge the concatenated streams (2C channels) into C: 1x1 residual + conv bottleneck + BN."""

    def __init__(
        self, in_channels: int, out_channels: int, reduction: int = 1, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        mid = out_channels // reduction
        self.residual = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.channel_embed = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=True),
            nn.Conv2d(mid, mid, 3, 1, 1, bias=True, groups=mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=True),
            norm_layer(out_channels),
        )
        self.norm = norm_layer(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.residual(x) + self.channel_embed(x))


class FeatureFusionModule(nn.Module):
    """FFM: cross path on tokens, then channel embedding to one ``(B, C, H, W)`` fused map."""

    def __init__(
        self, dim: int, num_heads: int, reduction: int = 1, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.cross = CrossPath(dim, num_heads=num_heads, reduction=reduction)
        self.channel_emb = ChannelEmbed(dim * 2, dim, reduction, norm_layer)
        # Ablation knob: False skips the cross path (streams go straight to the channel embedding).
        self.cross_enabled = True

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        hw = (x1.shape[2], x1.shape[3])
        t1, t2 = x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2)
        if self.cross_enabled:
            t1, t2 = self.cross(t1, t2)
        return self.channel_emb(tokens_to_map(torch.cat((t1, t2), dim=-1), hw))
