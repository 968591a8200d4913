"""Sample images for notebooks and demos: the official TruFor samples when present, else
images that scikit-image ships (always offline).

The official samples (``pristine1.jpg``, ``pristine2.jpg``, ``tampered1.png``,
``tampered2.png``) are looked up in ``$TRUFOR_LAB_SHARED/images`` and ``../shared/images``
next to the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from trufor_lab.common.arrays import record_repr
from trufor_lab.inference.preprocess import load_image

OFFICIAL = ("pristine1.jpg", "pristine2.jpg", "tampered1.png", "tampered2.png")
_SKIMAGE = {
    "pristine1.jpg": "astronaut",
    "pristine2.jpg": "coffee",
    "tampered1.png": "chelsea",
    "tampered2.png": "rocket",
}


@dataclass(frozen=True, eq=False)  # arrays do not compare to one bool
class SampleImage:
    """A sample picture. ``name`` is what to call it: the official file name, or the stand-in's
    own name (a stand-in never borrows the official name); ``official`` whether it is the official
    file. Unpacks as ``rgb, desc = sample(...)``."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    rgb: np.ndarray
    desc: str
    name: str
    official: bool

    def __iter__(self) -> Iterator[Any]:
        return iter((self.rgb, self.desc))

    def __getitem__(self, i: int) -> Any:  # sample(...)[0], as with the (rgb, desc) tuple it was
        return (self.rgb, self.desc)[i]


def official_dirs() -> list[Path]:
    """Where the official samples are looked for, in order."""
    cands = []
    if os.environ.get("TRUFOR_LAB_SHARED"):
        cands.append(Path(os.environ["TRUFOR_LAB_SHARED"]) / "images")
    cands.append(Path(__file__).resolve().parents[3] / "shared" / "images")
    return cands


def official_path(name: str) -> Path | None:
    """The official sample ``name`` in the first folder of :func:`official_dirs` that holds it."""
    return next((d / name for d in official_dirs() if (d / name).is_file()), None)


def sample(name: str, max_side: int | None = None) -> SampleImage:
    """An official sample by name, else the scikit-image stand-in named after itself.

    ``max_side`` centre-crops (never resizes: resizing would erase the traces TruFor reads).
    """
    if name not in OFFICIAL:
        raise ValueError(f"unknown sample {name!r}; choose from {OFFICIAL}")
    path = official_path(name)
    if path is not None:
        return SampleImage(center_crop(load_image(path).rgb, max_side), f"official sample {name}", name, True)
    from skimage import data  # lazy: scikit-image is slow to import; only this function needs it

    stand_in = _SKIMAGE[name]
    where = ", ".join(str(d) for d in official_dirs())
    desc = f"scikit-image '{stand_in}', a stand-in: official sample {name} not found (looked in {where})"
    return SampleImage(center_crop(getattr(data, stand_in)(), max_side), desc, stand_in, False)


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
