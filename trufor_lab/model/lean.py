"""Memory-lean exact forward of TruFor: a 24-megapixel photo in a few GiB, same answer.

One cohesive thing: the whole network run piece by piece, each piece chunked the same way;
splitting it would scatter one memory budget over several files.

The plain forward materialises whole-image tensors far larger than the image: Noiseprint++
keeps 64-channel maps at full resolution (plus a 9x im2col copy on the CPU), stage-1 attention
scores are ``N x N/64`` (N = P/16 tokens for P pixels), the Mix-FFN hides 4x-expanded stage-1
tokens and each decoder concatenates four 512-channel maps at 1/4 resolution. This module runs
the same network piece by piece, freeing what is no longer needed and chunking every big
tensor so that only one chunk's working set (``budget``) exists at a time:

- Noiseprint++ (17 convolutions 3x3 -> receptive field 35x35) in tiles with a 17-pixel halo on
  every inner side: the centre of each tile sees exactly the pixels the full convolution sees,
  and the image border is padded with zeros as before, so the map is the full-image map (on
  the CPU in float32: full-width row bands carried through all layers instead, nothing recomputed);
- patch embeddings and every 3x3 (depth-wise) convolution over row chunks, with the rows their
  kernel needs (halo) and zero padding only at the real image border;
- attention over query chunks (every query row's softmax is independent) after a first pass
  that builds the spatially reduced keys/values chunk by chunk;
- Mix-FFN, FRM, FFM (CMX cross attention: its ``d x d`` context is a sum over tokens,
  accumulated chunk by chunk) and the decoders (bilinear upsampling of the coarse scales
  evaluated row by row) over row chunks; residual updates are written in place.

All of it is the same arithmetic as the plain forward up to float rounding order (checked in
tests/test_inference.py against ``model(x)`` with tiny chunks forcing every chunked path, and
against the float64 parity fixtures). Inference only: eval mode, no autograd.

Peak memory, float32, batch 1, P pixels, ``b`` = chunk budget (``estimate_lean_peak``); stage
tokens are N_i C_i = P x (4, 2, 1.25, 0.5) floats for stages 1..4 (MiT-B2):

==================  ===================================================  ===========  ===========
phase               live tensors (floats)                                 24 MP        1 MP
==================  ===================================================  ===========  ===========
Noiseprint++        input 3P, np map P, + one tile working set            0.38 GB + b  16 MB + b
stage 1 (np branch) input 3P, np P, rgb tokens 4P, np tokens 4P           1.15 GB + b  48 MB + b
FFM stage 1         input 4P, streams 2 x 4P, cat buffer 8P, fused 4P     2.30 GB + b  96 MB + b
decoders            input 4P, fused 7.75P, coarse projections 10.5P       2.15 GB + b  91 MB + b
heads               input 4P, logits 2P, conf P, pooling ~3P              0.96 GB      40 MB
==================  ===================================================  ===========  ===========

With the default budget (a quarter of free memory, at most 4 GiB) a 24 MP image peaks near
6.3 GB of tensors: within 24 GB of GPU memory or of RAM (add the weights, 0.27 GB, and the
runtime). At 24 MP the plain forward needs about 25 GB for the CPU Noiseprint++ alone with
oneDNN (70 GB on the GEMM path, whose im2col copies each map 9 times) and 140 GB per copy of
the stage-1 attention scores with the plain formula (``estimate_plain_peak``). Measured on the
CPU at 1 MP with a 256 MiB budget: 372 MiB above baseline instead of the plain forward's 2.63 GiB
(bench/RESULTS.md, 2026-11-23: Noiseprint++ then on the GEMM path, and exact the lean forward
for every image; ``python -m bench --budget-mib`` forces the lean forward now).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trufor_lab.common.memory import free_memory_bytes, free_memory_measured

from .attention import attention, check_attention
from .config import MIT_B2, TruForConfig
from .decoder import MLPDecoder, bilinear_sources, require_eval
from .fusion import ChannelEmbed, FeatureFusionModule, FeatureRectifyModule
from .noiseprint import STRIP_BYTES, Noiseprint, forward_streamed, streamed_exact
from .precision import ieee_float32, kept_precision
from .segformer import Block, OverlapPatchEmbed, tokens_to_map
from .winograd import winograd_applies
from .trufor import TruFor, TruForOutput

MiB = 1 << 20
GiB = 1 << 30
MIN_BUDGET, MAX_BUDGET = 32 * MiB, 4 * GiB  # bounds of one chunk's working set

__all__ = [
    "LeanConfig",
    "default_budget",
    "fitting_budget",
    "estimate_lean_peak",
    "estimate_plain_peak",
    "noiseprint_maps",
    "free_memory_bytes",
    "free_memory_measured",
    "gemm_convolution",
    "ieee_float32",
    "lean_features",
    "lean_forward",
    "lean_heads",
    "noiseprint_halo",
    "noiseprint_tiled",
]


# -- budgets -----------------------------------------------------------------------------------
def default_budget(device: torch.device | str) -> int:
    """Working-set bound for one chunk: a quarter of free memory (of what this process may still
    allocate), between 32 MiB and 4 GiB."""
    return int(min(max(free_memory_bytes(device) // 4, MIN_BUDGET), MAX_BUDGET))


def fitting_budget(
    h: int, w: int, device: torch.device | str, cfg: TruForConfig = MIT_B2, element_size: int = 4, batch: int = 1
) -> int:
    """:func:`default_budget` for an ``h x w`` image, lowered to half of what the lean forward's
    own tensors (:func:`estimate_lean_peak` without a chunk) leave free: a quarter of free memory
    on top of tensors that already take most of it ran past free memory (a 24 MP image with
    2.5 GiB free: 2.15 GiB of tensors + a 0.62 GiB chunk). Never below 32 MiB (an image that
    needs more than free memory even so is refused by ``analyze``). Where free memory is only
    guessed (:func:`free_memory_measured`: macOS, Windows), :func:`default_budget` as before."""
    if not free_memory_measured(device):
        return default_budget(device)
    free = free_memory_bytes(device)
    tensors = batch * estimate_lean_peak(h, w, cfg, 0, element_size)["peak"]
    return int(min(max(min(free // 4, (free - tensors) // 2), MIN_BUDGET), MAX_BUDGET))


@dataclasses.dataclass(frozen=True)
class LeanConfig:
    """How the lean forward chunks its work.

    ``budget_bytes``: working set of one chunk (``None``: :func:`fitting_budget` in
    :func:`lean_forward`, :func:`default_budget` in the pieces run alone). The other
    fields force sizes instead of deriving them from the budget (tests use tiny ones to
    exercise every chunked path): ``rows`` row-chunk height at every stage and in the decoders,
    ``attn_chunk`` queries per attention step (``None``: from the budget, at most the chunk
    the model's ``set_attention`` chose), ``tile`` Noiseprint++ tile side (pixels, before the
    halo). ``attention``: ``"sdpa"`` or ``"plain"`` (see attention.py; ``None``: what the model's
    ``set_attention`` chose, SDPA unless changed). ``onednn``: oneDNN
    convolutions for Noiseprint++ on the CPU (``None``: the module's own ``onednn`` setting).
    ``noiseprint_channels_last``: Noiseprint++ in channels-last (faster on CPUs, sums in another
    order; see :meth:`~trufor_lab.model.noiseprint.Noiseprint.forward_folded`);
    ``noiseprint_winograd``: its Winograd convolutions (CPU float32, see :mod:`.winograd`).
    """

    budget_bytes: int | None = None
    rows: int | None = None
    attn_chunk: int | None = None
    tile: int | None = None
    attention: str | None = None
    onednn: bool | None = None
    noiseprint_channels_last: bool = False
    noiseprint_winograd: bool = False

    def __post_init__(self) -> None:
        check_attention(self.attention or "sdpa", self.attn_chunk)
        for name in ("budget_bytes", "rows", "tile"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
                raise ValueError(f"LeanConfig.{name} must be a positive integer or None, got {v!r}")


def _spans(n: int, step: int) -> Iterator[tuple[int, int]]:
    step = max(1, int(step))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _rows(per_row_bytes: float, budget: int, total: int, forced: int | None) -> int:
    if forced:
        return max(1, min(forced, total))
    return int(max(1, min(total, budget // max(1.0, per_row_bytes))))


# -- Noiseprint++ ------------------------------------------------------------------------------
def gemm_convolution(onednn: bool = True, dtype: torch.dtype = torch.float32) -> bool:
    """Whether a CPU convolution in ``dtype`` runs PyTorch's GEMM path (im2col: 9 copies of its
    input): oneDNN not asked for (``onednn=False``), switched off (``torch.backends.mkldnn``),
    missing from this PyTorch, or a dtype it does not run (float64: measured 10x the input, not
    float32's 2x); else oneDNN runs it (one reordered copy). Memory estimates follow this."""
    mk = torch.backends.mkldnn
    return not (onednn and dtype in (torch.float32, torch.bfloat16) and mk.is_available() and mk.enabled)


def noiseprint_maps(device_type: str, im2col: bool, winograd: bool = False) -> int:
    """Full-size feature maps alive at once in a folded Noiseprint++ forward: its input and output,
    plus on the CPU im2col's 9 copies (GEMM path), oneDNN's reordered copy, or NNPACK's Winograd
    workspace and band boundaries (``winograd``: where :func:`~.winograd.winograd_applies`; a few
    bands, counted as one map)."""
    if device_type != "cpu":
        return 3
    return 2 + (1 if winograd else 9 if im2col else 2)


def noiseprint_halo(net: Noiseprint) -> int:
    """Receptive-field radius of the DnCNN (17 for seventeen 3x3 convolutions)."""
    return sum((m.kernel_size[0] // 2) * m.dilation[0] for m in net if isinstance(m, nn.Conv2d))


def _noiseprint_tile(h: int, w: int, halo: int, per_pixel: int, budget: int, tile: int | None) -> tuple[int, int]:
    if tile:
        return min(h, tile), min(w, tile)
    if (h + 2 * halo) * (w + 2 * halo) * per_pixel <= budget:
        return h, w
    pixels = budget // per_pixel
    side = max(64, math.isqrt(pixels) - 2 * halo)
    tw = min(w, side)
    th = max(64, pixels // (tw + 2 * halo) - 2 * halo)
    return min(h, th), tw


def noiseprint_tiled(
    net: Noiseprint,
    rgb: torch.Tensor,
    *,
    budget_bytes: int | None = None,
    tile: int | None = None,
    onednn: bool | None = None,
    channels_last: bool = False,
    winograd: bool = False,
) -> torch.Tensor:
    """Noiseprint++ map ``(B, 1, H, W)`` computed in tiles with a halo: the full-image map.

    Each tile is extended by the receptive-field radius on its inner sides and cropped back,
    so every output pixel is computed from exactly the inputs (and the border zero padding)
    of the full convolution; memory is bounded by one tile. Always IEEE float32/float64, with
    the BatchNorms folded (:meth:`Noiseprint.forward_folded`). Eval mode only.

    Where bands of rows give the same bits (oneDNN float32, :func:`~.noiseprint.streamed_exact`)
    and no ``tile`` is forced, the map is computed in full-width bands instead, each carried
    through all 17 layers (:func:`~.noiseprint.forward_streamed`): no halo recomputed (tiles of
    a 256 MiB budget recompute ~14 % of the pixels at 3 MP), one band of each map at a time.
    """
    dtype = net[0].weight.dtype
    onednn = net.onednn if onednn is None else onednn
    b, _, h, w = rgb.shape
    halo = noiseprint_halo(net)
    feat = net[0].out_channels
    winograd = winograd and winograd_applies(rgb.device, dtype)
    im2col = gemm_convolution(onednn, dtype)
    maps = noiseprint_maps("cpu", im2col, winograd) if rgb.device.type == "cpu" else 4  # CUDA: as before
    per_pixel = b * feat * maps * torch.finfo(dtype).bits // 8
    budget = budget_bytes or default_budget(rgb.device)
    th, tw = _noiseprint_tile(h, w, halo, per_pixel, budget, tile)
    if (th, tw) == (h, w):
        return net.forward_folded(rgb, onednn, channels_last, winograd)
    if not (tile or channels_last or winograd) and streamed_exact(net, rgb, onednn):
        rows = min(STRIP_BYTES // (b * feat * w * torch.finfo(dtype).bits // 8), budget // (w * per_pixel))
        return forward_streamed(net, rgb, max(1, rows), onednn)
    out = torch.empty((b, net[-1].out_channels, h, w), dtype=dtype, device=rgb.device)
    for r0, r1 in _spans(h, th):
        a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
        for c0, c1 in _spans(w, tw):
            b0, b1 = max(0, c0 - halo), min(w, c1 + halo)
            x = net.forward_folded(rgb[:, :, a0:a1, b0:b1], onednn, channels_last, winograd)
            out[:, :, r0:r1, c0:c1] = x[:, :, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
            del x
    return out


# -- convolutions over row windows ------------------------------------------------------------
def _conv_window(conv: nn.Conv2d, xs: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    """``conv`` over a window of rows of its input; ``top``/``bottom`` zero rows stand for the
    image border (the convolution's own vertical padding is replaced by them)."""
    if top or bottom:
        xs = F.pad(xs, (0, 0, top, bottom))
    return F.conv2d(xs, conv.weight, conv.bias, conv.stride, (0, conv.padding[1]), conv.dilation, conv.groups)


def _conv_rows(conv: nn.Conv2d, x: torch.Tensor, o0: int, o1: int) -> torch.Tensor:
    """Output rows ``[o0, o1)`` of ``conv(x)`` (zero padding), from the input rows they need."""
    k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
    h = x.shape[2]
    i0, i1 = o0 * s - p, (o1 - 1) * s - p + d * (k - 1) + 1
    return _conv_window(conv, x[:, :, max(i0, 0) : min(i1, h)], max(0, -i0), max(0, i1 - h))


def _conv_out_size(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


# -- encoder -----------------------------------------------------------------------------------
def _patch_embed(
    pe: OverlapPatchEmbed, x: torch.Tensor, budget: int, forced: int | None
) -> tuple[torch.Tensor, tuple[int, int]]:
    conv = pe.proj
    ho, wo = _conv_out_size(conv, x.shape[2], x.shape[3])
    per_row = wo * (2 * conv.out_channels + conv.in_channels * conv.kernel_size[0] ** 2) * 4
    rows = _rows(per_row, budget, ho, forced)
    if rows >= ho:
        return pe(x)
    t = None
    with kept_precision(pe) as cast:  # the fast mode's float32 patch embeddings, chunk by chunk
        x = cast(x)
        for o0, o1 in _spans(ho, rows):
            y = pe.norm(_conv_rows(conv, x, o0, o1).flatten(2).transpose(1, 2))
            if t is None:
                t = y.new_empty((x.shape[0], ho * wo, conv.out_channels))
            t[:, o0 * wo : o1 * wo] = y
    return t, (ho, wo)


def _keys_values(blk: Block, t: torch.Tensor, hw: tuple[int, int], rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of the block's SRA, the spatial reduction computed over row chunks."""
    attn = blk.attn
    b, _, c = t.shape
    h, w = hw
    if attn.sr_ratio > 1:
        sr = attn.sr_ratio
        hs = (h - sr) // sr + 1  # rows beyond hs * sr are not seen by the strided convolution
        step = max(1, rows // sr) * sr
        parts = []
        for r0, r1 in _spans(hs * sr, step):
            m = tokens_to_map(blk.norm1(t[:, r0 * w : r1 * w]), (r1 - r0, w))
            parts.append(attn.sr(m).flatten(2).transpose(1, 2))
        x = attn.norm(torch.cat(parts, 1) if len(parts) > 1 else parts[0])
    else:
        x = blk.norm1(t)
    kv = attn.kv(x).reshape(b, -1, 2, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    return kv[0], kv[1]


def _attention_part(blk: Block, t: torch.Tensor, hw: tuple[int, int], budget: int, cfg: LeanConfig) -> None:
    """``t += SRA(LN1(t))`` in place, over row chunks of queries."""
    with kept_precision(blk.attn):  # the fast mode may keep the attention float32 (t is float32)
        _attention_chunks(blk, t, hw, budget, cfg)


def _attention_chunks(blk: Block, t: torch.Tensor, hw: tuple[int, int], budget: int, cfg: LeanConfig) -> None:
    attn = blk.attn
    b, _, c = t.shape
    h, w = hw
    heads = attn.num_heads
    kv_rows = _rows(w * 4 * c * 4, budget, h, cfg.rows)
    k, v = _keys_values(blk, t, hw, kv_rows)
    nk = k.shape[-2]
    # half the budget for the scores of one query chunk, half for the chunk's token tensors
    chunk = cfg.attn_chunk or max(1, budget // (2 * heads * nk * 4 * 3))
    if cfg.attn_chunk is None and attn.chunk:  # the model's own chunk (set_attention) bounds it too
        chunk = min(chunk, attn.chunk)
    rows = _rows(w * 5 * c * 4, budget // 2, h, cfg.rows)
    for r0, r1 in _spans(h, rows):
        xc = t[:, r0 * w : r1 * w]
        n = xc.shape[1]
        q = attn.q(blk.norm1(xc)).reshape(b, n, heads, c // heads).transpose(1, 2)
        o = attention(q, k, v, attn.scale, impl=cfg.attention or attn.impl, chunk=chunk if chunk < n else None)
        xc.add_(attn.proj(o.transpose(1, 2).reshape(b, n, c)))


def _mix_ffn_part(blk: Block, t: torch.Tensor, hw: tuple[int, int], budget: int, cfg: LeanConfig) -> None:
    """``t += MixFFN(LN2(t))`` in place over row chunks; the 3x3 depth-wise convolution reads
    halo rows, the row above taken from a copy made before the previous chunk was updated."""
    mlp = blk.mlp
    dw = mlp.dwconv.dwconv
    p = dw.padding[0]
    h, w = hw
    c, hidden = t.shape[2], mlp.fc1.out_features
    rows = _rows(w * (2 * c + 3 * hidden) * 4, budget, h, cfg.rows)
    above: torch.Tensor | None = None  # original tokens of the rows above the chunk
    for r0, r1 in _spans(h, rows):
        a1 = min(h, r1 + p)
        below = t[:, r0 * w : a1 * w]
        xin = torch.cat((above, below), 1) if above is not None else below
        n_above = 0 if above is None else above.shape[1] // w
        hid = tokens_to_map(mlp.fc1(blk.norm2(xin)), (n_above + a1 - r0, w))
        del xin
        y = _conv_window(dw, hid, p - n_above, p - (a1 - r1)).flatten(2).transpose(1, 2)
        del hid
        y = mlp.fc2(mlp.act(y))
        if r1 < h:
            above = t[:, max(0, r1 - p) * w : r1 * w].clone()
        t[:, r0 * w : r1 * w].add_(y)


def _stage(enc: nn.Module, branch: str, stage: int, x: torch.Tensor, budget: int, cfg: LeanConfig) -> torch.Tensor:
    pe, blocks, norm = enc.stage_modules(branch, stage)
    t, hw = _patch_embed(pe, x, budget, cfg.rows)
    del x
    for blk in blocks:
        _attention_part(blk, t, hw, budget, cfg)
        _mix_ffn_part(blk, t, hw, budget, cfg)
    h, w = hw
    for r0, r1 in _spans(h, _rows(w * 3 * t.shape[2] * 4, budget, h, cfg.rows)):
        t[:, r0 * w : r1 * w] = norm(t[:, r0 * w : r1 * w])
    return tokens_to_map(t, hw)


def _frm(
    frm: FeatureRectifyModule, x1: torch.Tensor, x2: torch.Tensor, budget: int, cfg: LeanConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """FRM written into ``x1``/``x2`` over row chunks (its channel weights need one pooling pass)."""
    if not frm.enabled:
        return x1, x2
    _, c, h, w = x1.shape
    cwm = frm.channel_weights
    cw = cwm.weights(cwm.pool(x1, x2))
    for r0, r1 in _spans(h, _rows(w * 10 * c * 4, budget, h, cfg.rows)):
        a, d = x1[:, :, r0:r1], x2[:, :, r0:r1]
        o1, o2 = frm.rectify(a, d, cw, frm.spatial_weights(a, d))
        a.copy_(o1)
        d.copy_(o2)
    return x1, x2


def _channel_embed(ce: ChannelEmbed, m: torch.Tensor, budget: int, cfg: LeanConfig) -> torch.Tensor:
    b, c2, h, w = m.shape
    conv_a, dw, act, conv_b, bn = ce.channel_embed
    p = dw.padding[0]
    cout = ce.residual.out_channels
    out = torch.empty((b, cout, h, w), dtype=m.dtype, device=m.device, memory_format=torch.channels_last)
    for r0, r1 in _spans(h, _rows(w * (c2 + 6 * cout) * 4, budget, h, cfg.rows)):
        a0, a1 = max(0, r0 - p), min(h, r1 + p)
        z = _conv_window(dw, conv_a(m[:, :, a0:a1]), p - (r0 - a0), p - (a1 - r1))
        z = bn(conv_b(act(z)))
        out[:, :, r0:r1] = ce.norm(ce.residual(m[:, :, r0:r1]) + z)
    return out


def _ffm(ffm: FeatureFusionModule, x1: torch.Tensor, x2: torch.Tensor, budget: int, cfg: LeanConfig) -> torch.Tensor:
    """FFM over row chunks: a first pass sums the cross-attention contexts over tokens."""
    with kept_precision(ffm) as cast:  # the fast mode keeps the FFMs float32: here too
        return _ffm_chunks(ffm, cast(x1), cast(x2), budget, cfg)


def _ffm_chunks(
    ffm: FeatureFusionModule, x1: torch.Tensor, x2: torch.Tensor, budget: int, cfg: LeanConfig
) -> torch.Tensor:
    b, c, h, w = x1.shape
    t1, t2 = x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2)
    buf = x1.new_empty((b, h * w, 2 * c))
    rows = _rows(w * 14 * c * 4, budget, h, cfg.rows)
    if ffm.cross_enabled:
        cp, ca = ffm.cross, ffm.cross.cross_attn
        spans = [(r0 * w, r1 * w) for r0, r1 in _spans(h, rows)]
        sums: list[torch.Tensor | None] = [None, None]
        for s, e in spans:
            _, u1, _, u2 = cp.split(t1[:, s:e], t2[:, s:e])
            for i, (kv, u) in enumerate(((ca.kv1, u1), (ca.kv2, u2))):
                part = ca.context_sum(kv, u)
                if part.dtype in (torch.float16, torch.bfloat16):  # accumulate partial sums in float32
                    part = part.float()
                sums[i] = part if sums[i] is None else sums[i] + part
        ctx1, ctx2 = (ca.normalize_context(x) for x in sums)
        for s, e in spans:
            x1c, x2c = t1[:, s:e], t2[:, s:e]
            y1, u1, y2, u2 = cp.split(x1c, x2c)
            v1, v2 = ca.attend(u1, ctx2.to(u1.dtype)), ca.attend(u2, ctx1.to(u2.dtype))
            buf[:, s:e, :c], buf[:, s:e, c:] = cp.merge(x1c, x2c, y1, v1, y2, v2)
    else:
        buf[..., :c] = t1
        buf[..., c:] = t2
    return _channel_embed(ffm.channel_emb, tokens_to_map(buf, (h, w)), budget, cfg)


def lean_features(
    model: TruFor, rgb: torch.Tensor, noiseprint: torch.Tensor, config: LeanConfig | None = None
) -> list[torch.Tensor]:
    """The four fused encoder maps, as ``model.forward_features`` computes them, chunked."""
    cfg = config or LeanConfig()
    budget = (cfg.budget_bytes or default_budget(rgb.device)) // max(1, rgb.shape[0])  # per image
    enc = model.backbone
    with torch.no_grad():
        x_np = noiseprint.to(rgb.dtype)
        if x_np.shape[1] == 1:
            x_np = x_np.expand(-1, 3, -1, -1)
        x_rgb = model.normalize(rgb)
        fused = []
        for i in range(enc.cfg.num_stages):
            x_rgb = _stage(enc, "rgb", i + 1, x_rgb, budget, cfg)
            x_np = _stage(enc, "noiseprint", i + 1, x_np, budget, cfg)
            x_rgb, x_np = _frm(enc.FRMs[i], x_rgb, x_np, budget, cfg)
            fused.append(_ffm(enc.FFMs[i], x_rgb, x_np, budget, cfg))
        return fused


# -- decoders and heads ------------------------------------------------------------------------
def _bilinear_rows(x: torch.Tensor, size: tuple[int, int], r0: int, r1: int) -> torch.Tensor:
    """Rows ``[r0, r1)`` of ``F.interpolate(x, size, mode='bilinear', align_corners=False)``.

    Separable: the source rows are blended with PyTorch's weights, then the columns are
    interpolated by ``F.interpolate`` itself (row scale 1, so rows pass through unchanged).
    """
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    y0, y1, ly = bilinear_sources(x.shape[2], size[0], r0, r1, x.device, dt)
    ly = ly[:, None, None]
    xt = x.permute(0, 2, 3, 1)  # (B, H, W, C): contiguous for the channels-last maps of the decoder
    rows = (xt.index_select(1, y0) * (1 - ly) + xt.index_select(1, y1) * ly).permute(0, 3, 1, 2)
    return F.interpolate(rows.to(x.dtype), size=(r1 - r0, size[1]), mode="bilinear", align_corners=False)


def _decoder(dec: MLPDecoder, feats: list[torch.Tensor], budget: int, cfg: LeanConfig) -> torch.Tensor:
    """``dec(feats)`` (logits at 1/4) over row chunks; coarse scales are projected once."""
    size = tuple(feats[0].shape[2:])
    projs = dec.scale_projections()
    coarse = [proj(f) for proj, f in zip(projs[1:], feats[1:])]
    emb = projs[0].proj.out_features
    h, w = size
    rows = _rows(w * emb * 18 * 4, budget, h, cfg.rows)
    out = None
    for r0, r1 in _spans(h, rows):
        embs = [projs[0](feats[0][:, :, r0:r1])]
        embs += [p[:, :, r0:r1] if tuple(p.shape[2:]) == size else _bilinear_rows(p, size, r0, r1) for p in coarse]
        y = dec.linear_pred(dec.dropout(dec.linear_fuse(torch.cat(embs[::-1], dim=1))))
        del embs
        if out is None:
            out = y.new_empty((y.shape[0], y.shape[1], h, w))
        out[:, :, r0:r1] = y
    return out


def lean_heads(
    model: TruFor, feats: list[torch.Tensor], size: tuple[int, int], config: LeanConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``model.forward_heads``, decoders over row chunks: (logits, conf_logits, det_logit)."""
    cfg = config or LeanConfig()
    budget = (cfg.budget_bytes or default_budget(feats[0].device)) // max(1, feats[0].shape[0])
    with torch.no_grad():
        logits = F.interpolate(
            _decoder(model.decode_head, feats, budget, cfg), size=size, mode="bilinear", align_corners=False
        )
        conf = F.interpolate(
            _decoder(model.decode_head_conf, feats, budget, cfg), size=size, mode="bilinear", align_corners=False
        )
        return logits, conf, model.detection(model.pool(logits, conf))


def lean_forward(
    model: TruFor,
    rgb: torch.Tensor,
    noiseprint: torch.Tensor | None = None,
    config: LeanConfig | None = None,
    encoder_context: contextlib.AbstractContextManager | None = None,
) -> TruForOutput:
    """``model(rgb, noiseprint)`` with bounded memory (see the module docstring). Eval mode only.

    ``encoder_context`` (the fast mode's autocast) covers the encoder only: the heads run in the
    model's precision on the features cast back, as in the whole-image forward."""
    require_eval(model, "lean_forward")
    model.check_input(rgb, noiseprint)
    cfg = config or LeanConfig()
    rgb = rgb.to(model.decode_head.linear_pred.weight.dtype)
    if cfg.budget_bytes is None:
        b, _, h, w = rgb.shape
        budget = fitting_budget(h, w, rgb.device, model.cfg, rgb.element_size(), b)
        cfg = dataclasses.replace(cfg, budget_bytes=budget)
    with torch.no_grad():
        if noiseprint is None:
            noiseprint = noiseprint_tiled(
                model.dncnn,
                rgb,
                budget_bytes=cfg.budget_bytes,
                tile=cfg.tile,
                onednn=cfg.onednn,
                channels_last=cfg.noiseprint_channels_last,
                winograd=cfg.noiseprint_winograd,
            )
        with encoder_context or contextlib.nullcontext():
            feats = lean_features(model, rgb, noiseprint, cfg)
        feats = [f.to(rgb.dtype) for f in feats]
        logits, conf, det = lean_heads(model, feats, tuple(rgb.shape[2:]), cfg)
    return TruForOutput(logits, conf, det, noiseprint)


# -- memory estimates --------------------------------------------------------------------------
def _stage_floats(h: int, w: int, cfg: TruForConfig) -> list[tuple[int, int, int]]:
    """(tokens, channels, keys) per stage for an ``h x w`` image."""
    out, hh, ww = [], h, w
    for i in range(cfg.num_stages):
        k, s = cfg.patch_sizes[i], cfg.strides[i]
        hh, ww = (hh + 2 * (k // 2) - k) // s + 1, (ww + 2 * (k // 2) - k) // s + 1
        sr = cfg.sr_ratios[i]
        keys = ((hh - sr) // sr + 1) * ((ww - sr) // sr + 1) if sr > 1 else hh * ww
        out.append((hh * ww, cfg.embed_dims[i], keys))
    return out


def estimate_lean_peak(
    h: int, w: int, cfg: TruForConfig = MIT_B2, budget_bytes: int = 4 * GiB, element_size: int = 4
) -> dict[str, int]:
    """Bytes of tensors alive at each phase of :func:`lean_forward` (batch 1), and ``peak``.

    One chunk working set is counted as the whole ``budget_bytes`` (an upper bound); the
    weights and the runtime are not included.
    """
    p = h * w
    st = _stage_floats(h, w, cfg)
    toks = [n * c for n, c, _ in st]
    inp = 4 * p  # RGB input + Noiseprint++ map, alive throughout
    floats = {
        "noiseprint": inp,
        "stage1": inp + max(3 * p + toks[0], 2 * toks[0]),  # normalised RGB or both token sets
        "ffm1": inp + 5 * toks[0],  # two streams, the 2C concatenation, the fused map
        "decoders": inp + sum(toks) + cfg.decoder_embed_dim * sum(n for n, _, _ in st[1:]) + 3 * st[0][0],
        "heads": inp + 6 * p,  # full-size logits (2), conf (1), pooling temporaries (3)
    }
    out = {k: v * element_size + (budget_bytes if k != "heads" else 0) for k, v in floats.items()}
    out["peak"] = max(out.values())
    return out


def estimate_plain_peak(
    h: int,
    w: int,
    cfg: TruForConfig = MIT_B2,
    device_type: str = "cpu",
    attention_impl: str = "plain",
    element_size: int = 4,
    im2col: bool | None = None,
    unfolded_decoders: bool = False,
    winograd: bool = False,
) -> int:
    """Rough peak bytes of the plain ``model(x)`` forward (batch 1): the largest of Noiseprint++
    (64-channel maps, plus im2col on the CPU), stage-1 attention scores (``plain``, or SDPA on
    the CPU math path) and the decoder concatenation, plus the whole-image tensors. ``im2col``
    (``None``: :func:`gemm_convolution` on the CPU, as the official code's forward runs): the CPU
    convolutions copy their input 9 times (GEMM path) instead of reordering it once (oneDNN).
    ``unfolded_decoders``: the module forward's own decoders on the CPU (their measured peak RSS,
    ~1.8x the default's count), not the folded ones of the exact path. ``winograd``: Noiseprint++
    by NNPACK's Winograd on the CPU (the fast mode; its workspace, :func:`noiseprint_maps`)."""
    p = h * w
    if im2col is None:
        dtype = {8: torch.float64, 2: torch.bfloat16}.get(element_size, torch.float32)
        im2col = device_type == "cpu" and gemm_convolution(dtype=dtype)
    np_feat = 64 * noiseprint_maps(device_type, im2col, winograd) * p
    st = _stage_floats(h, w, cfg)
    attn = 0
    plain = attention_impl == "plain" or element_size == 8  # SDPA's fused kernels skip float64: the formula
    if plain or device_type != "cuda":
        attn = max(cfg.num_heads[i] * n * k * (3 if plain else 1) for i, (n, _, k) in enumerate(st))
    mlp = max(n * c * cfg.mlp_ratios[i] * 3 for i, (n, c, _) in enumerate(st))
    # decoders: ~10 maps of E channels at stage-1 resolution (the module forward's four upsampled
    # projections, their concatenation, fuse and BatchNorm outputs); on the CPU the peak RSS of its
    # two decoders in turn measured ~17 (the first one's freed maps stay in the heap)
    dec = st[0][0] * cfg.decoder_embed_dim * (18 if unfolded_decoders and device_type == "cpu" else 10)
    base = 8 * p + 6 * sum(n * c for n, c, _ in st)
    return int((base + max(np_feat, attn, mlp, dec)) * element_size)
