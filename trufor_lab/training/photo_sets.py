"""Real photos as data: the photos of a folder (:func:`scan_photos`) and the scikit-image
photographs (:func:`skimage_photos`) as :class:`Photo` records with a camera identity, and
their split by camera (:func:`split_by_camera`). :mod:`trufor_lab.training.photos` re-exports
all of it and turns the photos into training examples."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from trufor_lab.common.image_files import DAMAGED_FILE_ERRORS, open_image, pixel_limit
from trufor_lab.common.paths import find_images
from trufor_lab.common.unreadable import unrecognised_reason
from trufor_lab.inference.preprocess import load_image
from trufor_lab.training.scenes import skimage_rgb

#: scikit-image samples that are photographs (not drawings, micrographs or renderings).
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "camera",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
    "page",
)
#: Split of the fetched data (everything else is training). Test = whole cameras never seen in
#: training or calibration; validation (calibration) = held-out photos (``photo:<name>``) of
#: the two training cameras with EXIF, since only three real cameras can be shared here.
DEFAULT_SPLIT = {
    "validation": ("photo:IMG_20200827_231612", "photo:fujifilm#1"),
    "test": (
        "Canon PowerShot SX530 HS",
        "unknown:IMG-20191006-WA0002",
        "skimage:astronaut",
        "skimage:coffee",
        "skimage:camera",
    ),
}


@dataclass(frozen=True)
class Photo:
    """One real photo (or one frame of an MPO): where it is and which camera made it
    (``exif_camera``: its EXIF make + model, kept when the camera is its folder, else ``None``)."""

    source: str  # file path, or "skimage:<name>"
    camera: str
    name: str
    frame: int = 0
    size: tuple[int, int] = (0, 0)  # (height, width)
    exif_camera: str | None = None

    def load(self) -> np.ndarray:
        """Decoded uint8 RGB pixels at native resolution, stored orientation (no EXIF rotation),
        read as every image is (:func:`~trufor_lab.inference.preprocess.load_image`: 16-bit
        scaled, where Pillow's RGB conversion clipped a 16-bit grey photo to near white)."""
        if self.source.startswith("skimage:"):
            a = skimage_rgb(self.source.split(":", 1)[1])
            if a is None:
                raise ValueError(f"{self.source}: not available in this scikit-image install")
            return a
        if self.frame == 0:
            return load_image(self.source).rgb  # JPEG grid kept: EXIF orientation not applied
        name = f"{self.source} (frame {self.frame})"
        try:
            with open_image(self.source) as im:
                im.seek(self.frame)
                return load_image(im, name=name).rgb
        except (OSError, EOFError) as e:
            raise ValueError(f"{name}: cannot decode ({e})") from None


def _exif_camera(im: Image.Image, name: str = "a photo") -> str | None:
    exif = im.getexif()
    # spaces collapsed: 'Canon  EOS 80D' (two spaces) is 'Canon EOS 80D'
    make, model = (" ".join(str(exif.get(t, "")).replace("\x00", " ").split()) for t in (271, 272))
    if not model:
        if make:
            warnings.warn(
                f"{name}: EXIF names the make ({make}) but no model: "
                "taken as a camera of its own (name it in a split if it belongs with others)",
                stacklevel=2,
            )
        return None
    return model if model.lower().startswith(make.lower().split(" ")[0]) or not make else f"{make} {model}"


def _pixel_digest(path: Path, frame: int) -> str:
    """A digest of one frame's decoded pixels, cheaply: a JPEG (or MPO) decoded at 1/8 scale
    (Pillow's draft mode), any other image whole; its full size and mode included."""
    with pixel_limit(), open_image(path) as im:
        im.seek(frame)
        size = im.size
        if im.format in ("JPEG", "MPO"):
            im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        im.load()
        return hashlib.sha256(f"{size}{im.mode}".encode() + im.tobytes()).hexdigest()


def _few(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def scan_photos(folder: str | Path, min_side: int = 256, camera_folders: bool = False) -> list[Photo]:
    """Every photo (each MPO frame separately) under ``folder`` with at least ``min_side`` pixels
    on its short side, sorted by path (those left out are said in one warning).

    Camera: with ``camera_folders`` (photos organised one sub-folder per camera), the first
    sub-folder below ``folder`` (``folder:<name>``) for every photo in one (its EXIF camera kept
    as ``exif_camera``: one EXIF camera in several folders is warned about, and a test camera's
    EXIF identity elsewhere is refused by :func:`split_by_camera`); otherwise the EXIF
    make/model, else ``unknown:<photo name>`` (each unknown photo its own camera). Names are
    file stems; two photos with the same stem in different folders are named by their relative
    paths instead, so that no two photos (nor two unknown cameras) share a name. A copy of a
    photo (the same bytes, or the same pixels with other metadata, e.g. its EXIF stripped) is
    left out with a warning naming both: one photo must not be in two splits. An image Pillow
    refuses as a decompression bomb, or cannot decode (a cut file), is left out with a warning."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    found: list[tuple[Path, int, int, str | None, tuple[int, int]]] = []
    files, unreadable = find_images(root)  # not rglob: it skips a folder it cannot read, unsaid
    if unreadable:  # a camera's folder left out would change the split without a word
        raise ValueError(unreadable[0])
    seen: dict[str, Path] = {}  # file digest -> the first path with those bytes
    pixels: dict[str, str] = {}  # pixel digest -> the first photo with those pixels
    small: list[str] = []
    for p in files:  # every image suffix the project reads (AVIF, HEIC, PPM ... were left out unsaid)
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest in seen:  # 'IMG_1.jpg' and 'IMG_1 (1).jpg': one photo, which must not be in two splits
            warnings.warn(f"{p}: the same file as {seen[digest]}: left out (one photo, one split)", stacklevel=2)
            continue
        seen[digest] = p
        try:
            frames = []
            with pixel_limit(), open_image(p) as im:
                n = getattr(im, "n_frames", 1) if im.format == "MPO" else 1  # a GIF's frames, a PSD's layers: one
                for f in range(n):
                    im.seek(f)
                    w, h = im.size
                    if min(h, w) < min_side:
                        small.append(p.name if n == 1 else f"{p.name}#{f}")
                        continue
                    frames.append((f, _exif_camera(im, str(p)), (h, w)))
            for f, exif_cam, size in frames:
                label = str(p) if n == 1 else f"{p} (frame {f})"
                px = _pixel_digest(p, f)
                if px in pixels:  # an exported or shared copy: its EXIF stripped, same pixels
                    warnings.warn(
                        f"{label}: the same pixels as {pixels[px]}: left out (one photo, one split)", stacklevel=2
                    )
                    continue
                pixels[px] = label
                found.append((p, f, n, exif_cam, size))
        except UnidentifiedImageError:  # HEIC without its plugin, a file named as an image that is none
            warnings.warn(f"{p}: left out ({unrecognised_reason(str(p))})", stacklevel=2)
        except ValueError as e:  # pixel_limit's: a decompression bomb
            warnings.warn(f"{p}: left out ({e})", stacklevel=2)
        except DAMAGED_FILE_ERRORS as e:  # a cut or damaged file (a palette PNG without PLTE): said, left out
            warnings.warn(f"{p}: left out (unreadable image: {' '.join(str(e).split())[:120]})", stacklevel=2)
    if small:
        warnings.warn(
            f"{root}: {len(small)} photo(s) with a short side < {min_side} px left out: {_few(small)}", stacklevel=2
        )
    if not found:
        raise ValueError(f"{root}: no photos with a short side >= {min_side}")
    stems: dict[str, int] = {}
    bare: dict[str, int] = {}  # relative paths without their extension: a.jpg beside a.png
    for p, f, n, _, _ in found:
        stems[p.stem] = stems.get(p.stem, 0) + (f == 0)
        key = p.relative_to(root).with_suffix("").as_posix()
        bare[key] = bare.get(key, 0) + (f == 0)
    # one camera however its EXIF spells it: 'samsung SM-G991B' and 'SAMSUNG SM-G991B'
    spelling: dict[str, str] = {}
    for *_, exif_cam, _ in found:
        if exif_cam is not None:
            spelling.setdefault(exif_cam.casefold(), exif_cam)
    out = []
    for p, f, n, exif_cam, size in found:
        exif_cam = None if exif_cam is None else spelling[exif_cam.casefold()]
        rel = p.relative_to(root)
        key = rel.with_suffix("").as_posix()
        base = p.stem if stems[p.stem] == 1 else key if bare[key] == 1 else rel.as_posix()
        name = base if n == 1 else f"{base}#{f}"
        if camera_folders and len(rel.parts) >= 2:
            cam = f"folder:{rel.parts[0]}"
        else:
            cam = exif_cam or f"unknown:{name}"
        out.append(Photo(str(p), cam, name, f, size, exif_cam))
    spans: dict[str, set[str]] = {}
    for ph in out:
        if ph.exif_camera is not None:
            spans.setdefault(ph.exif_camera, set()).add(ph.camera)
    for exif_cam, cams in spans.items():
        if len(cams) > 1:  # one camera filed under two folders: two 'cameras' a split could part
            warnings.warn(
                f"{root}: the EXIF camera {exif_cam!r} is in {len(cams)} camera folders {sorted(cams)}: "
                "one camera, to be held out whole (a test camera's EXIF identity elsewhere is refused)",
                stacklevel=2,
            )
    return out


def skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS, min_side: int = 256) -> list[Photo]:
    """The scikit-image photographs available offline with at least ``min_side`` pixels on their
    short side (as :func:`scan_photos`: 'page' is 191 px high), each its own (unknown) camera.
    They are named as in :data:`SKIMAGE_PHOTOS` (``photo:camera`` is the scikit-image picture:
    a photo of one's own of the same name is refused by :func:`split_by_camera`)."""
    out = []
    for n in names:
        a = skimage_rgb(n)
        if a is not None and min(a.shape[:2]) >= min_side:
            out.append(Photo(f"skimage:{n}", f"skimage:{n}", n, 0, a.shape[:2]))
    return out


def split_by_camera(
    photos: Iterable[Photo], split: dict[str, Sequence[str]] | None = None, required: Iterable[str] = ()
) -> dict[str, list[Photo]]:
    """``{"train", "validation", "test"}`` lists: a camera named in ``split`` goes wholly to that
    split, a photo named ``photo:<name>`` to its split, everything else to ``"train"``. A name
    in two splits is an error, and so is a test camera with photos elsewhere (by camera or by
    EXIF identity), two photos of one name, and a name of ``required`` (the names a user gave)
    that matches no photo (any other such name is a warning)."""
    split = DEFAULT_SPLIT if split is None else split
    unknown = sorted(set(split) - {"train", "validation", "test"})
    if unknown:  # "Test" would take its cameras out of training and leave no test set
        raise ValueError(f"unknown split name(s) {unknown}: use 'train', 'validation' and 'test'")

    def key(name: str) -> str:  # as EXIF spellings vary: letter case and runs of spaces
        return " ".join(name.split()).casefold()

    where: dict[str, str] = {}
    given: dict[str, str] = {}
    for s, cams in split.items():
        for c in cams:
            if key(c) in where and where[key(c)] != s:
                raise ValueError(f"camera {c!r} is in both {where[key(c)]!r} and {s!r}")
            where[key(c)], given[key(c)] = s, c
    out: dict[str, list[Photo]] = {"train": [], "validation": [], "test": []}
    photos = list(photos)
    named: dict[str, Photo] = {}
    for p in photos:  # 'camera.jpg' beside scikit-image's 'camera': photo:camera would take both
        other = named.setdefault(key(p.name), p)
        if other is not p:
            raise ValueError(
                f"two photos are named {p.name!r} ({other.source} and {p.source}): rename one "
                f"(scikit-image pictures are named {', '.join(SKIMAGE_PHOTOS[:3])} ...)"
            )
    for p in photos:
        out.setdefault(where.get(key(f"photo:{p.name}"), where.get(key(p.camera), "train")), []).append(p)
    known = {key(f"photo:{p.name}") for p in photos} | {key(p.camera) for p in photos}
    unmatched = sorted(given[c] for c in where if c not in known)
    missing = sorted({n for n in required if key(n) not in known})
    if missing:  # a typo, or an EXIF model without its make: that camera would train
        raise ValueError(f"split name(s) {missing} match no photo (cameras here: {sorted({p.camera for p in photos})})")
    if split.get("test") and not out["test"]:
        raise ValueError(
            f"no photo matches the test split {list(split['test'])} (cameras here: {sorted({p.camera for p in photos})})"
        )
    if unmatched:
        warnings.warn(f"split names that match no photo: {unmatched}", stacklevel=2)
    test_ids = {key(c) for p in out["test"] for c in (p.camera, p.exif_camera) if c}
    leaked = [
        p.name
        for s, ps in out.items()
        if s != "test"
        for p in ps
        if {key(p.camera), key(p.exif_camera or "")} & test_ids
    ]
    if leaked:
        raise ValueError(f"test cameras must be held out whole (by camera or EXIF identity); also elsewhere: {leaked}")
    test_unknown = sorted(p.camera for p in out["test"] if p.camera.startswith("unknown:"))
    train_unknown = [p.name for p in out["train"] if p.camera.startswith("unknown:")]
    if test_unknown and train_unknown:  # no EXIF: nothing tells whether they are one camera
        warnings.warn(
            f"test camera(s) without EXIF ({_few(test_unknown, 3)}) and {len(train_unknown)} training photo(s) "
            f"without EXIF ({_few(train_unknown, 3)}): they may be one camera; name them in a split if so",
            stacklevel=2,
        )
    return out
