"""Benchmark loaders: the official TruFor list format, each benchmark's mask convention, folders.

One cohesive thing: samples, mask conventions and the loaders that attach a convention to each
benchmark only make sense together.

A dataset is a sequence of :class:`Sample` (image, mask or None, label 0 real / 1 fake). Masks
are read lazily by :meth:`Dataset.load_mask`, which applies the dataset's
:class:`MaskConvention` and returns a boolean array with True = forged, the form
:func:`trufor_lab.lab.metrics.localization_metrics` takes. :meth:`Dataset.validate` checks every
file up front and returns the problems instead of raising.

List format (``test_docker/data_test/*_fake.txt`` / ``*_real.txt`` in grip-unina/TruFor): one
``image,mask`` per line for fakes (``mask`` may be ``None``: a fake without ground truth, used
for detection only; a line with the image alone means the same), one image per line for reals;
paths relative to the dataset root; blank lines and ``#`` comments are ignored. Those list files
are not shipped here: pass them, or a ``list_dir`` holding them.

All errors are :class:`DatasetError` (a ValueError) with a one-line message naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image, UnidentifiedImageError

from trufor_lab.common.paths import IMAGE_EXTENSIONS, find_images
from trufor_lab.common.image_files import (
    DAMAGED_FILE_ERRORS,
    open_unwarned,
    orientation_tag,
    stored_pixels,
    stored_size,
)
from trufor_lab.common.jpeg_cut import too_many_scans
from trufor_lab.inference.preprocess import orientation_note

__all__ = [
    "BUILTIN_DATASETS",
    "ColourRule",
    "Dataset",
    "DatasetError",
    "DatasetRegistry",
    "DatasetSpec",
    "IMAGE_EXTENSIONS",
    "MaskConvention",
    "SOFT_EDGES",
    "REGISTRY",
    "Sample",
    "folder_convention",
    "folder_dataset",
    "folder_name",
    "get_spec",
    "load_dataset",
    "read_list",
    "read_mask",
    "register_dataset",
]

"""Extensions :func:`folder_dataset` treats as images and masks (case-insensitive)."""

PathLike = str | Path


class DatasetError(ValueError):
    """A dataset problem; the message is one line naming the file and the reason."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------------
# samples and mask conventions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One image of a benchmark. ``label``: 0 real, 1 fake. ``id``: the path as listed."""

    image_path: Path
    mask_path: Path | None
    label: int
    dataset: str
    id: str


@dataclass(frozen=True)
class ColourRule:
    """Colour-coded masks: each pixel takes the nearest ``palette`` colour (RGB distance).

    Pixels nearest a colour whose index is in ``forged`` are forged. A pixel farther than
    ``tolerance`` from every palette colour is off-palette (JPEG blends along region edges);
    more than ``max_off_palette`` of them (a fraction) means the file is not such a mask.
    """

    palette: tuple[tuple[int, int, int], ...]
    forged: tuple[int, ...]
    tolerance: float = 80.0
    max_off_palette: float = 0.05


#: The most mid-grey a mask may hold when read at a level given for its soft edges: beyond it the
#: file is not a mask (a photo left among the masks was scored as one).
SOFT_EDGES = 0.5


@dataclass(frozen=True)
class MaskConvention:
    """How a benchmark's mask file encodes forged pixels, as explicit data.

    * grey (default): the mask is converted to 8-bit luminance (PIL ``L``, as the official
      scripts do) or, with ``channel``, one RGB channel is taken; a pixel is *on* when its
      value is ``> threshold``. A 16-bit mask with levels above 255 reads level ``v`` as
      ``ceil(v / 257)``: on when ``v > 257 * floor(threshold)``, at the default any nonzero
      level. ``threshold=None`` is strict: the file must hold only 0/255 or 0/1 levels. With a
      threshold, more than ``max_grey`` (a fraction) of mid-grey pixels (32..223) means the file
      is not a binary mask.
    * ``colour``: a :class:`ColourRule` decides *on* instead.
    * ``invert``: forged = not on (masks drawn black on white).

    The default, ``threshold=0.1`` (any nonzero grey), is the official scripts' ``gt > 0.1``.
    """

    invert: bool = False
    threshold: float | None = 0.1
    channel: int | None = None
    colour: ColourRule | None = None
    max_grey: float = 0.05

    def __post_init__(self) -> None:
        if self.channel is not None and self.channel not in (0, 1, 2):
            raise ValueError(f"channel must be 0, 1 or 2 (R, G, B), got {self.channel}")
        if self.colour is not None and self.channel is not None:
            raise ValueError("a mask convention takes a channel or a colour rule, not both")

    @property
    def needs_rgb(self) -> bool:
        return self.colour is not None or self.channel is not None

    def apply(self, pixels: np.ndarray, source: PathLike = "mask") -> np.ndarray:
        """Boolean forged map from 8-bit ``pixels`` (H, W) or, for colour/channel, (H, W, 3)."""
        a = np.asarray(pixels)
        if self.colour is not None:
            on = self._colour(a, source)
        else:
            if self.channel is not None:
                if a.ndim != 3 or a.shape[2] < 3:
                    raise DatasetError(f"{source}: expected an RGB mask, got shape {a.shape}")
                a = a[..., self.channel]
            if a.ndim != 2:
                raise DatasetError(f"{source}: expected a single-channel mask, got shape {a.shape}")
            on = self._grey(a, source)
        return on ^ self.invert

    def check_lossy(self, pixels: np.ndarray, source: PathLike = "mask", kind: str = "JPEG") -> None:
        """Refuse a lossy-saved mask (``kind``: JPEG, lossy WebP, JPEG 2000) whose compression
        noise a low threshold would read as marked (the default, any nonzero level, turned a 4 %
        ring or more of pristine pixels forged).

        The level that splits the file into its two drawn levels (Otsu's, on the histogram: about
        127 for white on black, 38 for a red mask read as grey) is the threshold that reads it as
        drawn; noise is what lies between the convention's threshold and that level."""
        if self.colour is not None:
            return  # a colour rule has a tolerance
        a = pixels if self.channel is None or pixels.ndim == 2 else pixels[..., self.channel]
        top = int(a.max()) if a.size else 0
        if 0 < top < 32:  # a 0/1 mask: the noise is as large as the drawing and no level tells them apart
            raise DatasetError(
                f"{source}: a {kind}-saved mask drawn at levels 0-{top} (a 0/1 mask?): compression noise "
                "of that size moves its edges and no threshold recovers them; save masks losslessly (PNG)"
            )
        if self.threshold is None:
            return  # strict masks refuse noise anyway
        counts = np.bincount(a.ravel().astype(np.intp), minlength=256)[:256].astype(np.float64)
        if np.count_nonzero(counts) < 2:
            return  # one level (nothing or everything forged): no noise to find
        split = _otsu(counts)
        first = int(np.floor(self.threshold)) + 1
        # noise of the dark level read as on (threshold below the split), or of the bright level
        # read as off (above it: a level given at 127 read a red mask, grey 76, as empty)
        low, high = (first, split) if split >= first else (split + 1, first - 1)
        noise = int(counts[low : high + 1].sum())
        if noise > 0.001 * a.size:  # a few stray pixels (a quality-100 save) change no metric
            on = split >= first
            meaning = (
                ("pristine" if on else "forged") + " (this convention is inverted)"
                if self.invert
                else ("forged" if on else "pristine")
            )
            raise DatasetError(
                f"{source}: a {kind}-saved mask: {noise} pixel(s) of compression noise (levels "
                f"{low}-{high}) would count as {meaning}; save masks losslessly (PNG) or read "
                f"them at the level between the two drawn ones (trufor-lab eval --mask-threshold {split})"
            )

    def _grey(self, a: np.ndarray, source: PathLike) -> np.ndarray:
        counts = _level_counts(a)
        if self.threshold is None:
            levels = set((np.flatnonzero(counts) if counts is not None else np.unique(a)).tolist())
            if levels <= {0, 1}:
                return a == 1
            if levels <= {0, 255}:
                return a == 255
            shown = sorted(levels)[:6]
            raise DatasetError(f"{source}: mask is not binary (values {shown}...; expected 0/255 or 0/1)")
        levels = np.flatnonzero(counts) if counts is not None else np.unique(a)
        on = a > self.threshold
        if levels.size == 2:  # two drawn levels (e.g. red on black, 0/76 as grey) is binary whatever they are
            if on.all() or not on.any():
                lo, hi = levels.tolist()
                reads = "forged" if on.all() != self.invert else "pristine"
                raise DatasetError(
                    f"{source}: its two levels ({lo} and {hi}) both read as {reads} at threshold "
                    f"{self.threshold:g} (a colour-mapped image?); save the mask black and white or read it "
                    f"at a level between them (trufor-lab eval --mask-threshold {(lo + hi) // 2})"
                )
            return on
        mid = int(counts[32:224].sum()) if counts is not None else np.count_nonzero((a >= 32) & (a <= 223))
        grey = mid / max(a.size, 1)
        if grey > self.max_grey and grey > SOFT_EDGES:  # mostly mid-grey: a photo or a heat map
            raise DatasetError(f"{source}: not a mask: {grey:.0%} of its pixels are mid-grey (a photo or a heat map?)")
        if grey > self.max_grey:
            raise DatasetError(
                f"{source}: mask is not binary ({grey:.0%} of pixels are mid-grey); a soft-edged mask is read "
                f"at a grey level given for it (trufor-lab eval --mask-threshold 127; in Python "
                f"MaskConvention(threshold=127, max_grey={SOFT_EDGES}))"
            )
        self._check_sides(a, source, counts)
        return on

    def _check_sides(self, a: np.ndarray, source: PathLike, counts: np.ndarray | None = None) -> None:
        """Refuse a threshold that puts most of one drawn level on the other's side. The two-level
        test above misses it once soft edges or compression noise add levels: a red-on-black JPEG
        (grey 76) read at 127 came out empty, one on a grey-30 background at 0.1 all forged."""
        assert self.threshold is not None
        counts = (counts if counts is not None else np.bincount(a.ravel().astype(np.intp), minlength=256))[:256]
        if np.count_nonzero(counts >= 0.01 * a.size) > 2:  # a level per region (OpenForensics' faces): not two
            return
        split = _otsu(counts.astype(np.float64))  # the level between the two drawn ones
        dark, bright = int(counts[: split + 1].sum()), int(counts[split + 1 :].sum())
        if min(dark, bright) < 0.005 * a.size:  # one drawn level (a few edge pixels aside): nothing to misread
            return
        first = int(np.floor(self.threshold)) + 1  # the lowest level read as on
        bright_off = int(counts[split + 1 : first].sum())
        dark_on = int(counts[max(first, 0) : split + 1].sum())
        if bright_off <= bright / 2 and dark_on <= dark / 2:
            return
        lo, hi = int(np.argmax(counts[: split + 1])), split + 1 + int(np.argmax(counts[split + 1 :]))
        reads = "forged" if (dark_on > dark / 2) != self.invert else "pristine"
        raise DatasetError(
            f"{source}: its two drawn levels (about {lo} and {hi}, with levels between) both read as {reads} "
            f"at threshold {self.threshold:g}; read it at a level between them (trufor-lab eval --mask-threshold "
            f"{split}) or save the mask black and white"
        )

    def _colour(self, a: np.ndarray, source: PathLike) -> np.ndarray:
        rule = self.colour
        assert rule is not None
        if a.ndim != 3 or a.shape[2] < 3:
            raise DatasetError(f"{source}: expected a colour mask, got shape {a.shape}")
        pal = np.asarray(rule.palette, dtype=np.float32)
        rgb = a[..., :3].astype(np.float32)
        d2 = ((rgb[..., None, :] - pal) ** 2).sum(-1)
        nearest = d2.argmin(-1)
        off = np.count_nonzero(d2.min(-1) > rule.tolerance**2) / max(nearest.size, 1)
        if off > rule.max_off_palette:
            raise DatasetError(
                f"{source}: mask is not binary after the colour rule ({off:.0%} of pixels match no palette colour)"
            )
        return np.isin(nearest, rule.forged)


def _level_counts(a: np.ndarray) -> np.ndarray | None:
    """How many pixels hold each level (at least 256 bins) of an 8- or 16-bit mask, ``None`` for
    another dtype: one counting pass instead of sorting the pixels for their levels."""
    if a.dtype == np.uint8 and a.ndim == 2 and a.size:  # Pillow counts 8-bit levels without a wide copy
        return np.asarray(Image.fromarray(a).histogram(), dtype=np.intp)
    if a.dtype not in (np.uint8, np.uint16):
        return None
    return np.bincount(a.ravel(), minlength=256)


def _otsu(counts: np.ndarray) -> int:
    """Otsu's threshold of a 256-bin histogram: levels above it form the brighter class."""
    p = counts / max(counts.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(p.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between[~np.isfinite(between)] = -1.0
    if between.max() < 0:  # a single level: nothing lies above it
        return int(np.flatnonzero(counts).max()) if counts.any() else 0
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # empty levels tie: their middle
    return int((best[0] + best[-1]) // 2)


def _webp_lossy(path: Path) -> bool:
    """Whether a WebP file holds a lossy (VP8) bitstream; lossless ones hold VP8L only."""
    with open(path, "rb") as f:
        data = f.read(1 << 20)  # the image chunk follows the small VP8X/ICC/ALPH headers
    pos = 12
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == b"VP8 ":
            return True
        if tag == b"VP8L":
            return False
        pos += 8 + size + (size & 1)
    return True  # not found in the first MiB (animation, huge metadata): check it as lossy


def _lossy_kind(fmt: str | None, path: Path) -> str | None:
    """The name of a lossy format whose compression noise a mask may hold, or None."""
    if fmt in ("JPEG", "MPO"):
        return "JPEG"
    if fmt == "JPEG2000":  # even the reversible wavelet is lossy once its layers are truncated
        return "JPEG 2000"
    if fmt == "WEBP" and _webp_lossy(path):
        return "lossy WebP"
    return None


def read_mask(path: PathLike, convention: MaskConvention = MaskConvention()) -> np.ndarray:
    """Read a mask file and apply ``convention``: boolean (H, W), True = forged.

    A mask with a varying alpha channel is composited onto black first: what a viewer shows, and
    colour hidden under fully transparent pixels counts as nothing drawn. One whose colour is
    uniform (regions drawn in alpha alone) is refused. JPEG, lossy WebP and JPEG 2000 masks are
    checked for compression noise (:meth:`MaskConvention.check_lossy`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: mask not found")
    try:
        with open_unwarned(path) as src:
            lossy = _lossy_kind(src.format, path)
            if scans := too_many_scans(src, path.read_bytes):  # minutes to decode
                raise DatasetError(f"{path}: {scans}")
            im = stored_pixels(src)  # the grid the image is analysed on
            if im.mode.startswith("F"):
                raise DatasetError(f"{path}: a float mask (mode {im.mode}); save it as 8-bit black and white")
            mode = "RGB" if convention.needs_rgb else "L"
            scaled = False  # 16-bit levels read on the 8-bit scale: an error's levels are those
            if im.mode.startswith(
                "I"
            ):  # 16-bit (or 32-bit) grey: 0/65535 as 0/255, 8-bit values stored wide as they are
                wide = np.asarray(im)
                scaled = wide.size > 0 and int(wide.max()) > 255
                pixels = _wide_mask_pixels(wide, path)
                if mode == "RGB":
                    pixels = np.repeat(pixels[..., None], 3, axis=2)
            else:
                pixels = np.asarray(im if im.mode == mode else im.convert(mode))  # convert would copy
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                alpha = np.asarray(rgba)[..., 3]
                if alpha.min() != alpha.max():
                    if pixels.min() == pixels.max():
                        # converting drops alpha: a mask drawn in transparency alone would read as empty
                        raise DatasetError(
                            f"{path}: the regions are drawn in the alpha channel only (the colour is uniform); "
                            "save the mask as black and white"
                        )
                    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
                    pixels = np.asarray(Image.alpha_composite(black, rgba).convert(mode))
    except DatasetError:
        raise
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: unreadable mask (not an image file, or a format not read here)") from None
    except DAMAGED_FILE_ERRORS as exc:  # a TypeError of Pillow's on a damaged file stopped a whole evaluation
        raise DatasetError(f"{path}: unreadable mask ({_one_line(exc) or type(exc).__name__})") from exc
    if lossy:
        convention.check_lossy(pixels, path, lossy)
    try:
        return convention.apply(pixels, path)
    except DatasetError as e:
        if not scaled:
            raise
        raise DatasetError(  # its levels quoted as '0 and 2' for a file holding 0 and 300
            f"{e} (a 16-bit mask: levels above and the threshold are on the 8-bit scale, level v read as ceil(v / 257))"
        ) from None


def _wide_mask_pixels(a: np.ndarray, path: Path) -> np.ndarray:
    """8-bit values of a 16/32-bit grey mask: as they are when none exceeds 255 (a 0/1 or 0/255
    mask saved wide), else level ``v`` as ``ceil(v / 257)``: 0/65535 reads 0/255, and a threshold
    ``t`` of the 8-bit scale reads ``v > 257 * floor(t)``, so that at the default any nonzero level
    is forged, as the official ``convert('L') > 0.1`` (Pillow clips 16-bit levels to 255 there);
    rounding to the nearest level read 1..128 as pristine."""
    low, top = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if low < 0 or top > 65535:
        raise DatasetError(f"{path}: mask values outside 0..65535; save it as 8-bit black and white")
    return (np.ceil(a / 257.0) if top > 255 else a).astype(np.uint8)


def _orientation(path: Path) -> int | None:
    """A file's valid EXIF orientation (1-8), ``None`` when absent or unreadable."""
    try:
        with open_unwarned(path) as im:
            return orientation_tag(im)[1]
    except (UnidentifiedImageError, *DAMAGED_FILE_ERRORS):
        return None


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding."""
    if not path.is_file():
        raise DatasetError(f"{path}: image not found")
    try:
        with open_unwarned(path) as im:
            return stored_size(im)
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: unreadable image (not an image file, or a format not read here)") from None
    except DAMAGED_FILE_ERRORS as exc:
        raise DatasetError(f"{path}: unreadable image ({_one_line(exc) or type(exc).__name__})") from exc


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------


def _same_file_key(path: Path) -> str:
    """One spelling per file: ``Sp//a.jpg``, ``./Sp/a.jpg`` and ``x/../Sp/a.jpg`` are one file."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: the normalised spelling
        return os.path.normpath(os.path.abspath(path))


class Dataset(Sequence[Sample]):
    """A benchmark: samples, a name, a root, and the mask convention that reads its masks.

    ``notes``: one-line remarks from the loader that change no file but a reader should know
    (a convention taken from a benchmark's name, images labelled real because their mask marks
    nothing)."""

    def __init__(
        self,
        name: str,
        root: PathLike,
        samples: Sequence[Sample],
        convention: MaskConvention = MaskConvention(),
        notes: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.convention = convention
        self._samples = tuple(samples)
        self.notes = list(notes)

    @property
    def samples(self) -> tuple[Sample, ...]:
        return self._samples

    def note_lines(self) -> list[str]:
        """``notes`` as printed lines, each naming the dataset once."""
        return [n if n.startswith(f"{self.name}:") else f"{self.name}: {n}" for n in self.notes]

    def __len__(self) -> int:
        return len(self._samples)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return list(self._samples[index])
        return self._samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, root={str(self.root)!r}, {len(self.fakes())} fakes, {len(self.reals())} reals)"

    def repeats(self) -> list[str]:
        """One line per image listed twice, or as fake and as real: the same id, or the same file
        under another spelling (``Sp//a.jpg``, ``./Sp/a.jpg``, a symlink)."""
        seen_id: dict[str, Sample] = {}
        seen_file: dict[str, Sample] = {}
        out: list[str] = []
        for smp in self._samples:
            first = seen_id.setdefault(smp.id, smp)
            if first is smp:
                first = seen_file.setdefault(_same_file_key(smp.image_path), smp)
            if first is not smp:
                how = "as fake and as real" if first.label != smp.label else "twice"
                ids = f"id {smp.id!r}" if first.id == smp.id else f"as {first.id!r} and {smp.id!r}"
                out.append(f"{smp.image_path}: listed {how} in {self.name!r} ({ids})")
        return out

    def repeated(self) -> str | None:
        """The first of :meth:`repeats`, or None. An evaluation refuses such a dataset: the image
        would weigh twice in every average and sit on both sides of the detection AUC."""
        found = self.repeats()
        return found[0] if found else None

    def fakes(self) -> list[Sample]:
        return [s for s in self._samples if s.label == 1]

    def reals(self) -> list[Sample]:
        return [s for s in self._samples if s.label == 0]

    def load_mask(self, sample: Sample) -> np.ndarray:
        """The sample's mask as a boolean (H, W) array, True = forged, checked against the image.

        Raises DatasetError when the sample has no mask, a file is missing or unreadable, the
        sizes differ, or the mask is not binary under the convention.
        """
        if sample.mask_path is None:
            kind = "fake" if sample.label == 1 else "real"
            raise DatasetError(f"{sample.image_path}: {kind} sample has no mask")
        mask = read_mask(sample.mask_path, self.convention)
        w, h = _image_size(sample.image_path)
        if mask.shape != (h, w):
            o = _orientation(Path(sample.image_path))
            turned = (
                f": the size viewers show the image at (EXIF orientation {o}); masks are read on the grid "
                "the file stores, like the image (the official protocol): turn the mask back to that grid"
                if o is not None and o >= 5 and mask.shape == (w, h)
                else ""
            )
            raise DatasetError(
                f"{sample.mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} "
                f"differs from image size {w}x{h} ({sample.image_path}){turned}"
            )
        return mask

    def mask_orientation_note(self, sample: Sample) -> str | None:
        """What to know when a fake's image has an EXIF orientation (viewers show it turned) and
        its mask fits both grids: the mask is read as stored, like the image (the official
        protocol), and one drawn on the turned view would be misaligned with nothing to show it.
        ``None`` when no such doubt exists (no orientation, the mask carries the same one, or a
        mask drawn on the turned view would have had the other size, which :meth:`load_mask` refuses)."""
        if sample.mask_path is None:
            return None
        image = Path(sample.image_path)
        o = _orientation(image)
        if o in (None, 1) or _orientation(Path(sample.mask_path)) == o:
            return None
        w, h = _image_size(image)
        if o >= 5 and w != h:
            return None
        return (
            f"{image}: {orientation_note(o, 'stored')}; its mask {sample.mask_path} is read as stored too "
            "(the official protocol): a mask drawn on the view viewers show would not align"
        )

    def validate(self) -> list[str]:
        """Check every file; one line per problem (empty when all is well). Reads every mask.

        Besides the errors :meth:`load_mask` raises, reports images listed twice or as fake and
        as real (:meth:`repeats`), fake masks with no forged pixel, the mask of a real image that
        marks forged pixels, and masks more than half forged (often an inverted convention).
        """
        problems: list[str] = self.repeats()
        for s in self._samples:
            if s.mask_path is None:
                try:
                    _image_size(s.image_path)
                except DatasetError as exc:
                    problems.append(str(exc))
                continue
            try:
                mask = self.load_mask(s)
            except DatasetError as exc:
                problems.append(str(exc))
                continue
            frac = float(mask.mean()) if mask.size else 0.0
            if s.label == 0:  # a real image may come with an empty mask (IMD2020, folders)
                if frac > 0:
                    problems.append(f"{s.mask_path}: the mask of a real image marks {frac:.0%} forged")
            elif frac == 0:
                problems.append(f"{s.mask_path}: mask has no forged pixel")
            elif frac > 0.5:
                problems.append(f"{s.mask_path}: {frac:.0%} of the mask is forged; check the convention (invert?)")
        return problems


# --------------------------------------------------------------------------------------------
# list files
# --------------------------------------------------------------------------------------------


def read_list(
    path: PathLike, label: int, root: PathLike | None, mask_root: PathLike | None = None, dataset: str = ""
) -> list[Sample]:
    """Samples from one official list file (``label`` 1: fake list, 0: real list).

    Relative images resolve against ``root``, relative masks against ``mask_root`` (default
    ``root``); an absolute path is taken as it is. Without a root, a relative path is refused
    (DatasetError naming the line).
    """
    path = Path(path)
    if label not in (0, 1):
        raise ValueError(f"label must be 0 (real) or 1 (fake), got {label}")
    if not path.is_file():
        raise DatasetError(f"{path}: list file not found")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a BOM (Notepad) is not part of a name
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable list file ({_one_line(exc)})") from exc
    root = None if root is None else Path(root)
    mroot = Path(mask_root) if mask_root is not None else root
    out: list[Sample] = []
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 2 or not fields[0]:
            raise DatasetError(f"{path}:{no}: expected 'image' or 'image,mask', got {line!r}")
        image = fields[0]
        mask = fields[1] if len(fields) == 2 and fields[1] not in ("", "None") else None
        if label == 0 and mask is not None:
            raise DatasetError(f"{path}:{no}: a real-image list takes one path per line, got {line!r}")
        for listed, base in ((image, root), (mask, mroot)):
            if listed is not None and base is None and not Path(listed).is_absolute():
                raise DatasetError(
                    f"{path}:{no}: {listed!r} is a relative path: give the folder it resolves against "
                    "(--root on the command line, root= in Python)"
                )
        out.append(
            Sample(
                image_path=Path(image) if root is None else root / image,  # an absolute path: as it is
                mask_path=None if mask is None else Path(mask) if mroot is None else mroot / mask,
                label=label,
                dataset=dataset,
                id=image,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# registry of benchmarks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark: its mask convention, its official list file names and its layout.

    Listed image paths resolve against ``root/image_dir``, mask paths against
    ``root/mask_dir`` (both default to the root itself).
    """

    name: str
    convention: MaskConvention
    fake_list: str | None
    real_list: str | None
    image_dir: str = ""
    mask_dir: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class DatasetRegistry:
    """Benchmarks by name (case, spaces, dashes and dots ignored); refuses duplicates and
    suggests the closest known name on a typo."""

    def __init__(self) -> None:
        self._specs: dict[str, DatasetSpec] = {}
        self._keys: dict[str, str] = {}  # normalised name or alias -> canonical name

    def register(self, spec: DatasetSpec) -> None:
        labels = [spec.name, *spec.aliases]
        keys = [_key(n) for n in labels]
        for k, label in zip(keys, labels):
            if not k:
                raise DatasetError(f"dataset name {label!r} has no letter or digit")
            if k in self._keys:
                raise DatasetError(f"dataset name {label!r} is already registered (as {self._keys[k]!r})")
        self._specs[spec.name] = spec
        for k in keys:
            self._keys[k] = spec.name

    def get(self, name: str) -> DatasetSpec:
        k = _key(name)
        if k in self._keys:
            return self._specs[self._keys[k]]
        close = difflib.get_close_matches(k, list(self._keys), n=1, cutoff=0.5)
        hint = f"; did you mean {self._keys[close[0]]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._keys

    def __iter__(self) -> Iterator[DatasetSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


WHITE_FORGED = MaskConvention()
"""White (nonzero) = forged: the official scripts' ``gt > 0.1`` on the 8-bit grey mask."""
BLACK_FORGED = MaskConvention(invert=True)
"""Black (zero) = forged: the official scripts' ``gt < 0.1``."""

COLUMBIA_EDGEMASK = MaskConvention(
    colour=ColourRule(
        palette=((255, 0, 0), (200, 0, 0), (0, 255, 0), (0, 200, 0)),
        forged=(2, 3),
    )
)
"""Columbia's ``*_edgemask.jpg``: the two source regions are coloured red and green, bright near
the splicing boundary and darker away from it; green (bright or dark) marks the spliced region.
JPEG, so pixels snap to the nearest of the four colours."""

BUILTIN_DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "CASIA1",
        WHITE_FORGED,
        "CASIA1corel_fake.txt",
        "CASIA1corel_real.txt",
        aliases=("CASIAv1", "CASIA1corel", "CASIA 1.0"),
        description="CASIA v1.0 spliced images (Sp/) with the corrected ground truth "
        "groundtruth/<name>_gt.png: white = tampered, black = authentic.",
    ),
    DatasetSpec(
        "Columbia",
        COLUMBIA_EDGEMASK,
        "columbia_fake.txt",
        "columbia_real.txt",
        aliases=("Columbia Uncompressed",),
        description="Columbia uncompressed splicing (4cam_splc/, 4cam_auth/); masks are the "
        "colour-coded 4cam_splc/edgemask/*_edgemask.jpg, green = spliced region.",
    ),
    DatasetSpec(
        "Coverage",
        WHITE_FORGED,
        "coverage_fake.txt",
        "coverage_real.txt",
        description="COVERAGE copy-move: image/<n>t.tif with mask/<n>forged.tif, white = the "
        "pasted copy (the source region, <n>copy.tif, is not the forgery).",
    ),
    DatasetSpec(
        "DSO-1",
        BLACK_FORGED,
        "DSO-1_fake.txt",
        "DSO-1_real.txt",
        image_dir="DSO-1",
        mask_dir="DSO-1-Fake-Images-Masks",
        aliases=("tifs-database",),
        description="DSO-1 (tifs-database): DSO-1/splicing-*.png, masks of the same name in "
        "DSO-1-Fake-Images-Masks/; inverted: black = spliced (official script).",
    ),
    DatasetSpec(
        "NIST16",
        BLACK_FORGED,
        "NIST16_fake.txt",
        "NIST16_real.txt",
        aliases=("NIST", "NIST2016", "NC2016"),
        description="NIST Nimble 2016: probe/*.jpg, reference/<op>/mask/*.png; inverted as in "
        "the NIST MFC convention: black = manipulated, white = untouched.",
    ),
    DatasetSpec(
        "CocoGlide",
        WHITE_FORGED,
        "CocoGlide_fake.txt",
        "CocoGlide_real.txt",
        description="CocoGlide (TruFor's GLIDE-inpainted COCO val2017): fake/*.png with "
        "mask/<class>_<id>_mask.png, white = inpainted.",
    ),
    DatasetSpec(
        "VIPP",
        WHITE_FORGED,
        "VIPP_fake.txt",
        "VIPP_real.txt",
        description="VIPP realistic forgeries: Forgery/*.jpg, masks/*.png with white = forged; "
        "some fakes have no mask (listed as None): detection only.",
    ),
    DatasetSpec(
        "OpenForensics",
        MaskConvention(max_grey=1.0),
        "OpenForensics_fake.txt",
        None,
        aliases=("OpenForensics Test-Dev",),
        description="OpenForensics Test-Dev face swaps: Test-Dev/*.jpg, masks "
        "Annotations_GT/Images/Test-Dev/*.png, any nonzero = forged face (masks may "
        "hold per-face levels, so grey levels are allowed); fakes only.",
    ),
)

REGISTRY = DatasetRegistry()
for _spec in BUILTIN_DATASETS:
    REGISTRY.register(_spec)


def register_dataset(spec: DatasetSpec) -> None:
    """Add a benchmark to the global registry (DatasetError on a name already taken)."""
    REGISTRY.register(spec)


def get_spec(name: str) -> DatasetSpec:
    """The registered benchmark ``name`` (DatasetError with a suggestion when unknown)."""
    return REGISTRY.get(name)


# --------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------


def _looks_like_file(name: str) -> bool:
    p = Path(name)
    return p.is_file() or p.suffix.lower() == ".txt" or len(p.parts) > 1


def _find_list(spec: DatasetSpec, filename: str, dirs: list[Path]) -> Path:
    for d in dirs:
        if (d / filename).is_file():
            return d / filename
    where = ", ".join(str(d) for d in dirs)
    raise DatasetError(
        f"{filename}: {spec.name} list file not found in {where}; pass it, or the folder holding it "
        "(--list-dir on the command line, list_dir= in Python; the official lists: test_docker/data_test/ "
        "in grip-unina/TruFor)"
    )


def load_dataset(
    name_or_listfile: str | Path,
    root: PathLike | None,
    fake_list: PathLike | None = None,
    real_list: PathLike | None = None,
    *,
    list_dir: PathLike | None = None,
    mask_root: PathLike | None = None,
    convention: MaskConvention | None = None,
) -> Dataset:
    """Load a registered benchmark by name, or a dataset from a fake-list file.

    By name: the lists given, or else the spec's official list files found in ``list_dir``
    then ``root`` (one list given with ``list_dir``: the other from ``list_dir``). Images
    resolve against ``root/spec.image_dir``; masks against ``mask_root`` or ``root/spec.mask_dir``.
    ``convention`` overrides the spec's.

    By list file: ``name_or_listfile`` is a fake list (``real_list`` optional). A file named as
    a registered benchmark's official fake list loads as that benchmark (layout, convention);
    any other resolves relative paths against ``root`` (masks: ``mask_root``) with white = forged.
    An absolute path in a list is taken as it is: a list of absolute paths needs no ``root``
    (``None``; a relative path is then refused, naming its line).
    """
    target = str(name_or_listfile)
    if isinstance(name_or_listfile, Path) or (target not in REGISTRY and _looks_like_file(target)):
        given = [n for n, v in (("fake_list", fake_list), ("list_dir", list_dir)) if v is not None]
        if given:  # the list file is the fake list: these were ignored, unsaid
            raise DatasetError(f"{target}: a list file names its own images; {' and '.join(given)} not taken with it")
        fake_path = Path(name_or_listfile)
        known = next((s for s in REGISTRY if s.fake_list == fake_path.name), None)
        if known is not None:
            return load_dataset(known.name, root, fake_path, real_list, mask_root=mask_root, convention=convention)
        name = re.sub(r"_fake$", "", fake_path.stem)
        samples = read_list(fake_path, 1, root, mask_root, name)
        if real_list is not None:
            samples += read_list(real_list, 0, root, None, name)
        # no root: every path is absolute, and outputs are named by it (as a root of '/' named them)
        base = Path(root) if root is not None else Path(fake_path.resolve().anchor)
        return Dataset(name, base, samples, convention or MaskConvention())

    spec = REGISTRY.get(target)
    if root is None:  # its lists and its folders lie under it
        raise DatasetError(
            f"{spec.name}: give the benchmark's root folder (--root on the command line, root= in Python)"
        )
    root = Path(root)
    if fake_list is None and real_list is None:
        dirs = ([Path(list_dir)] if list_dir is not None else []) + [root]
        fake_list = _find_list(spec, spec.fake_list, dirs) if spec.fake_list else None
        real_list = _find_list(spec, spec.real_list, dirs) if spec.real_list else None
    elif list_dir is not None:  # one list given: the other from list_dir (it was dropped, unsaid)
        if fake_list is not None and real_list is not None:
            raise DatasetError(f"{target}: both lists given; list_dir not taken with them")
        if fake_list is None and spec.fake_list:
            fake_list = _find_list(spec, spec.fake_list, [Path(list_dir)])
        if real_list is None and spec.real_list:
            real_list = _find_list(spec, spec.real_list, [Path(list_dir)])
    image_root = root / spec.image_dir
    mroot = Path(mask_root) if mask_root is not None else root / spec.mask_dir
    samples = []
    if fake_list is not None:
        samples += read_list(fake_list, 1, image_root, mroot, spec.name)
    if real_list is not None:
        samples += read_list(real_list, 0, image_root, None, spec.name)
    return Dataset(spec.name, root, samples, convention or spec.convention)


MASK_LOOKALIKES = ("_gt", "_mask", "-mask", "_groundtruth", "_edgemask")
"""Stem endings that mark a mask file next to its image (CASIA ``_gt``, Columbia ``_edgemask``)."""


def mask_lookalikes(files: Sequence[Path]) -> Iterator[tuple[Path, Path, str]]:
    """``(mask, image, ending)`` for each of ``files`` named like the mask of another file beside
    it (``x_gt.png`` beside ``x.jpg``, any case: ``X_GT.png`` too), in the order of ``files``;
    ``ending`` as the mask's name spells it (``_GT``)."""
    by_stem = {(p.parent, p.stem.lower()): p for p in files}
    for p in files:
        stem = p.stem.lower()
        end = next((e for e in MASK_LOOKALIKES if stem.endswith(e) and len(stem) > len(e)), "")
        twin = by_stem.get((p.parent, stem[: -len(end)])) if end else None
        if twin is not None:
            yield p, twin, p.stem[-len(end) :]


def _describe(convention: MaskConvention) -> str:
    if convention.colour is not None:
        return "read by colour"
    what = "black = forged" if convention.invert else "white = forged"
    return what if convention.channel is None else f"{what} in channel {'RGB'[convention.channel]}"


def folder_convention(
    name: str, otherwise: str = "give folder_dataset another name= or a convention="
) -> tuple[MaskConvention, str | None]:
    """The convention a folder dataset called ``name`` gets, and a note when it is not the default
    (``otherwise``: how the caller reads them another way).

    A folder named like a registered benchmark (``DSO-1``, ``NIST16``, an alias) is read with
    that benchmark's convention: its masks are that benchmark's, and the default (white = forged)
    would silently read DSO-1's black = spliced masks inverted."""
    if name not in REGISTRY:
        return MaskConvention(), None
    spec = REGISTRY.get(name)
    if spec.convention == MaskConvention():
        return spec.convention, None
    # it named --mask-invert as a way to read them otherwise: on DSO-1 that option is its convention
    return spec.convention, (
        f"{name}: named like the benchmark {spec.name}: its masks are read with its convention "
        f"({_describe(spec.convention)}); to read them otherwise, {otherwise}"
    )


def _scan(base: Path, exts: set[str], skip: Path | None, notes: list[str] | None) -> list[Path]:
    """Image files under ``base``, subfolders (and linked folders) included; hidden names and
    the folder ``skip`` (wherever it is reached, a link to it included) are left out. What hides files (a folder
    that cannot be read, a broken link) is added to ``notes``, or raised when ``notes`` is None
    (a mask left out would label its fake as real)."""
    files, problems = find_images(base, extensions=exts, skip_hidden=True, skip=skip)
    if problems and notes is None:
        raise DatasetError(f"{problems[0]} (its masks would label their images real)")
    if notes is not None:
        notes.extend(problems)
    return sorted(files, key=lambda p: p.relative_to(base).as_posix())


def _names(paths: Sequence[Path], base: Path) -> str:
    shown = ", ".join(p.relative_to(base).as_posix() for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def folder_name(folder: Path) -> str:
    """A folder's own name, also when given as ``.`` or ``..`` (its name was empty: the summary
    line began with ':' and the CSV read back under the dataset 'None')."""
    return folder.name if folder.name not in ("", ".", "..") else folder.resolve().name or str(folder.resolve())


def folder_dataset(
    images_dir: PathLike,
    masks_dir: PathLike | None = None,
    mask_suffix: str = "",
    *,
    name: str | None = None,
    convention: MaskConvention | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> Dataset:
    """A dataset from a folder of images and, optionally, a folder of masks; subfolders included.

    The mask of ``<dir>/<stem>.<ext>`` is ``<stem><mask_suffix>.<any image ext>`` in the same
    subfolder of ``masks_dir`` or, when there is none, the one mask of that name anywhere under
    ``masks_dir`` that is not another image's in its own subfolder (names match exactly, case
    included). Images with a mask are fakes, the others
    reals; an image whose mask marks no forged pixel (an authentic image of a benchmark that gives
    every image a mask) is real, and a note says so. Sample ids are paths relative to
    ``images_dir``; a note counts the images without a mask (labelled real). A ``mask_suffix``
    without ``masks_dir`` means the masks lie among the images; there, a name ending with the
    suffix is a mask, never an image. Without masks, an image named
    like another's mask (``x_gt.png`` or ``X_GT.png`` beside ``x.jpg``) raises: it would be scored as an
    authentic image. Two candidate masks for one image, one mask for two images (``a.png`` and ``a.jpg``),
    and a mask that matches no image (a fake that would silently count as real) raise.

    ``convention`` defaults to :func:`folder_convention` of the dataset's name (a folder named
    like a registered benchmark is read with its convention; a note says so).
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: images folder not found")
    name = name or folder_name(images_dir)
    notes: list[str] = []
    if convention is None:
        convention, note = folder_convention(name)
        notes += [note] if note else []
    exts = {e.lower() for e in extensions}
    if masks_dir is None and mask_suffix:
        masks_dir = images_dir
        notes.append(f"{images_dir}: a mask suffix and no masks folder: masks are the *{mask_suffix} files here")
    if masks_dir is None:
        files = _scan(images_dir, exts, None, notes)
        for p, twin, end in mask_lookalikes(files):
            raise DatasetError(
                f"{p}: looks like the mask of {twin.name} and would be scored as an authentic image; "
                f"give the masks (--masks DIR / masks_dir=) or their suffix (--mask-suffix {end})"
            )
        samples = [Sample(p, None, 0, name, p.relative_to(images_dir).as_posix()) for p in files]
        return Dataset(name, images_dir, samples, convention, notes)
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DatasetError(f"{masks_dir}: masks folder not found")
    same_dir = masks_dir.resolve() == images_dir.resolve()
    if same_dir and not mask_suffix:
        raise DatasetError(f"{masks_dir}: masks in the images folder need a mask_suffix")
    # the masks folder is no part of the images, nor the images of the masks (either may lie
    # inside the other, or be linked in)
    files = _scan(images_dir, exts, None if same_dir else masks_dir, notes)
    mask_files = _scan(masks_dir, exts, None if same_dir else images_dir, None)
    if same_dir:  # in one folder, a name ending with the suffix is a mask, never an image
        files = [p for p in files if not p.stem.endswith(mask_suffix)]
        mask_files = [p for p in mask_files if p.stem.endswith(mask_suffix)]
    here: dict[tuple[Path, str], list[Path]] = {}
    anywhere: dict[str, list[Path]] = {}
    for p in mask_files:
        here.setdefault((p.parent.relative_to(masks_dir), p.stem), []).append(p)
        anywhere.setdefault(p.stem, []).append(p)
    # a mask in its image's own subfolder is that image's: never taken by the same name elsewhere
    # (images/fake/x.png with masks/fake/x.png and a real images/real/x.png were refused)
    claimed = {m for img in files for m in here.get((img.relative_to(images_dir).parent, img.stem + mask_suffix), [])}
    samples = []
    used: dict[Path, list[Path]] = {}
    for img in files:
        rel = img.relative_to(images_dir)
        want = img.stem + mask_suffix
        found = here.get((rel.parent, want)) or [m for m in anywhere.get(want, []) if m not in claimed]
        if len(found) > 1:
            raise DatasetError(f"{img}: several candidate masks ({_names(found, masks_dir)})")
        mask = found[0] if found else None
        if mask is not None:
            used.setdefault(mask, []).append(img)
        samples.append(Sample(img, mask, int(mask is not None), name, rel.as_posix()))
    shared = next(((m, imgs) for m, imgs in used.items() if len(imgs) > 1), None)
    if shared:
        raise DatasetError(f"{shared[0]}: the mask of several images ({_names(shared[1], images_dir)})")
    unused = [p for p in mask_files if p not in used]
    if unused:
        by_lower = {p.stem.lower() + mask_suffix.lower(): p.name for p in files}
        hint = next(
            (f" ({by_lower[p.stem.lower()]} differs only in case)" for p in unused if p.stem.lower() in by_lower), ""
        )
        raise DatasetError(
            f"{masks_dir}: {len(unused)} mask(s) match no image named <stem>{mask_suffix}: "
            f"{_names(unused, masks_dir)}{hint}"
        )
    maskless = [s for s in samples if s.mask_path is None]
    if maskless:  # said, so that a fake whose mask went missing is not silently counted as real
        notes.append(f"{name}: {len(maskless)} image(s) without a mask are labelled real (e.g. {maskless[0].id})")
    samples, empty = _empty_masks_are_real(samples, convention)
    if empty:
        notes.append(
            f"{name}: {len(empty)} image(s) whose mask marks no forged pixel are labelled real "
            f"(e.g. {empty[0].id}, mask {empty[0].mask_path})"
        )
    return Dataset(name, images_dir, samples, convention, notes)


def _empty_masks_are_real(samples: list[Sample], convention: MaskConvention) -> tuple[list[Sample], list[Sample]]:
    """Samples with a mask that marks nothing relabelled real, and those samples. A mask that
    cannot be read keeps its image fake: the evaluation names the problem."""
    out, empty = [], []
    for s in samples:
        if s.mask_path is not None:
            try:
                marked = bool(read_mask(s.mask_path, convention).any())
            except DatasetError:
                marked = True
            if not marked:
                s = dataclasses.replace(s, label=0)
                empty.append(s)
        out.append(s)
    return out, empty
