"""The forgery stream: photographed (simulated camera), forged, post-processed training
examples, cut to grid-aligned crops (the JPEG 8x8 grid kept)."""

from __future__ import annotations

import sys
import warnings
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from trufor_lab.common.errors import escaped
from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.inference.preprocess import load_image
from trufor_lab.lab.datasets import Dataset
from trufor_lab.lab.forgeries import FORGERIES, make_forgery, random_params
from trufor_lab.training.camera import Camera, downscale
from trufor_lab.training.config import TrainConfig, file_state

#: Local edits that change the processing trace (``ForgeryStream(traceable=True)``).
TRACEABLE_EDITS = ("resample", "blur", "sharpen")


def say_no_splices(source: object, n_images: int, cfg: TrainConfig) -> None:
    """A note when a run of the default forgery kinds (``cfg``) forges one pristine picture (from
    ``source``): a splice takes its donor from another picture, so the run makes none, which was
    unsaid (``kinds`` naming ``splice`` is said by :class:`ForgeryStream`, or refused)."""
    synthetic = cfg.forged_fraction > 0 and not (cfg.datasets and cfg.dataset_fraction >= 1)
    if n_images == 1 and synthetic and not cfg.camera and cfg.kinds is None:
        tqdm.write(
            escaped(
                f"note: {source}: one picture: no splices in this run (a splice takes its donor from "
                "another picture: give two at least)"
            ),
            file=sys.stderr,
        )


def pad_to(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    if h >= size and w >= size:
        return a
    pad = [(0, max(0, size - h)), (0, max(0, size - w))] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, mode="reflect" if min(h, w) > 1 else "edge")


def grid_crop(rng: np.random.Generator, arrays: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """The same random ``size`` crop of each array, starting at multiples of 8 (reflect-padded
    when smaller; the padding is not on the grid but only touches images smaller than a crop)."""
    arrays = [pad_to(a, size) for a in arrays]
    h, w = arrays[0].shape[:2]
    y = 8 * int(rng.integers(0, (h - size) // 8 + 1))
    x = 8 * int(rng.integers(0, (w - size) // 8 + 1))
    return [np.ascontiguousarray(a[y : y + size, x : x + size]) for a in arrays]


def random_flip(rng: np.random.Generator, arrays: Sequence[np.ndarray], flips: str) -> list[np.ndarray]:
    out = list(arrays)
    if flips in ("h", "hv") and rng.random() < 0.5:
        out = [a[:, ::-1] for a in out]
    if flips == "hv" and rng.random() < 0.5:
        out = [a[::-1] for a in out]
    return [np.ascontiguousarray(a) for a in out]


def pristine_rgb(a: Any, name: str) -> np.ndarray:
    """A pristine picture as RGB uint8, read as every image is (uint16 and float in [0, 1] scaled,
    grey repeated, alpha dropped: cast to uint8, a float picture was black, a 16-bit one noise);
    8-bit values in a wider integer type (``np.array`` of Python ints) taken as they are."""
    a = np.asarray(a)
    if a.dtype.kind in "iu" and a.dtype not in (np.uint8, np.uint16) and a.size and a.min() >= 0 and a.max() <= 255:
        a = a.astype(np.uint8)
    return load_image(a, name=name).rgb


#: What :func:`usable_samples` found in this process, by everything its check reads (a run's
#: phases read one dataset once each): the indices of the usable samples and the notes.
_CHECKED: dict[tuple, tuple[list[int], list[str]]] = {}


def _check_key(ds: Any) -> tuple | None:
    """What :func:`usable_samples` reads of ``ds``: its name, convention, and each sample's id,
    label and files (names, sizes, modification times; a mask redrawn in place is another).
    ``None`` for a dataset of another class than :class:`Dataset`, whose masks may read otherwise."""
    if type(ds) is not Dataset:
        return None
    files = [(p, file_state(p)) if p is not None else None for s in ds for p in (s.image_path, s.mask_path)]
    return ds.name, repr(ds.convention), tuple((s.id, s.label) for s in ds), tuple(files)


def usable_samples(ds: Any, progress: bool = True) -> list[tuple[Any, Any]]:
    """``(ds, sample)`` for each sample of ``ds`` a run can train on, every picture and mask read
    once before training (a mask of another size, an unreadable one, or a picture cut short stopped a
    run at the step that drew it, after hours), with a progress bar unless ``progress=False``; a
    :class:`Dataset` whose files have not changed since is not read again in this process (the next
    phase of a run). Pictures are decoded as a draw decodes them (a header alone passes a file cut
    short), and left out here rather than skipped when drawn: a dataset then trains exactly as it
    would without them (a skip at the draw would shift every later example of the run). Left
    out, with a note on stderr: a fake without a mask, a picture that cannot be read, a mask that
    cannot be used (the first reason of each named). Said too: most masks marking more than half the picture forged (an inverted
    convention trains the network to call the untouched part forged), and pictures that viewers
    show turned (EXIF orientation) whose masks fit both grids (a mask drawn on the turned view
    would be misaligned, unseen)."""
    name, key = getattr(ds, "name", "dataset"), _check_key(ds)
    if key in _CHECKED:
        keep, notes = _CHECKED[key]
        _say(name, notes)
        return [(ds, ds[i]) for i in keep]
    out, bad, unreadable, turned, maskless, most = [], [], [], [], 0, 0
    orientation = getattr(ds, "mask_orientation_note", lambda s: None)
    samples = list(ds)
    desc = f"checking {name}'s pictures and masks"
    with tqdm(samples, desc=desc, unit="image", disable=not progress or not samples) as bar:
        for i, s in enumerate(bar):
            if s.mask_path is None and s.label != 0:
                maskless += 1
                continue
            try:
                load_image(s.image_path)  # as _dataset_example reads it
            except (ValueError, OSError) as e:  # ImageError is a ValueError
                unreadable.append(str(e))
                continue
            if s.mask_path is None:
                out.append(i)
                continue
            try:
                forged = float(np.mean(ds.load_mask(s)))
            except (ValueError, OSError) as e:
                bad.append(str(e))
                continue
            most += forged > 0.5
            turned += [t for t in [orientation(s)] if t]
            out.append(i)
    # the dataset's own notes first (how its masks were read; an image without a mask is labelled
    # real, so a fake whose mask went missing trains as authentic): eval says them, a run did not
    notes = [line.removeprefix(f"{name}: ") for line in getattr(ds, "note_lines", list)()]
    if maskless:
        notes.append(f"{maskless} fake(s) without a mask left out of training")
    if unreadable:
        notes.append(f"{len(unreadable)} image(s) left out of training (cannot be read), e.g. {unreadable[0]}")
    if bad:
        notes.append(f"{len(bad)} image(s) left out of training (a mask that cannot be used), e.g. {bad[0]}")
    if turned:  # viewers show these turned: a mask drawn on that view trains misaligned, unsaid
        notes.append(f"{len(turned)} picture(s) with an EXIF orientation are trained as stored, e.g. {turned[0]}")
    masked = sum(samples[i].mask_path is not None for i in out)
    if masked and most * 2 > masked:
        notes.append(
            f"{most} of {masked} masks mark more than half the picture forged: check the mask convention "
            "(white = forged by default; MaskConvention(invert=True) reads black = forged)"
        )
    _say(name, notes)
    if key is not None:
        while len(_CHECKED) >= 8:  # the oldest first
            del _CHECKED[next(iter(_CHECKED))]
        _CHECKED[key] = (out, notes)
    return [(ds, samples[i]) for i in out]


def _say(name: str, notes: list[str]) -> None:
    for line in notes:
        tqdm.write(escaped(f"note: {name}: {line}"), file=sys.stderr)


class ForgeryStream:
    """Training examples ``(rgb uint8 (S, S, 3), mask bool (S, S), label)`` from pristine images
    (forged on the fly or kept pristine) and user datasets. Deterministic given the rng.

    ``camera=True`` treats the pristine images as *scenes*: each is downscaled by 2 once (to
    wash out its own processing traces) and every example is photographed by a random
    :class:`trufor_lab.training.camera.Camera`; a splice's donor is shot by another random camera, so
    spliced content carries a different in-camera trace, as in real splicing.
    ``kinds`` restricts the forgery kinds; ``traceable=True`` draws only variants that change
    the local processing trace (copy-move always rotated/rescaled, local edits only
    resample/blur/sharpen), i.e. what Noiseprint++ can in principle see. ``wide_cameras``: the
    cameras also vary in JPEG chroma subsampling and noise reduction (``Camera.random(wide=True)``).
    ``progress``: a progress bar while the datasets' masks are checked (:func:`usable_samples`).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        datasets: Sequence[Any] = (),
        *,
        forged_fraction: float = 0.5,
        dataset_fraction: float = 0.5,
        jpeg_prob: float = 0.7,
        jpeg_quality: tuple[int, int] = (65, 100),
        flips: str = "hv",
        camera: bool = False,
        kinds: Sequence[str] | None = None,
        traceable: bool = False,
        wide_cameras: bool = False,
        progress: bool = True,
    ) -> None:
        self.images = [pristine_rgb(a, f"pristine image {i}") for i, a in enumerate(images)]
        if camera:
            self.images = [downscale(a, 2) if min(a.shape[:2]) >= 128 else a for a in self.images]
        self.samples = [pair for ds in datasets for pair in usable_samples(ds, progress)]
        if not self.images and not self.samples:
            raise ValueError("no training images: give pristine images or datasets with masks")
        self.kinds = tuple(kinds or FORGERIES)
        bad = [k for k in self.kinds if k not in FORGERIES]
        if bad:
            raise ValueError(f"unknown forgery kind(s) {bad}; choose from {sorted(FORGERIES)}")
        if len(self.images) == 1 and not camera and "splice" in self.kinds and kinds is not None:
            why = "a splice needs a donor from another picture: give two pristine images at least (or camera=True)"
            if set(self.kinds) == {"splice"}:
                raise ValueError(f"kinds ('splice',) with one pristine image: {why}")
            warnings.warn(f"one pristine image: no splices drawn ({why})", stacklevel=2)
        self.forged_fraction = forged_fraction
        self.dataset_fraction = dataset_fraction if self.images else 1.0
        self.jpeg_prob, self.jpeg_quality, self.flips = jpeg_prob, jpeg_quality, flips
        self.camera, self.traceable, self.wide_cameras = camera, traceable, bool(wide_cameras)

    def example(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self.samples and rng.random() < self.dataset_fraction:
            rgb, mask, label = self._dataset_example(rng, size)
        else:
            rgb, mask, label, _ = self.synthetic(rng, size)
        rgb, mask = random_flip(rng, [rgb, mask], self.flips)
        return rgb, mask, label

    def _dataset_example(self, rng, size):
        ds, s = self.samples[int(rng.integers(len(self.samples)))]
        rgb = load_image(s.image_path).rgb
        mask = ds.load_mask(s) if s.mask_path is not None else np.zeros(rgb.shape[:2], bool)
        rgb, mask = grid_crop(rng, [rgb, mask], size)
        return rgb, mask, int(s.label and mask.any()) if s.mask_path is not None else int(s.label)

    def source(self, rng: np.random.Generator, i: int, size: int) -> np.ndarray:
        (img,) = grid_crop(rng, [self.images[i]], size)
        if self.camera:
            img = Camera.random(rng, wide=self.wide_cameras).capture(img, rng)
        return img

    def forge(self, rng: np.random.Generator, rgb: np.ndarray, donor: np.ndarray | None):
        pool = [k for k in self.kinds if donor is not None or k != "splice"]
        if not pool:  # never another kind than those asked for
            raise ValueError(f"kinds {self.kinds} need a donor image, and none was given")
        kind = pool[int(rng.integers(len(pool)))]
        params = random_params(kind, rng)
        if self.traceable and kind == "copy_move" and params["rotation"] == 0 and params["scale"] == 1:
            params = {
                "rotation": float(round(rng.uniform(-30, 30), 2)),
                "scale": float(round(rng.uniform(0.8, 1.25), 3)),
            }
        if self.traceable and kind == "local_edit" and params["op"] not in TRACEABLE_EDITS:
            params["op"] = TRACEABLE_EDITS[int(rng.integers(len(TRACEABLE_EDITS)))]
        return make_forgery(kind, rgb, donor, seed=int(rng.integers(2**31)), **params)

    def _donor(self, rng: np.random.Generator, i: int, size: int) -> np.ndarray | None:
        """A splice donor for image ``i``: another picture (the same one drew copy-moves instead of
        splices); with ``camera`` any scene, shot by another camera; ``None`` with one picture."""
        n = len(self.images)
        if self.camera:
            return self.source(rng, int(rng.integers(n)), size)
        if n < 2:
            return None
        return self.source(rng, (i + 1 + int(rng.integers(n - 1))) % n, size)

    def synthetic(
        self, rng: np.random.Generator, size: int, forged: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, int, str]:
        """One synthetic example ``(rgb, mask, label, kind)``; ``forged`` forces the label."""
        n = len(self.images)
        i = int(rng.integers(n))
        rgb = self.source(rng, i, size)
        mask = np.zeros((size, size), bool)
        label, kind = 0, "pristine"
        if forged if forged is not None else rng.random() < self.forged_fraction:
            f = self.forge(rng, rgb, self._donor(rng, i, size))
            rgb, mask, label, kind = f.image, f.mask, 1, f.kind
        if kind != "double_jpeg" and rng.random() < self.jpeg_prob:
            rgb = jpeg_compress(rgb, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
        return rgb, mask, label, kind
