"""Mix Transformer (MiT, SegFormer; Xie et al., NeurIPS 2021) building blocks.

Overlapping patch embedding, spatial-reduction attention (SRA) and the Mix-FFN (an MLP with a
3x3 depth-wise convolution). Tokens travel as ``(B, N, C)`` with the spatial size ``(H, W)``
alongside; :func:`tokens_to_map` turns them into ``(B, C, H, W)``.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .strips import row_strips

LayerNorm6 = partial(nn.LayerNorm, eps=1e-6)


def tokens_to_map(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``(B, N, C)`` tokens to a ``(B, C, H, W)`` feature map."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, hw[0], hw[1])


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (identity at inference)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with overlapping windows, then LayerNorm over channels."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys/values come from a ``sr_ratio``-strided copy of the input."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
        # How to evaluate softmax(q k^T) v; all choices are exact (see attention.py).
        self.impl = "sdpa"
        self.chunk: int | None = None

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, c // h).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.sr(tokens_to_map(x, hw)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        kv = self.kv(x).reshape(b, -1, 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = attention(q, kv[0], kv[1], self.scale, impl=self.impl, chunk=self.chunk)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """3x3 depth-wise convolution on tokens (the 'Mix' of Mix-FFN: positional information)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return self.dwconv(tokens_to_map(x, hw)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """fc1 -> depth-wise conv -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        #: Bytes of hidden activations per band of token rows on the CPU (``None``: the whole map
        #: at once, as the official code). Set for a call by
        #: :func:`~trufor_lab.model.layout.token_bands`: no full-size maps, float32 rounding only.
        self.band_bytes: int | None = None

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if self.band_bytes is not None and x.device.type == "cpu":
            per_row = x.shape[0] * hw[1] * self.fc1.out_features * x.element_size()
            rows = max(1, self.band_bytes // per_row)
            if rows < hw[0]:
                return self._bands(x, hw, rows)
        return self.fc2(self.act(self.dwconv(self.fc1(x), hw)))

    def _bands(self, x: torch.Tensor, hw: tuple[int, int], rows: int) -> torch.Tensor:
        """The forward over bands of ``rows`` token rows; each band reads the halo rows its 3x3
        convolution needs (the same network; fc1/fc2 over fewer rows may round otherwise)."""
        h, w = hw
        conv = self.dwconv.dwconv
        pad = conv.padding[0]
        out = None
        for s in row_strips(h, rows, pad):
            hid = tokens_to_map(self.fc1(x[:, s.a * w : s.z * w]), (s.z - s.a, w))
            y = F.conv2d(hid, conv.weight, conv.bias, padding=(s.pad_rows, pad), groups=conv.groups)
            y = self.fc2(self.act(y[:, :, s.offset : s.offset + s.r1 - s.r0].flatten(2).transpose(1, 2)))
            if out is None:
                out = y.new_empty((x.shape[0], x.shape[1], y.shape[-1]))
            out[:, s.r0 * w : s.r1 * w] = y
        return out


class Block(nn.Module):
    """Pre-norm transformer block: x + SRA(LN(x)), then x + MixFFN(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm6(dim)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm6(dim)
        self.mlp = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))
