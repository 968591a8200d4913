"""Pristine training images: procedurally generated scenes, the scikit-image photographs and
folders of the user's own pictures (held-out names and seeds kept apart)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from trufor_lab.common.paths import find_images
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.lab.datasets import mask_lookalikes

#: scikit-image samples kept out of training (held-out sources for :func:`heldout_set`).
HELDOUT_SKIMAGE = ("astronaut", "coffee", "camera")
_SKIMAGE_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "logo",
    "stereo_motorcycle",
    "camera",
    "moon",
    "page",
    "text",
    "coins",
    "brick",
    "grass",
    "gravel",
    "clock",
    "cell",
)
#: Synthetic scene seeds at or above this value are reserved for held-out data.
HELDOUT_SCENE_SEED = 1_000_000


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def synthetic_scene(size: int = 256, seed: int = 0) -> np.ndarray:
    """A random camera-like RGB scene (uint8): smooth background, shapes, texture, optics blur,
    sensor noise. Deterministic in ``seed``."""
    from scipy import ndimage  # lazy: scipy is slow to import; only this function needs it

    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    img = np.zeros((s, s, 3), np.float32)
    base = rng.uniform(0.1, 0.9, 3)
    grad = rng.uniform(-0.4, 0.4, (2, 3))
    img += base + xx[..., None] * grad[0] + yy[..., None] * grad[1]
    low = ndimage.gaussian_filter(rng.normal(size=(s, s, 3)).astype(np.float32), (s / 8, s / 8, 0))
    img += low / (low.std() + 1e-6) * rng.uniform(0.02, 0.1)
    for _ in range(int(rng.integers(3, 12))):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.04, 0.3, 2)
        colour = rng.uniform(0, 1, 3)
        if rng.random() < 0.5:
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        else:
            m = (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
        shade = 1 + 0.3 * (yy - cy)[..., None]
        img[m] = (colour * shade)[m]
    tex = ndimage.gaussian_filter(rng.normal(size=(s, s)).astype(np.float32), rng.uniform(0.7, 3))
    img += (tex / (tex.std() + 1e-6) * rng.uniform(0.0, 0.06))[..., None]
    img = ndimage.gaussian_filter(img, (rng.uniform(0.3, 1.2),) * 2 + (0,))
    img += rng.normal(0, rng.uniform(0.002, 0.02), img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def skimage_rgb(name: str) -> np.ndarray | None:
    import skimage.data  # lazy: scikit-image is slow to import; only this function needs it

    try:
        a = getattr(skimage.data, name)()
    except (ImportError, OSError, ValueError):  # file not shipped offline (pooch missing or download refused)
        return None
    a = np.asarray(a[0] if isinstance(a, tuple) else a)
    if a.dtype != np.uint8:
        return None
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def builtin_images(split: str = "train", n_scenes: int = 24, scene_size: int = 384) -> list[np.ndarray]:
    """Offline pristine sources: scikit-image samples plus ``n_scenes`` synthetic scenes.

    ``split="test"`` gives the held-out ones (:data:`HELDOUT_SKIMAGE`, scene seeds from
    :data:`HELDOUT_SCENE_SEED`), disjoint from ``"train"``. The arrays are made once per
    process and shared read-only: copy one to change it.
    """
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    return list(_builtin_images(split, int(n_scenes), int(scene_size)))


@functools.lru_cache(maxsize=4)
def _builtin_images(split: str, n_scenes: int, scene_size: int) -> tuple[np.ndarray, ...]:
    """Made once per process (24 scenes take ~10 s on two cores; ``train_phases`` asks three
    times), read-only so that no caller changes another's."""
    names = [n for n in _SKIMAGE_NAMES if (n in HELDOUT_SKIMAGE) == (split == "test")]
    out = [a for a in map(skimage_rgb, names) if a is not None]
    base = HELDOUT_SCENE_SEED if split == "test" else 0
    out += [synthetic_scene(scene_size, base + i) for i in range(n_scenes)]
    for a in out:
        a.flags.writeable = False
    return tuple(out)


def pristine_files(folder: str | os.PathLike, skip: str | os.PathLike | None = None) -> list[Path]:
    """The pictures read from a pristine ``folder`` (recursive): its images, not those under
    ``skip`` (a run's own folder inside it)."""
    return find_images(folder, skip=skip)[0]


#: Folder names that hold masks, not pictures (a benchmark's layout).
_MASK_FOLDERS = frozenset({"mask", "masks", "gt", "groundtruth", "ground_truth"})


def _a_mask_among(folder: str | os.PathLike, files: list[Path]) -> str | None:
    """How the first mask among a pristine folder's pictures looks like one (``x_mask.png``
    beside ``x.jpg``, anything in a ``masks`` subfolder), or ``None``."""
    twins = {mask: image for mask, image, _ in mask_lookalikes(files)}
    for p in files:
        inside = Path(os.path.relpath(p, folder)).parts[:-1]
        if any(part.lower() in _MASK_FOLDERS for part in inside):
            return f"{p}: in a folder of masks"
        if p in twins:
            return f"{p}: looks like the mask of {twins[p].name}"
    return None


def read_folder(folder: str | os.PathLike, skip: str | os.PathLike | None = None) -> list[np.ndarray]:
    """The pictures of :func:`pristine_files` as RGB uint8 arrays; one that cannot be read is
    left out with a note (one bad file stopped the whole run), none readable is an error."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such folder" if not os.path.exists(folder) else f"{folder}: not a folder")
    files = pristine_files(folder, skip)
    if not files:
        raise ValueError(f"{folder}: no images found")
    mask = _a_mask_among(folder, files)
    if mask is not None:  # a forged dataset given as pristine: its fakes trained as authentic, unsaid
        raise ValueError(
            f"{mask}: a folder of pristine pictures holds no masks (its forgeries would be trained as "
            "authentic, the masks as pictures); give pristine pictures only, and forgeries with their masks "
            "as --masks DIR or --mask-suffix S on the command line, TrainConfig(datasets=[folder_dataset(images, "
            "masks)]) in Python"
        )
    images = []
    for p in files:
        try:
            images.append(load_image(p).rgb)
        except ImageError as e:
            tqdm.write(f"note: {e}; left out of training", file=sys.stderr)
    if not images:
        raise ValueError(f"{folder}: none of its {len(files)} images can be read")
    return images
