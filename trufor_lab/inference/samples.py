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
_SKIMAGE = {
    "pristine1.jpg": "astronaut",
    "pristine2.jpg": "coffee",
    "tampered1.png": "chelsea",
    "tampered2.png": "rocket",
}


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
    return image[y0 : y0 + max_side, x0 : x0 + max_side].copy()


#: Real camera photos kept in a source checkout (CC BY-SA 4.0; see their ATTRIBUTION.md). They are
#: the demo model's test cameras: never used to train or calibrate it.
REAL_PHOTOS = {"canon": "IMG_1054.JPG", "whatsapp": "IMG-20191006-WA0002.jpg"}


def real_photos_dir() -> Path | None:
    """``tests/data/real_photos`` of a source checkout, if present (not in an installed wheel)."""
    d = Path(__file__).resolve().parents[2] / "tests" / "data" / "real_photos"
    return d if all((d / f).is_file() for f in REAL_PHOTOS.values()) else None


def real_photo(name: str, max_side: int | None = None) -> tuple[np.ndarray, str] | None:
    """(RGB uint8, description) of a real camera photo (``"canon"`` or ``"whatsapp"``), grid-aligned
    top-left crop to ``max_side``; ``None`` outside a source checkout."""
    if name not in REAL_PHOTOS:
        raise ValueError(f"unknown real photo {name!r}; choose from {sorted(REAL_PHOTOS)}")
    d = real_photos_dir()
    if d is None:
        return None
    rgb = load_image(d / REAL_PHOTOS[name]).rgb
    crop = rgb if not max_side else rgb[:max_side, :max_side].copy()
    return crop, f"real photo {REAL_PHOTOS[name]} ({name}; CC BY-SA 4.0, tests/data/real_photos/ATTRIBUTION.md)"
