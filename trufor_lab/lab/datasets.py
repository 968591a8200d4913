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

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
from PIL import UnidentifiedImageError

from trufor_lab.common.paths import IMAGE_EXTENSIONS
from trufor_lab.common.image_files import open_image, stored_pixels, stored_size

__all__ = [
    "BUILTIN_DATASETS",
    "ColourRule",
    "Dataset",
    "DatasetError",
    "DatasetRegistry",
    "DatasetSpec",
    "IMAGE_EXTENSIONS",
    "MaskConvention",
    "REGISTRY",
    "Sample",
    "folder_dataset",
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


@dataclass(frozen=True)
class MaskConvention:
    """How a benchmark's mask file encodes forged pixels, as explicit data.

    * grey (default): the mask is converted to 8-bit luminance (PIL ``L``, as the official
      scripts do) or, with ``channel``, one RGB channel is taken; a pixel is *on* when its
      value is ``> threshold``. ``threshold=None`` is strict: the file must hold only 0/255 or
      0/1 levels. With a threshold, more than ``max_grey`` (a fraction) of mid-grey pixels
      (32..223) means the file is not a binary mask.
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

    def check_lossy(self, pixels: np.ndarray, source: PathLike = "mask") -> None:
        """Refuse a JPEG-saved mask whose compression noise a low threshold would read as marked
        (the default, any nonzero level, turned a 4 % ring or more of pristine pixels forged).

        The level that splits the file into its two drawn levels (Otsu's, on the histogram: about
        127 for white on black, 38 for a red mask read as grey) is the threshold that reads it as
        drawn; noise is what lies between the convention's threshold and that level."""
        if self.colour is not None or self.threshold is None:
            return  # a colour rule has a tolerance; strict masks refuse noise anyway
        a = pixels if self.channel is None or pixels.ndim == 2 else pixels[..., self.channel]
        counts = np.bincount(a.ravel().astype(np.intp), minlength=256)[:256].astype(np.float64)
        split = _otsu(counts)
        first = int(np.floor(self.threshold)) + 1
        noise = int(counts[first : split + 1].sum()) if split >= first else 0
        if noise > 0.001 * a.size:  # a few stray pixels (a quality-100 save) change no metric
            meaning = "pristine (this convention is inverted)" if self.invert else "forged"
            raise DatasetError(
                f"{source}: a JPEG-saved mask: {noise} pixel(s) of compression noise (levels "
                f"{first}-{split}) would count as {meaning}; save masks losslessly (PNG) or read "
                f"them at the level between the two drawn ones (trufor-lab eval --mask-threshold {split})"
            )

    def _grey(self, a: np.ndarray, source: PathLike) -> np.ndarray:
        if self.threshold is None:
            levels = set(np.unique(a).tolist())
            if levels <= {0, 1}:
                return a == 1
            if levels <= {0, 255}:
                return a == 255
            shown = sorted(levels)[:6]
            raise DatasetError(f"{source}: mask is not binary (values {shown}...; expected 0/255 or 0/1)")
        grey = np.count_nonzero((a >= 32) & (a <= 223)) / max(a.size, 1)
        if grey > self.max_grey:
            raise DatasetError(f"{source}: mask is not binary ({grey:.0%} of pixels are mid-grey)")
        return a > self.threshold

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


def _otsu(counts: np.ndarray) -> int:
    """Otsu's threshold of a 256-bin histogram: levels above it form the brighter class."""
    p = counts / max(counts.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(p.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between[~np.isfinite(between)] = -1.0
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # empty levels tie: their middle
    return int((best[0] + best[-1]) // 2)


def read_mask(path: PathLike, convention: MaskConvention = MaskConvention()) -> np.ndarray:
    """Read a mask file and apply ``convention``: boolean (H, W), True = forged."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: mask not found")
    try:
        with open_image(path) as src:
            lossy = src.format in ("JPEG", "MPO")
            im = stored_pixels(src)  # the grid the image is analysed on
            if im.mode.startswith(("I", "F")):
                raise DatasetError(f"{path}: unsupported mask mode {im.mode} (save it as 8-bit)")
            pixels = np.asarray(im.convert("RGB" if convention.needs_rgb else "L"))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                alpha = np.asarray(im.convert("RGBA"))[..., 3]
                if alpha.min() != alpha.max() and pixels.min() == pixels.max():
                    # converting drops alpha: a mask drawn in transparency alone would read as empty
                    raise DatasetError(
                        f"{path}: the regions are drawn in the alpha channel only (the colour is uniform); "
                        "save the mask as black and white"
                    )
    except DatasetError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: unreadable mask ({_one_line(exc)})") from exc
    if lossy:
        convention.check_lossy(pixels, path)
    return convention.apply(pixels, path)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding."""
    if not path.is_file():
        raise DatasetError(f"{path}: image not found")
    try:
        with open_image(path) as im:
            return stored_size(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: unreadable image ({_one_line(exc)})") from exc


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------


class Dataset(Sequence[Sample]):
    """A benchmark: samples, a name, a root, and the mask convention that reads its masks."""

    def __init__(
        self, name: str, root: PathLike, samples: Sequence[Sample], convention: MaskConvention = MaskConvention()
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.convention = convention
        self._samples = tuple(samples)

    @property
    def samples(self) -> tuple[Sample, ...]:
        return self._samples

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

    def repeated(self) -> str | None:
        """One line naming an image listed twice (the same id), or as fake and as real; None if
        there is none. An evaluation refuses such a dataset: the image would weigh twice in every
        average and sit on both sides of the detection AUC."""
        seen: dict[str, Sample] = {}
        for smp in self._samples:
            first = seen.setdefault(smp.id, smp)
            if first is not smp:
                how = "as fake and as real" if first.label != smp.label else "twice"
                return f"{smp.image_path}: listed {how} in {self.name!r} (id {smp.id!r})"
        return None

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
            raise DatasetError(
                f"{sample.mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} "
                f"differs from image size {w}x{h} ({sample.image_path})"
            )
        return mask

    def validate(self) -> list[str]:
        """Check every file; one line per problem (empty when all is well). Reads every mask.

        Besides the errors :meth:`load_mask` raises, reports duplicate ids, fake masks with no
        forged pixel, and masks more than half forged (often an inverted convention).
        """
        problems: list[str] = []
        seen: set[str] = set()
        for s in self._samples:
            if s.id in seen:
                problems.append(f"{s.image_path}: duplicate sample id {s.id!r}")
            seen.add(s.id)
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
            if frac == 0:
                problems.append(f"{s.mask_path}: mask has no forged pixel")
            elif frac > 0.5:
                problems.append(f"{s.mask_path}: {frac:.0%} of the mask is forged; check the convention (invert?)")
        return problems


# --------------------------------------------------------------------------------------------
# list files
# --------------------------------------------------------------------------------------------


def read_list(
    path: PathLike, label: int, root: PathLike, mask_root: PathLike | None = None, dataset: str = ""
) -> list[Sample]:
    """Samples from one official list file (``label`` 1: fake list, 0: real list).

    Images resolve against ``root``, masks against ``mask_root`` (default ``root``).
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
    root = Path(root)
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
        out.append(
            Sample(
                image_path=root / image,
                mask_path=None if mask is None else mroot / mask,
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
    root: PathLike,
    fake_list: PathLike | None = None,
    real_list: PathLike | None = None,
    *,
    list_dir: PathLike | None = None,
    mask_root: PathLike | None = None,
    convention: MaskConvention | None = None,
) -> Dataset:
    """Load a registered benchmark by name, or a dataset from a fake-list file.

    By name: the lists given, or else the spec's official list files found in ``list_dir``
    then ``root``. Images resolve against ``root/spec.image_dir``; masks against ``mask_root``
    or ``root/spec.mask_dir``. ``convention`` overrides the spec's.

    By list file: ``name_or_listfile`` is a fake list (``real_list`` optional). A file named as
    a registered benchmark's official fake list loads as that benchmark (layout, convention);
    any other resolves paths against ``root`` (masks: ``mask_root``) with white = forged.
    """
    root = Path(root)
    target = str(name_or_listfile)
    if isinstance(name_or_listfile, Path) or (target not in REGISTRY and _looks_like_file(target)):
        fake_path = Path(name_or_listfile)
        known = next((s for s in REGISTRY if s.fake_list == fake_path.name), None)
        if known is not None:
            return load_dataset(known.name, root, fake_path, real_list, mask_root=mask_root, convention=convention)
        name = re.sub(r"_fake$", "", fake_path.stem)
        samples = read_list(fake_path, 1, root, mask_root, name)
        if real_list is not None:
            samples += read_list(real_list, 0, root, None, name)
        return Dataset(name, root, samples, convention or MaskConvention())

    spec = REGISTRY.get(target)
    if fake_list is None and real_list is None:
        dirs = ([Path(list_dir)] if list_dir is not None else []) + [root]
        fake_list = _find_list(spec, spec.fake_list, dirs) if spec.fake_list else None
        real_list = _find_list(spec, spec.real_list, dirs) if spec.real_list else None
    image_root = root / spec.image_dir
    mroot = Path(mask_root) if mask_root is not None else root / spec.mask_dir
    samples = []
    if fake_list is not None:
        samples += read_list(fake_list, 1, image_root, mroot, spec.name)
    if real_list is not None:
        samples += read_list(real_list, 0, image_root, None, spec.name)
    return Dataset(spec.name, root, samples, convention or spec.convention)


def folder_dataset(
    images_dir: PathLike,
    masks_dir: PathLike | None = None,
    mask_suffix: str = "",
    *,
    name: str | None = None,
    convention: MaskConvention = MaskConvention(),
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> Dataset:
    """A dataset from a folder of images and, optionally, a folder of masks.

    The mask of ``<stem>.<ext>`` is ``<stem><mask_suffix>.<any image ext>`` in ``masks_dir``
    (names match exactly, case included); images with a mask are fakes, the others reals. Two
    candidate masks for one image, one mask for two images (``a.png`` and ``a.jpg``), and a mask
    that matches no image (a fake that would silently count as real) raise.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: images folder not found")
    exts = {e.lower() for e in extensions}
    files = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in exts)
    masks: dict[str, list[Path]] = {}
    same_dir = False
    if masks_dir is not None:
        masks_dir = Path(masks_dir)
        if not masks_dir.is_dir():
            raise DatasetError(f"{masks_dir}: masks folder not found")
        same_dir = masks_dir.resolve() == images_dir.resolve()
        if same_dir and not mask_suffix:
            raise DatasetError(f"{masks_dir}: masks in the images folder need a mask_suffix")
        for p in sorted(masks_dir.iterdir()):
            if p.is_file() and p.suffix.lower() in exts:
                masks.setdefault(p.stem, []).append(p)
    if same_dir:  # in one folder, a name ending with the suffix is a mask, never an image
        files = [p for p in files if not p.stem.endswith(mask_suffix)]
        masks = {k: v for k, v in masks.items() if k.endswith(mask_suffix)}
    samples = []
    used: dict[Path, list[Path]] = {}
    for img in files:
        found = masks.get(img.stem + mask_suffix, [])
        if len(found) > 1:
            raise DatasetError(f"{img}: several candidate masks ({', '.join(p.name for p in found)})")
        mask = found[0] if found else None
        if mask is not None:
            used.setdefault(mask, []).append(img)
        samples.append(
            Sample(
                image_path=img,
                mask_path=mask,
                label=int(mask is not None),
                dataset=name or images_dir.name,
                id=img.name,
            )
        )
    shared = next(((m, imgs) for m, imgs in used.items() if len(imgs) > 1), None)
    if shared:
        raise DatasetError(f"{shared[0]}: the mask of several images ({', '.join(p.name for p in shared[1])})")
    unused = [p for group in masks.values() for p in group if p not in used]
    if unused:
        by_lower = {p.stem.lower() + mask_suffix.lower(): p.name for p in files}
        hint = next(
            (f" ({by_lower[p.stem.lower()]} differs only in case)" for p in unused if p.stem.lower() in by_lower), ""
        )
        names = ", ".join(p.name for p in unused[:3]) + (f" and {len(unused) - 3} more" if len(unused) > 3 else "")
        raise DatasetError(
            f"{masks_dir}: {len(unused)} mask(s) match no image named <stem>{mask_suffix}: {names}{hint}"
        )
    return Dataset(name or images_dir.name, images_dir, samples, convention)
