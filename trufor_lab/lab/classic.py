"""Classic, training-free forgery detectors with TruFor's output form.

``detect(image, method, **params) -> Result``: the localization map is ``Result.map``, float32
(H, W) in [0, 1] at the image's size, larger = more suspicious; ``conf`` is all ones (these
methods give no confidence); ``score`` is set only where the method defines a global score
(``METHODS[name].defines_score``; ``fallback_score=True`` fills the others with the 99th
percentile of the map, and a note says so). ``noiseprint`` holds the method's *raw* map
(e.g. the ELA residual) for the viewers' grey robust-range panel (as for attributions),
unless the method is the Noiseprint++ detector, where it is the Noiseprint++ map itself.
The Result's arrays are read-only and shared where they hold the same numbers (the four results of
one picture share its pixels; ``noiseprint`` is ``captures['raw_map']`` when that is finite; ``conf``
and an empty map are constant planes in no memory), so ``as_shown()`` turns them as views: copy one
(``np.array(r.map)``) to write into it.
Everything else the method computed is in ``Result.captures`` (e.g. ``'curves'`` of the
JPEG ghost). So metrics, evaluation, failure analysis, CompareViewer, the casebook and the
report take these results unchanged.

>>> from trufor_lab.lab.classic import detect, METHODS
>>> r = detect("photo.jpg", "dq_aligned")
>>> r.map.shape, r.notes, sorted(METHODS)

JPEG input: a path, bytes or a PIL image read from a JPEG file keep their quantization
tables; an array does not. ``dq_aligned`` needs the table: without one it does **not**
raise but returns an all-zero map with ``notice`` and a note saying "needs a JPEG file"
(so a batch over mixed PNG/JPEG files goes on; check ``captures['applicable']``). A method that
finds its premise does not hold for the picture (no CFA trace, no 8x8 JPEG grid, no
double-quantization effect) says so in ``raw['not_applicable']``: the Result then has an empty
map, no score, that reason as its ``notice`` and ``captures['applicable']`` False.
"""

from __future__ import annotations

import difflib
import io
import os
import time
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch
from PIL import Image

from trufor_lab.common.arrays import constant_plane, frozen, read_only, record_repr
from trufor_lab.common.image_files import turn_to_stored
from trufor_lab.inference.result import Result
from trufor_lab.forensics.jpeg import (
    used_tables,
    estimate_from_header,
    header_problems,
    open_source,
    read_header,
    subsampling_from_header,
)
from trufor_lab.lab import classic_jpeg as J
from trufor_lab.lab import classic_noise as N
from trufor_lab.lab.classic_params import check_params
from trufor_lab.inference.preprocess import ImageLike, LoadedImage, load_image
from trufor_lab.inference.load import is_full_model, load_noiseprint, unwrapped
from trufor_lab.inference.preprocess import to_tensor
from trufor_lab.model.identity import classic_label

__all__ = ["Method", "METHODS", "Source", "detect", "not_applicable", "read_source", "with_method"]


@dataclass(frozen=True)
class Source:
    """Decoded pixels plus what the file says about its JPEG history."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    rgb: np.ndarray
    name: str
    qtable: np.ndarray | None = None  # luma quantization table (8x8, natural order): component 0's
    quality: int | None = None  # nearest IJG quality of that luma table (the detectors work on luma)
    notes: tuple[str, ...] = ()
    orientation: int | None = None  # EXIF orientation (pixels are as stored; see Result.as_shown)
    subsampling: str | None = None  # the file's chroma subsampling ('4:4:4', '4:2:2', '4:2:0', ...)

    @property
    def is_jpeg(self) -> bool:
        return self.qtable is not None


@dataclass(frozen=True)
class Method:
    """One detector: ``run(source, **params) -> (map, score, raw)``."""

    name: str
    run: Callable[..., J.Output]
    description: str
    citation: str
    defines_score: bool = False
    needs_jpeg: bool = False
    #: Smallest image side it can judge (its blocks, tiles or shifts); smaller: not applicable.
    min_side: int = 1
    #: Whether its map is already in [0, 1] (a probability or a normalised value): shown as is.
    bounded: bool = False

    def __repr__(self) -> str:
        return f"Method({self.name!r}: {self.description})"


def _registry(*methods: Method) -> Mapping[str, Method]:
    out: dict[str, Method] = {}
    for m in methods:
        if m.name in out:
            raise ValueError(f"duplicate detector name {m.name!r}")
        out[m.name] = m
    return MappingProxyType(out)


def with_method(registry: Mapping[str, Method], method: Method) -> Mapping[str, Method]:
    """A new read-only registry with ``method`` added; a name already there is refused."""
    return _registry(*registry.values(), method)


# ------------------------------------------------------------------------------ input


def _bytes_of(image: Any) -> bytes | None:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)) and os.path.isfile(image):
        with open(image, "rb") as f:
            return f.read()
    if isinstance(image, Image.Image) and getattr(image, "filename", "") and os.path.isfile(image.filename):
        with open(image.filename, "rb") as f:
            return f.read()
    return None


def read_source(image: ImageLike | Source, name: str | None = None, *, loaded: LoadedImage | None = None) -> Source:
    """Pixels (:func:`~trufor_lab.inference.preprocess.load_image`'s RGB policy) and, for a JPEG file
    (path, bytes, PIL image), the luma quantization table (the one the first component uses, whatever
    its table id), the nearest IJG quality of that table (not a joint luma + chroma fit: a
    ``cjpeg -quality 95,60`` file is at 95 for the luma the detectors read) and the chroma
    subsampling. Tables that are not IJG-scaled add a note: the quality is only the nearest.
    ``name``: what notes and errors call it (default: the path, else ``<bytes>``, ...). ``loaded``: the
    pixels of ``image`` as :func:`~trufor_lab.inference.preprocess.load_image` read them (e.g. for
    the analysis, on the stored grid): taken as they are, not decoded again; the file still gives the tables."""
    if isinstance(image, Source):
        return image
    data = _bytes_of(image)
    # a PIL image's pixels are the object's (it may have been edited since it was opened); its
    # file, when there is one, gives the quantization tables only
    path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    fresh = loaded is None
    if loaded is None:
        loaded = load_image(image if isinstance(image, Image.Image) or data is None else data, name=name or path)
    elif loaded.turned:  # the detectors and the JPEG grid they read need the stored grid
        raise ValueError(
            f"{loaded.name}: read_source takes the stored grid, not pixels turned by load_image(exif_transpose=True)"
        )
    else:
        loaded = replace(loaded, name=name or path or loaded.name)  # as a fresh read would call it
    name = loaded.name
    rgb = loaded.rgb
    if fresh:  # decoded here: nobody else holds it
        rgb.flags.writeable = False
    elif not frozen(rgb):  # the caller's pixels, which it may still change: one copy for every result
        rgb = rgb.copy()
        rgb.flags.writeable = False
    qtable = quality = sampling = None
    notes = list(loaded.notes)
    src: Any = data if data is not None else (image if isinstance(image, Image.Image) else None)
    if src is not None and (data is None or data[:2] == b"\xff\xd8"):
        hdr = read_header(open_source(io.BytesIO(data) if data is not None else src))
        problems = header_problems(hdr) if hdr is not None and hdr.qtables else []
        if problems:  # which table is luma is unknown: none is guessed
            notes.append(f"{name}: JPEG tables not used ({'; '.join(problems)})")
        elif hdr is not None and hdr.qtables:
            qtable = used_tables(hdr)[0].astype(np.float64)
            est = estimate_from_header(hdr)
            quality = None if est is None else est.luma_quality
            sampling = subsampling_from_header(hdr)
            if est is not None and not est.standard:
                notes.append(f"{name}: JPEG quality {quality} is the nearest IJG quality; the file uses custom tables")
    return Source(rgb, name, qtable, quality, tuple(notes), loaded.exif_orientation, sampling)


# ------------------------------------------------------------------------- adapters


def _resave_subsampling(s: Source, subsampling: str | None) -> str:
    """The chroma subsampling to re-save with: the one asked for, else the file's own (re-saved at
    4:2:0, a 4:4:4 file's colour edges lit up in ELA and hid the ghost), else 4:2:0."""
    return subsampling or (s.subsampling if s.subsampling in ("4:4:4", "4:2:2", "4:2:0") else "4:2:0")


def _ela(s: Source, quality: int | None = None, subsampling: str | None = None, **kw: Any) -> J.Output:
    q = quality if quality is not None else (s.quality or 90)
    sub = _resave_subsampling(s, subsampling)
    out = J.ela(s.rgb, quality=int(q), subsampling=sub, **kw)
    if quality is None and "empty_reason" in out[2]:
        # a file last saved at its own quality by a libjpeg-like encoder comes back unchanged:
        # the usual ELA quality (95, or 85 for a file at 95 or more) shows its error levels instead
        other = 95 if q < 95 else 85
        first = f"the file's quality {q}" if s.quality is not None else f"quality {q}"
        m, score, raw = J.ela(s.rgb, quality=other, subsampling=sub, **kw)
        raw["fallback"] = f"re-saving at {first} changed nothing; shown at quality {other}"
        if "empty_reason" in raw:
            raw["empty_reason"] = (
                f"saving again at quality {other} gives back the same pixels too, as at {first}: "
                "ELA shows nothing here; try another quality"
            )
        return m, score, raw
    return out


def _ghost(s: Source, subsampling: str | None = None, **kw: Any) -> J.Output:
    if "qualities" not in kw and s.quality is not None:  # ghosts sit below the last quality
        top = max(s.quality, 55)
        kw["qualities"] = tuple(range(40, top + 1, 3))
    return J.jpeg_ghost(s.rgb, subsampling=_resave_subsampling(s, subsampling), **kw)


def _dq_aligned(s: Source, **kw: Any) -> J.Output:
    return J.dq_aligned(s.rgb, qtable=s.qtable, **kw)


def _dq_nonaligned(s: Source, **kw: Any) -> J.Output:
    return J.dq_nonaligned(s.rgb, qtable=s.qtable, **kw)


def _noiseprint(s: Source, noiseprint: np.ndarray | Result | None = None, model: Any = None, **kw: Any) -> J.Output:
    """Reuse a given Noiseprint++ map (or a Result's), else compute it with ``model`` (default:
    :func:`trufor_lab.load_noiseprint` on the CPU; a full TruFor gives its own Noiseprint++)."""
    if isinstance(noiseprint, Result):  # its map on the grid the detector reads (the stored one)
        noiseprint = (
            turn_to_stored(noiseprint.noiseprint, noiseprint.exif_orientation)
            if noiseprint.shown
            else noiseprint.noiseprint
        )
    if noiseprint is None:
        net = model if model is not None else load_noiseprint(device="cpu")
        if is_full_model(unwrapped(net)):  # its output is TruFor's (logits first): was a bare TypeError
            net = unwrapped(net).dncnn
        p = next(net.parameters())
        with torch.no_grad():
            out = net(to_tensor(s.rgb, dtype=p.dtype, device=p.device))
        noiseprint = out[0, 0].float().cpu().numpy()
    noiseprint = np.asarray(noiseprint)  # float32 or float64 as given (the clustering reads it in float64)
    if noiseprint.dtype not in (np.float32, np.float64):
        noiseprint = noiseprint.astype(np.float64)
    if noiseprint.shape != s.rgb.shape[:2]:
        raise ValueError(f"{s.name}: noiseprint map is {noiseprint.shape}, image is {s.rgb.shape[:2]}")
    m, score, raw = N.noiseprint_cluster(noiseprint, **kw)
    raw["noiseprint"] = noiseprint.astype(np.float32)
    return m, score, raw


METHODS: Mapping[str, Method] = _registry(
    Method(
        "ela",
        _ela,
        "error level analysis: residual of one recompression (at the file's quality)",
        "N. Krawetz, 'A picture's worth...', Black Hat 2007",
    ),
    Method(
        "jpeg_ghost",
        _ghost,
        "JPEG ghosts: difference dips at the quality a region was first saved with",
        "H. Farid, 'Exposing digital forgeries from JPEG ghosts', IEEE TIFS 4(1), 2009",
        bounded=True,
    ),
    Method(
        "dq_aligned",
        _dq_aligned,
        "aligned double-JPEG: DQ periodicity of DCT histograms, per-block posterior",
        "Z. Lin, J. He, X. Tang, C.-K. Tang, 'Fast, automatic and fine-grained tampered JPEG image "
        "detection via DCT coefficient analysis', Pattern Recognition 42(11), 2009",
        needs_jpeg=True,
        min_side=64,  # its histograms need blocks: under 64 blocks it was a uniform 0.5 (or NaN under 8 px)
        bounded=True,
    ),
    Method(
        "dq_nonaligned",
        _dq_nonaligned,
        "non-aligned double-JPEG: integer periodicity on a shifted grid",
        "T. Bianchi, A. Piva, 'Image forgery localization via block-grained analysis of JPEG "
        "artifacts', IEEE TIFS 7(3), 2012; 'Detection of nonaligned double JPEG compression based on "
        "integer periodicity maps', IEEE TIFS 7(2), 2012",
        defines_score=True,
        min_side=16,
        bounded=True,
    ),
    Method(
        "bag",
        lambda s, **kw: J.bag(s.rgb, **kw),
        "block artifact grid: blocks whose 8x8 grid is shifted",
        "W. Li, Y. Yuan, N. Yu, 'Passive detection of doctored JPEG image via block artifact grid "
        "extraction', Signal Processing 89(9), 2009",
        min_side=J.GRID_MIN_SIDE,
    ),
    Method(
        "noise",
        lambda s, **kw: N.noise_level(s.rgb, **kw),
        "local noise level (wavelet MAD) inconsistency",
        "B. Mahdian, S. Saic, 'Using noise inconsistencies for blind image forensics', "
        "Image and Vision Computing 27(10), 2009",
        min_side=16,
    ),
    Method(
        "cfa",
        lambda s, **kw: N.cfa(s.rgb, **kw),
        "CFA demosaicing traces: green prediction-error variance",
        "P. Ferrara, T. Bianchi, A. De Rosa, A. Piva, 'Image forgery localization via fine-grained "
        "analysis of CFA artifacts', IEEE TIFS 7(5), 2012",
        min_side=8,
        bounded=True,
    ),
    Method(
        "noiseprint",
        _noiseprint,
        "Noiseprint++ alone: two-class clustering of its local statistics",
        "D. Cozzolino, L. Verdoliva, 'Noiseprint: a CNN-based camera model fingerprint', IEEE TIFS 15, "
        "2020; D. Cozzolino, G. Poggi, L. Verdoliva, 'Splicebuster', WIFS 2015",
        min_side=32,
        bounded=True,
    ),
)


# ---------------------------------------------------------------------------- detect


def _flat(m: np.ndarray) -> bool:
    """A map with one value everywhere (to float rounding)."""
    return m.size > 0 and float(np.ptp(m)) <= 1e-9 * max(1.0, float(np.abs(m).max()))


def _normalise(m: np.ndarray, bounded: bool = False) -> np.ndarray:
    """To [0, 1] for display. A ``bounded`` map (already a probability-like value) is clipped; any
    other is always scaled (never by whether it happens to fall in [0, 1], which made a map
    jump from as-is to saturated at 1.0): shifted to start at 0 when negative, divided by the
    larger of its 99.5th percentile and half its maximum (so that a small hot spot saturates,
    not the background around it)."""
    # one float64 working copy, changed in place (each step made a new plane: five at the peak)
    m = np.nan_to_num(np.array(m, dtype=np.float64), copy=False)
    if bounded:
        return np.clip(m, 0, 1, out=m).astype(np.float32)
    if _flat(m):  # no contrast: nothing stands out (dividing by itself drew it all at 1.0)
        return np.zeros(m.shape, np.float32)
    m -= min(0.0, float(m.min()))
    hi = max(float(np.percentile(m, 99.5)), 0.5 * float(m.max()))
    if hi > 0:
        m /= hi
    else:
        m[...] = 0.0
    return np.clip(m, 0, 1, out=m).astype(np.float32)


def _sealed(a: np.ndarray) -> np.ndarray:
    """``a``, an array made here for one result and held by nothing else, made read-only."""
    a.flags.writeable = False
    return a


def _own_read_only(a: np.ndarray, dtype: Any) -> np.ndarray:
    """``a`` in ``dtype``, read-only, without changing the flags of an array the method may keep:
    a converted copy is sealed; ``a`` itself only when nothing can write it already."""
    out = np.asarray(a, dtype)
    if out is a and not frozen(out):  # the method's own array (it may hold or reuse it): a copy
        out = out.copy()
    return _sealed(out)


def not_applicable(
    src: Source, method: str, msg: str, *, name: str | None = None, shown: str = "(not applicable)"
) -> Result:
    """What a detector that cannot run on ``src`` returns: the image with empty maps, and ``msg``
    as its notice (so it still displays, and says why)."""
    h, w = src.rgb.shape[:2]
    return Result(
        image=read_only(src.rgb),
        noiseprint=constant_plane(0.0, (h, w)),
        map=constant_plane(0.0, (h, w)),
        conf=constant_plane(1.0, (h, w)),
        score=None,
        name=name or src.name,
        notice=msg,
        exif_orientation=src.orientation,
        notes=(*src.notes, msg),
        captures={"method": method, "applicable": False, "shown": shown},
        label=classic_label(method),
    )


def detect(
    image: ImageLike | Source,
    method: str = "ela",
    *,
    name: str | None = None,
    methods: Mapping[str, Method] = METHODS,
    fallback_score: bool = False,
    **params: Any,
) -> Result:
    """Run the classic detector ``method`` on ``image`` and return a TruFor-shaped :class:`Result`
    (see the module docstring for the meaning of each field). ``params`` go to the method."""
    if method not in methods:
        close = difflib.get_close_matches(method, list(methods), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; choose one of {sorted(methods)}"
        raise ValueError(f"unknown detector {method!r}{hint}")
    spec = methods[method]
    src = read_source(image)
    h, w = src.rgb.shape[:2]
    too_small = check_params(spec.name, params, (h, w))  # before any work: a bad option is the caller's error
    label = classic_label(spec.name)
    msg = None
    if too_small is not None:
        msg = f"{too_small}; {src.name} is {w}x{h}: empty map"
    elif min(h, w) < spec.min_side:
        msg = f"{spec.name} needs at least {spec.min_side} pixels a side; {src.name} is {w}x{h}: empty map"
    elif spec.needs_jpeg and not src.is_jpeg:
        msg = (
            f"{spec.name} needs a JPEG file (path, bytes or PIL image with its quantization table); "
            f"{src.name} has none: empty map"
        )
    if msg is not None:
        return not_applicable(src, spec.name, msg, name=name)
    t0 = time.perf_counter()
    raw_map, score, raw = spec.run(src, **params)
    seconds = time.perf_counter() - t0
    if raw_map.shape != (h, w):
        raise RuntimeError(f"{spec.name}: map {raw_map.shape} differs from image {(h, w)}")
    notes = [*src.notes, f"classic detector {spec.name} ({spec.description})"]
    # the method found its premise does not hold for this picture: an empty map that says so
    notice = f"{spec.name}: {raw['not_applicable']}: empty map" if "not_applicable" in raw else None
    if notice is not None:
        raw_map, score = constant_plane(0.0, (h, w), np.float64), None
        notes.append(notice)
    elif not np.any(raw_map):  # an all-zero map is no finding: say so rather than show a black panel
        notes.append(f"{spec.name}: the map is zero everywhere: " + raw.get("empty_reason", "nothing to show here"))
    elif not spec.bounded and _flat(np.nan_to_num(np.asarray(raw_map, np.float64))):
        notes.append(f"{spec.name}: the map has one value everywhere (no contrast): nothing stands out, empty map")
    for key in ("fallback", "note"):  # what the method says about this image
        if key in raw:
            notes.append(f"{spec.name}: {raw[key]}")
    if score is None and fallback_score and notice is None:
        score = float(np.percentile(_normalise(raw_map, spec.bounded), 99))
        notes.append(f"{spec.name} defines no global score: score = 99th percentile of the map")
    raw32 = constant_plane(0.0, (h, w)) if notice is not None else _own_read_only(raw_map, np.float32)
    if "noiseprint" in raw:  # the Noiseprint++ map
        shown = _sealed(np.nan_to_num(np.asarray(raw["noiseprint"], np.float32)))
    else:  # the raw map itself: one read-only plane for both fields where it is finite
        shown = raw32 if np.isfinite(raw32).all() else _sealed(np.nan_to_num(raw32))
    captures = {
        "method": spec.name,
        "applicable": notice is None,
        "shown": "Noiseprint++" if "noiseprint" in raw else f"{spec.name} (raw output)",
        "raw_map": raw32,
        "seconds": seconds,
        "params": dict(params),
        # the method's arrays, made for this result: read-only (as_shown's result shares captures)
        **{k: _sealed(v) if isinstance(v, np.ndarray) else v for k, v in raw.items() if k != "noiseprint"},
    }
    return Result(
        image=read_only(src.rgb),
        noiseprint=shown,
        map=constant_plane(0.0, (h, w)) if notice is not None else _sealed(_normalise(raw_map, spec.bounded)),
        conf=constant_plane(1.0, (h, w)),
        score=score,
        name=name or src.name,
        notice=notice,
        exif_orientation=src.orientation,
        notes=tuple(notes),
        captures=captures,
        label=label,
    )
