"""Sample images for notebooks and demos: the official TruFor samples when present, else
images that scikit-image ships (always offline).

The official samples (``pristine1.jpg``, ``pristine2.jpg``, ``tampered1.png``,
``tampered2.png``) are looked up in ``$TRUFOR_LAB_SHARED/images`` and ``../shared/images``
next to the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trufor_lab.inference.preprocess import load_image

OFFICIAL = ("pristine1.jpg", "pristine2.jpg", "tampered1.png", "tampered2.png")
_SKIMAGE = {"pristine1.jpg": "astronaut", "pristine2.jpg": "coffee", "tampered1.png": "chelsea",
            "tampered2.png": "rocket"}


def official_dir() -> Path | None:
    """Folder holding the official sample images, if any."""
    cands = []
    if os.environ.get("TRUFOR_LAB_SHARED"):
        cands.append(Path(os.environ["TRUFOR_LAB_SHARED"]) / "images")
    cands.append(Path(__file__).resolve().parents[3] / "shared" / "images")
    return next((c for c in cands if (c / OFFICIAL[0]).is_file()), None)


def sample(name: str, max_side: int | None = None) -> tuple[np.ndarray, str]:
    """(RGB uint8 image, description) for an official sample name, or a scikit-image stand-in.

    ``max_side`` centre-crops (never resizes: resizing would erase the traces TruFor reads).
    """
    d = official_dir()
    if name not in OFFICIAL and not (d and (d / name).is_file()):
        raise ValueError(f"unknown sample {name!r}; choose from {OFFICIAL}")
    if d is not None and (d / name).is_file():
        rgb, desc = load_image(d / name).rgb, f"official sample {name}"
    else:
        from skimage import data  # lazy: scikit-image is slow to import; only this function needs it
        rgb = getattr(data, _SKIMAGE[name])()
        desc = f"scikit-image '{_SKIMAGE[name]}' (official sample {name} not found)"
    return center_crop(rgb, max_side), desc


def center_crop(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Crop to at most ``max_side`` per side around the centre, keeping the 8x8 grid phase."""
    if not max_side:
        return image
    h, w = image.shape[:2]
    y0 = max(0, (h - max_side) // 2) // 8 * 8
    x0 = max(0, (w - max_side) // 2) // 8 * 8
    return image[y0:y0 + max_side, x0:x0 + max_side].copy()
