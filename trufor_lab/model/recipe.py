"""Deterministic TruFor weights rebuilt from key names alone ("the recipe").

Every tensor whose key does not start with ``dncnn.`` is drawn from a generator seeded with
the CRC32 of its key, so any implementation can rebuild the same checkpoint and compare
outputs (see the parity fixtures). ``dncnn.*`` takes real Noiseprint++ weights. Used by the
tests and the benchmarks; useful to anyone checking another implementation.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping

import torch


def recipe_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The recipe's tensor for ``key``."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith(".running_mean"):
        t = 0.1 * torch.randn(shape, generator=g)
    elif key.endswith(".running_var"):
        t = 0.5 + torch.rand(shape, generator=g)
    elif key.endswith(".weight") and len(shape) == 1:
        t = 1 + 0.1 * torch.randn(shape, generator=g)
    elif key.endswith(".bias"):
        t = 0.02 * torch.randn(shape, generator=g)
    else:
        t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return t.to(dtype)


def recipe_state_dict(
    shapes: Mapping[str, tuple[int, ...]], noiseprint: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A full state dict: recipe tensors for ``shapes``, ``dncnn.<k>`` from ``noiseprint[<k>]``."""
    out = {}
    for key, shape in shapes.items():
        if key.startswith("dncnn."):
            out[key] = noiseprint[key[len("dncnn.") :]].clone()
        else:
            out[key] = recipe_tensor(key, tuple(shape))
    return out


def manifest_shapes(manifest_path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a ``trufor_state_dict_manifest.json``."""
    with open(manifest_path) as f:
        return {k: tuple(s) for k, s, _ in json.load(f)["keys"]}
