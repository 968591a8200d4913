"""What a training run is asked to do (:class:`TrainConfig`) and what it returns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trufor_lab.common.arrays import record_repr
from trufor_lab.model import MIT_B0, TruFor, TruForConfig
from trufor_lab.training.phases import PHASES
from trufor_lab.training.scenes import pristine_files

# --------------------------------------------------------------------------------------------
# configuration and results
# --------------------------------------------------------------------------------------------


def _arrays_digest(arrays: list) -> str:
    """A short fingerprint of a list of pictures (shape, dtype and every byte)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


@dataclass
class TrainConfig:
    """Everything a training run needs. Sizes in pixels; ``crop`` must be a multiple of 8."""

    __repr__ = record_repr  # one line: ``pristine`` may be a list of images, shown by dtype and shape

    phase: str = "localization"
    out_dir: str = "runs/train"
    #: Architecture: a :class:`TruForConfig`, its dict, or ``None`` for ``MIT_B0``.
    model: TruForConfig | dict | None = None
    #: Checkpoint to start from (e.g. the previous phase's ``last.pt``); ignored when resuming.
    init: str | None = None
    resume: bool = True
    steps: int = 1000
    batch_size: int = 8
    crop: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup: int = 50
    #: Cross-entropy class weights (pristine, forged) and lam of ``lam*CE + (1-lam)*Dice``.
    class_weights: tuple[float, float] = (0.5, 2.5)
    ce_lambda: float = 0.3
    #: Pristine sources: a folder, a list of uint8 RGB arrays, or ``None`` (built-in, train split).
    pristine: str | list | None = None
    #: User datasets with masks (:class:`trufor_lab.lab.datasets.Dataset`), mixed in at ``dataset_fraction``.
    datasets: list = field(default_factory=list)
    dataset_fraction: float = 0.5
    #: Probability that a synthetic example is forged (else its pristine crop, label 0).
    forged_fraction: float = 0.5
    #: Final JPEG of synthetic examples (pristine and forged alike): probability and quality range.
    jpeg_prob: float = 0.7
    jpeg_quality: tuple[int, int] = (65, 100)
    #: ``"none"``, ``"h"`` or ``"hv"``: random flips (grid-preserving, see module doc).
    flips: str = "hv"
    #: Photograph the pristine sources with random simulated cameras (see :class:`ForgeryStream`).
    camera: bool = False
    #: Forgery kinds to draw from (default: all of ``trufor_lab.lab.forgeries.FORGERIES``).
    kinds: tuple[str, ...] | None = None
    #: Only trace-changing variants of copy-move and local edits (see :class:`ForgeryStream`).
    traceable: bool = False
    #: > 0: generate this many examples once and precompute their Noiseprint++ maps (CPU speed-up);
    #: training crops are then taken from them at multiples of 8. 0: everything on the fly.
    precompute: int = 0
    #: Side of the precomputed examples (default ``crop``).
    precompute_size: int | None = None
    #: Where the precomputed examples are cached (default ``out_dir``); share it between phases.
    cache_dir: str | None = None
    device: str = "auto"
    #: bfloat16 autocast of encoder/decoders; ``None``: on CUDA when supported.
    amp: bool | None = None
    seed: int = 0
    num_threads: int | None = None
    checkpoint_every: int = 100
    #: Stop (and checkpoint) once this many seconds have passed in this call; ``None``: no cap.
    max_seconds: float | None = None
    progress: bool = True
    noiseprint_weights: str | None = None
    #: A ready example source with ``example(rng, size) -> (rgb, mask, label)`` (e.g.
    #: ``trufor_lab.training.photos.RealForgeryStream``), used instead of a ForgeryStream built
    #: from ``pristine``/``datasets``.
    stream: Any = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        for name in ("steps", "batch_size", "crop", "checkpoint_every", "warmup", "precompute", "precompute_size"):
            v = getattr(self, name)  # 3.5 steps trained 4 and returned a model other than last.pt's
            if not (v is None and name == "precompute_size") and (
                not isinstance(v, numbers.Integral) or isinstance(v, bool)
            ):
                raise ValueError(f"{name} must be a whole number, got {v!r}")
        for name in ("steps", "batch_size", "crop", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8 (JPEG grid), got {self.crop}")
        if self.flips not in ("none", "h", "hv"):
            raise ValueError(f"flips must be 'none', 'h' or 'hv', got {self.flips!r}")
        size = self.precompute_size or self.crop
        if self.precompute and (size < self.crop or size % 8):
            raise ValueError("precompute_size must be a multiple of 8 and >= crop")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Values a run cannot use, refused before anything is built (they failed deep inside a
        run, or trained quietly wrong: ce_lambda 5 is 5*CE - 4*Dice, pushing the Dice loss up)."""

        def number(name: str, lo: float, hi: float = math.inf, lo_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < lo or v > hi or (lo_open and v == lo):
                bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
                raise ValueError(
                    f"{name} must be a finite number {bound}"
                    + (f" and <= {hi:g}" if hi < math.inf else "")
                    + f", got {v!r}"
                )

        number("lr", 0, lo_open=True)
        number("weight_decay", 0)
        number("warmup", 0)
        for name in ("ce_lambda", "dataset_fraction", "forged_fraction", "jpeg_prob"):
            number(name, 0, 1)
        number("precompute", 0)
        # numpy's generators take 0 .. 2**128 - 1 ("expected non-negative integer", an overflow deep in a run)
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed!r}")
        if self.max_seconds is not None:
            number("max_seconds", 0)  # 0: stop (and checkpoint) after the first step
        w = tuple(self.class_weights)
        # a zero weight: 0/0 (NaN) cross-entropy on a batch of that class alone
        if len(w) != 2 or not all(isinstance(x, numbers.Real) and math.isfinite(x) and x > 0 for x in w):
            raise ValueError(f"class_weights must be two finite weights > 0, got {self.class_weights!r}")
        q = tuple(self.jpeg_quality)
        if (
            len(q) != 2
            or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) and 1 <= x <= 100 for x in q)
            or q[0] > q[1]
        ):
            raise ValueError(
                f"jpeg_quality must be (low, high) JPEG qualities, 1 <= low <= high <= 100, got {self.jpeg_quality!r}"
            )
        if self.crop < 32:  # TruFor needs 29 px a side; crops are multiples of 8
            raise ValueError(f"crop must be at least 32 (the network needs 29 pixels a side), got {self.crop}")
        if self.batch_size == 1 and self.crop < 64:  # one value per channel at 1/32: BatchNorm cannot train
            raise ValueError(
                "batch_size 1 needs crop >= 64 (BatchNorm needs more than one value per channel at 1/32 scale)"
            )

    def model_config(self) -> TruForConfig:
        if self.model is None:
            return MIT_B0
        return self.model if isinstance(self.model, TruForConfig) else TruForConfig.from_dict(dict(self.model))

    def to_plain(self) -> dict[str, Any]:
        """JSON-safe summary (arrays and dataset objects are described, not stored)."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "model":
                v = self.model_config().to_dict()
            elif f.name == "pristine" and isinstance(v, list):
                v = f"<{len(v)} arrays, sha256 {_arrays_digest(v)}>"  # a resume on other pictures is refused
            elif f.name == "datasets":  # by what is read: a resume on other masks or another convention is refused
                v = [f"{getattr(ds, 'name', type(ds).__name__)} <{dataset_fingerprint(ds)}>" for ds in v]
            elif f.name == "pristine" and isinstance(v, (str, os.PathLike)):  # other pictures there: another run
                v = f"{os.path.realpath(v)} <{_folder_digest(v, self.out_dir)}>"
            elif f.name == "stream" and v is not None:  # its settings and pictures, not its type alone
                v = f"{getattr(v, 'description', type(v).__name__)} #{stream_fingerprint(v)}"
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return json.loads(json.dumps(d, default=str))


def _folder_digest(folder: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> str:
    """A short digest of the pictures a run reads from ``folder`` (relative names, sizes,
    modification times): other pictures in the same folder are another run; its other files
    (notes, thumbnails' databases) and the run's own folder inside it are not."""
    crc = 0
    for p in pristine_files(folder, out_dir):
        try:
            st = os.stat(p)
        except OSError:
            continue
        rel = os.path.relpath(p, folder)
        crc = zlib.crc32(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode(), crc)
    return f"{crc:08x}"


def dataset_fingerprint(ds: object) -> str:
    """A short digest of what a training run reads from a dataset: its mask convention and, per
    sample, its id, label and the names, sizes and modification times of its image and mask (the
    same folder with masks corrected, added, or read inverted is another dataset)."""
    samples = [
        (
            getattr(s, "id", None),
            getattr(s, "label", None),
            *(None if p is None else Path(p) for p in (getattr(s, "image_path", None), getattr(s, "mask_path", None))),
        )
        for s in ds  # type: ignore[attr-defined]
    ]
    return stream_fingerprint([repr(getattr(ds, "convention", None)), samples])


def file_digest(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (read in blocks), 16 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def file_state(path: str | os.PathLike) -> str:
    """A file's size and modification time (``missing`` when there is none): a file rewritten
    in place (a mask corrected) is another file."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}\0{st.st_mtime_ns}"


def stream_fingerprint(stream: object) -> str:
    """A short digest of everything that shapes a stream's examples (its settings, the pixels of
    its images, and the names, sizes and modification times of the files it reads): a
    precomputed pool is reused only for the same stream."""
    crc = 0

    def feed(v: object, depth: int = 0) -> None:
        nonlocal crc
        if isinstance(v, np.ndarray):
            crc = zlib.crc32(repr((v.shape, v.dtype.str)).encode(), crc)
            crc = zlib.crc32(np.ascontiguousarray(v).view(np.uint8).reshape(-1), crc)
        elif isinstance(v, (list, tuple)):
            crc = zlib.crc32(f"[{len(v)}".encode(), crc)
            for x in v:
                feed(x, depth)
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                crc = zlib.crc32(str(k).encode(), crc)
                feed(v[k], depth)
        elif isinstance(v, np.generic):  # numpy scalars: by value (hashing the type alone mixed pools)
            crc = zlib.crc32(repr(v.item()).encode(), crc)
        elif isinstance(v, (str, int, float, bool, type(None))):
            crc = zlib.crc32(repr(v).encode(), crc)
        elif isinstance(v, os.PathLike):  # a file read later (a dataset's image, its mask): its state too
            crc = zlib.crc32(f"{os.fspath(v)}\0{file_state(v)}".encode(), crc)
        elif hasattr(v, "__dict__") and depth < 3:  # a nested stream, a photo record, ...
            crc = zlib.crc32(type(v).__name__.encode(), crc)
            feed({k: x for k, x in vars(v).items() if not callable(x)}, depth + 1)
        else:
            crc = zlib.crc32(type(v).__name__.encode(), crc)

    feed(stream)
    return f"{crc:08x}"


@dataclass
class TrainResult:
    """What a run produced. ``model`` is the trained network (eval mode, on the training device)."""

    out_dir: Path
    checkpoint: Path
    log: Path
    phase: str
    step: int
    final_loss: float
    seconds: float
    model: TruFor | None = field(default=None, repr=False)
    #: The phases the checkpoint's weights were trained in (``None``: not known, e.g. started from
    #: the official checkpoint); a phase missing left its head random.
    trained: list[str] | None = None
