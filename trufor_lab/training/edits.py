"""Global edits: what a photo editor or a phone's "enhance" does to a whole picture.

Tone (gamma), contrast, saturation, colour balance, sharpening (unsharp mask) and noise
reduction (a light blur), applied to the WHOLE image, pristine and forged alike, so that a
processed but authentic photo (a press picture, a graded holiday photo) is not taken for a
manipulated one: processing everywhere is not an inconsistency.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from trufor_lab.common.imaging import to_uint8
from trufor_lab.lab.perturb import Gamma

#: The edits :func:`global_edit` draws from, each with its parameter range.
EDITS = ("gamma", "contrast", "saturation", "balance", "sharpen", "smooth")


def global_edit(
    rgb: np.ndarray, rng: np.random.Generator, n: tuple[int, int] = (1, 3), kinds: Sequence[str] = EDITS
) -> tuple[np.ndarray, str]:
    """``n[0]``..``n[1]`` distinct edits of ``kinds`` (from :data:`EDITS`) in random order on an
    ``(H, W, 3)`` uint8 image; returns the edited image (same shape, uint8) and a description."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"global_edit needs an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    unknown = [k for k in kinds if k not in EDITS]
    if unknown or not kinds or not 0 < n[0] <= n[1]:
        raise ValueError(f"global_edit: kinds from {EDITS} and 0 < n[0] <= n[1], got {list(kinds)} and {n}")
    k = int(rng.integers(n[0], n[1] + 1))
    im = Image.fromarray(rgb)
    done = []
    for name in rng.permutation(list(kinds))[:k]:
        if name == "gamma":
            g = rng.uniform(0.75, 1.35)
            im = Image.fromarray(Gamma().apply(np.asarray(im), g))
            done.append(f"gamma{g:.2f}")
        elif name == "contrast":
            c = rng.uniform(0.8, 1.3)
            im = ImageEnhance.Contrast(im).enhance(c)
            done.append(f"contrast{c:.2f}")
        elif name == "saturation":
            c = rng.uniform(0.7, 1.4)
            im = ImageEnhance.Color(im).enhance(c)
            done.append(f"saturation{c:.2f}")
        elif name == "balance":
            gain = rng.uniform(0.92, 1.08, 3)
            im = Image.fromarray(to_uint8(np.asarray(im).astype(np.float32) * gain))
            done.append("balance")
        elif name == "sharpen":
            r, pct = rng.uniform(0.8, 2.5), int(rng.integers(40, 151))
            im = im.filter(ImageFilter.UnsharpMask(radius=r, percent=pct, threshold=int(rng.integers(0, 4))))
            done.append(f"sharpen{r:.1f}/{pct}")
        else:
            s = rng.uniform(0.4, 0.9)
            im = im.filter(ImageFilter.GaussianBlur(s))
            done.append(f"smooth{s:.2f}")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8)), "+".join(done)
