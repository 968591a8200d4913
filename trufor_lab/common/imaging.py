"""Small array conversions used across the package (one copy each)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["resize", "tensor_to_numpy", "to_uint8"]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round and clip to 0..255 as ``uint8`` (pixel values computed in float)."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached CPU copy as numpy: float64 kept, every other dtype as float32."""
    t = t.detach().cpu()
    return (t if t.dtype == torch.float64 else t.float()).numpy()


_PIL_FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


def resize(image: np.ndarray, size_hw: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize an ``(H, W[, C])`` uint8 image, or an ``(H, W)`` float map (as float32), with PIL.

    PIL antialiases when shrinking (except ``nearest``). Only for display and for the forgery
    lab's deliberate resampling: resizing erases the traces TruFor reads.
    """
    if method not in _PIL_FILTERS:
        raise ValueError(f"unknown resize method {method!r}; choose from {sorted(_PIL_FILTERS)}")
    a = np.ascontiguousarray(image if image.dtype == np.uint8 else image.astype(np.float32))
    h, w = size_hw
    return np.asarray(Image.fromarray(a).resize((w, h), _PIL_FILTERS[method]))
