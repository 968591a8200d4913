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

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        embed_dim: int = 512,
        dropout: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        for i in range(len(self.in_channels), 0, -1):  # official names and order: c4 .. c1
            setattr(self, f"linear_c{i}", MLP(self.in_channels[i - 1], embed_dim))
        n = len(self.in_channels)
        self.linear_fuse = nn.Sequential(
            nn.Conv2d(embed_dim * n, embed_dim, 1), norm_layer(embed_dim, eps=bn_eps), nn.ReLU(inplace=True)
        )
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


def _folded_scale_weights(decoders: Sequence[MLPDecoder]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per scale ``i`` the product ``A_i`` of the (BatchNorm-folded) fuse weights for that scale
    with the scale's projection, all decoders stacked ``(sum E, C_i)``; and the total bias."""
    mats: list[list[torch.Tensor]] = []
    biases = []
    for dec in decoders:
        conv, bn = dec.linear_fuse[0], dec.linear_fuse[1]
        dt = conv.weight.dtype
        s = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
        wf = conv.weight.double().flatten(1) * s[:, None]  # (E, n E)
        bias = bn.bias.double() + (conv.bias.double() - bn.running_mean.double()) * s
        n, e = len(dec.in_channels), conv.out_channels
        row = []
        for i, mlp in enumerate(dec.scale_projections()):  # concatenation order is c4 .. c1
            wi = wf[:, (n - 1 - i) * e : (n - i) * e]
            row.append((wi @ mlp.proj.weight.double()).to(dt))
            bias = bias + wi @ mlp.proj.bias.double()
        mats.append(row)
        biases.append(bias.to(dt))
    return [torch.cat(col) for col in zip(*mats)], torch.cat(biases)


def in_training(model: nn.Module) -> str | None:
    """The first module of ``model`` left in training mode (a BatchNorm or dropout after
    ``model.eval()``, a submodule's ``.train()``), named for a message; ``None`` if none is."""
    for name, mod in model.named_modules():
        if mod.training:
            return f"{name} ({type(mod).__name__})" if name else f"the model ({type(mod).__name__})"
    return None


def require_eval(model: nn.Module, what: str) -> None:
    """A one-line ``ValueError`` naming the first module of ``model`` left in training mode: the
    inference paths read running BatchNorm statistics and would answer otherwise than the plain
    forward."""
    where = in_training(model)
    if where is not None:
        raise ValueError(f"{what} runs inference: {where} is in training mode; call model.eval() first")


#: Bytes of one band of the 1/4-resolution fused map in :func:`folded_decode` on the CPU: the
#: whole map is ``2 x 512`` channels (256 MiB at 1 MP), written and read again by each scale's
#: upsampling and the sum, each time as fresh pages; bands this small stay in the cache.
DECODE_BAND_BYTES = 4 * 2**20


def bilinear_sources(
    n_in: int, n_out: int, start: int, stop: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output indices ``[start, stop)`` of a bilinear resize ``n_in -> n_out``
    (``align_corners=False``, as ``F.interpolate``): the two source indices and the weight of the
    second one."""
    scale = torch.tensor(n_in, dtype=dtype, device=device) / n_out
    src = (scale * (torch.arange(start, stop, dtype=dtype, device=device) + 0.5) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    lam = (src - i0.to(dtype)).clamp(0, 1)
    return i0, (i0 + 1).clamp_max(n_in - 1), lam


def folded_decode(decoders: Sequence[MLPDecoder], feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[dec(feats) for dec in decoders]`` (eval mode), algebraically rearranged for speed.

    Projection, bilinear upsampling (weights summing to one) and the 1x1 fuse convolution are all
    linear, and the fuse BatchNorm is affine in eval mode: so each scale is multiplied once, at its
    own resolution, by the product of its fuse block and its projection (for all decoders at once),
    then upsampled and summed. No ``4 x embed_dim`` concatenation and a fuse convolution ~8x
    cheaper; the same network up to float32 rounding (tests/test_inference.py). On the CPU the
    1/4-resolution map is built in bands of rows (:data:`DECODE_BAND_BYTES`; tests/test_cpu_work_layout.py), upsampling rows and
    columns separately, so that the full-size ``2 x 512``-channel map never exists.
    """
    for d in decoders:
        require_eval(d, "folded_decode (running BatchNorm statistics)")
    mats, bias = _folded_scale_weights(decoders)
    if feats[0].device.type == "cpu":
        return _folded_decode_bands(decoders, feats, mats, bias)
    size = feats[0].shape[2:]
    acc = None
    for a, f in zip(mats, feats):
        z = torch.matmul(f.permute(0, 2, 3, 1), a.t().to(f.dtype)).permute(0, 3, 1, 2)  # channels-last map
        if z.shape[2:] != size:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        acc = z if acc is None else acc.add_(z)
    acc = F.relu_(acc.add_(bias.to(acc.dtype)[:, None, None]))
    outs, start = [], 0
    for dec in decoders:
        e = dec.linear_pred.in_channels
        pred = dec.linear_pred
        y = torch.matmul(acc[:, start : start + e].permute(0, 2, 3, 1), pred.weight.flatten(1).t().to(acc.dtype))
        outs.append((y + pred.bias.to(y.dtype)).permute(0, 3, 1, 2).contiguous())
        start += e
    return outs


def _folded_decode_bands(
    decoders: Sequence[MLPDecoder], feats: Sequence[torch.Tensor], mats: list[torch.Tensor], bias: torch.Tensor
) -> list[torch.Tensor]:
    """:func:`folded_decode` one band of 1/4-resolution rows at a time: each coarse scale is
    projected and resized along the columns once at its own height; each band then blends two of
    its rows per output row (bilinear weights as ``F.interpolate``), fuses and classifies."""
    f0 = feats[0]
    dt = f0.dtype
    b, _, h, w = f0.shape
    coarse = []
    for a, f in zip(mats[1:], feats[1:]):
        z = torch.matmul(f.permute(0, 2, 3, 1), a.t().to(dt))  # (B, h_i, w_i, E)
        if z.shape[2] != w:  # the row scale is one: rows pass through unchanged
            z = F.interpolate(z.permute(0, 3, 1, 2), size=(z.shape[1], w), mode="bilinear", align_corners=False)
            z = z.permute(0, 2, 3, 1)
        i0, i1, lam = bilinear_sources(z.shape[1], h, 0, h, z.device, torch.float64)
        coarse.append((z, i0.tolist(), i1.tolist(), lam.tolist()))
    a0 = mats[0].t().to(dt)
    bias = bias.to(dt)
    preds = [(d.linear_pred.weight.flatten(1).t().to(dt), d.linear_pred.bias.to(dt)) for d in decoders]
    outs = [f0.new_empty((b, h, w, wt.shape[1])) for wt, _ in preds]
    rows = max(1, DECODE_BAND_BYTES // (b * w * a0.shape[1] * f0.element_size()))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        acc = torch.matmul(f0[:, :, r0:r1].permute(0, 2, 3, 1), a0)  # (B, rows, W, sum E)
        for z, i0, i1, lam in coarse:
            for r in range(r0, r1):
                row = acc[:, r - r0]
                row.add_(z[:, i0[r]], alpha=1 - lam[r])
                if lam[r]:
                    row.add_(z[:, i1[r]], alpha=lam[r])
        acc.add_(bias).relu_()
        start = 0
        for (wt, _), out in zip(preds, outs):
            e = wt.shape[0]
            out[:, r0:r1] = torch.matmul(acc[..., start : start + e], wt)
            start += e
    return [out.add_(bt).permute(0, 3, 1, 2).contiguous() for (_, bt), out in zip(preds, outs)]
