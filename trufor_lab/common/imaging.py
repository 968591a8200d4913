"""Small array conversions used across the package (one copy each)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["tensor_to_numpy", "to_uint8"]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round and clip to 0..255 as ``uint8`` (pixel values computed in float)."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached CPU copy as numpy: float64 kept, every other dtype as float32."""
    t = t.detach().cpu()
    return (t if t.dtype == torch.float64 else t.float()).numpy()
