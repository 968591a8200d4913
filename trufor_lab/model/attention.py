"""Exact scaled dot-product attention with bounded memory.

SegFormer's spatial-reduction attention on a large image has N queries against N/R^2 keys
(N = H*W/16 at stage 1): the plain formula materialises an N x N/64 matrix (32 GiB for a
12 MP photo). Both implementations here compute the same softmax(q k^T * scale) v:

- ``"plain"``: the formula as written (the reference; used to check the others);
- ``"sdpa"``: PyTorch's fused kernel (flash / memory-efficient on GPU), exact in the sense of
  IEEE arithmetic, not bit-identical to ``"plain"``;

and both can be split into query chunks (``chunk``), which is exact because every query row's
softmax is independent of the others.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

ATTENTION_IMPLS = ("sdpa", "plain")


def check_attention(impl: str, chunk: int | None) -> None:
    """A one-line ``ValueError`` for an unknown implementation or a chunk that is not a positive
    number of queries (a negative one left the output uninitialised; ``None``: no chunks)."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention implementation {impl!r}; choose from {ATTENTION_IMPLS}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1):
        raise ValueError(f"attention chunk must be a positive number of queries or None, got {chunk!r}")


def _plain(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    attn = (q @ k.transpose(-2, -1)) * scale
    return attn.softmax(dim=-1) @ v


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    if q.dtype == torch.float64:
        # The fused kernels do not cover float64: the math path is the formula itself.
        return _plain(q, k, v, scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, impl: str = "sdpa", chunk: int | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale) v for ``(B, heads, N, d)`` tensors; ``chunk`` bounds queries per step."""
    check_attention(impl, chunk)
    fn = _sdpa if impl == "sdpa" else _plain
    n = q.shape[-2]
    if chunk is None or n <= chunk:
        return fn(q, k, v, scale)
    out = q.new_empty(q.shape[:-1] + (v.shape[-1],))
    for start in range(0, n, chunk):
        out[..., start : start + chunk, :] = fn(q[..., start : start + chunk, :], k, v, scale)
    return out
