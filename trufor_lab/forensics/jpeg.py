"""JPEG facts read from the file itself: quantisation tables, IJG quality, subsampling.

Forensic context: the quantisation tables tell which encoder (camera firmware, libjpeg
software, an editor) wrote the file and at what quality; a low standard-libjpeg quality is a
typical trace of re-compression by software or a social network. Tables are read straight
from the DQT segments (no dependence on how a Pillow version orders ``im.quantization``).
Also holds small in-memory JPEG round-trip helpers used elsewhere (augmentation, tests).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from trufor_lab.common.image_files import image_formats, palette_missing, png_text_limit, png_without_text
from trufor_lab.common.paths import why_not_found
from trufor_lab.common.unreadable import unrecognised_reason
from trufor_lab.forensics.ijg import IJG_CHROMINANCE, IJG_LUMINANCE, ZIGZAG, ijg_scale, ijg_stack, ijg_table

#: What Pillow raises on a mangled file or metadata block (seen on truncated and fuzzed files):
#: reading an untrusted file catches these, reports one line and goes on; anything else is a bug.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,  # Pillow's AVIF/HEIF decoders on a damaged file ("Missing or empty image item")
    SyntaxError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    EOFError,
    struct.error,
    zlib.error,
    MemoryError,
)

__all__ = [
    "Source",
    "ZIGZAG",
    "IJG_LUMINANCE",
    "IJG_CHROMINANCE",
    "QualityEstimate",
    "ijg_scale",
    "ijg_table",
    "zigzag_to_natural",
    "quantization_tables",
    "used_tables",
    "estimate_quality",
    "chroma_subsampling",
    "is_progressive",
    "jpeg_bytes",
    "jpeg_compress",
]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]


_SUBSAMPLING_TO_PIL = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
_SAMPLING_NAMES = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1", (1, 2): "4:4:0"}
PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


# --------------------------------------------------------------------------- input


@dataclass
class OpenedSource:
    """A source resolved to a display name, its bytes (when obtainable) and a PIL image."""

    name: str
    path: str | None
    data: bytes | None
    image: Image.Image
    warnings: list[str] = field(default_factory=list)


def _source_name(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "<file object>"


def _read_source(source: Source) -> tuple[str, str | None, bytes | None, Image.Image | None]:
    """(name, path, bytes or None, PIL image or None); ``ValueError`` when unreadable."""
    name = _source_name(source)
    if isinstance(source, Image.Image):
        data = None
        fp = getattr(source, "fp", None)
        try:
            if fp is not None and not getattr(fp, "closed", False) and fp.seekable():
                pos = fp.tell()
                fp.seek(0)
                data = fp.read()
                fp.seek(pos)
            elif getattr(source, "filename", "") and os.path.isfile(source.filename):
                with open(source.filename, "rb") as f:
                    data = f.read()
        except (OSError, ValueError):
            data = None
        path = getattr(source, "filename", "") or None
        return name, path, data, source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return name, None, bytes(source), None
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(source):
            raise ValueError(f"{name}: is a folder, not an image")
        if not os.path.isfile(source):  # a pipe would block the read below, /dev/zero never end it
            raise ValueError(f"{name}: {why_not_found(Path(source))}")
        try:
            with open(source, "rb") as f:
                return name, name, f.read(), None
        except OSError as e:
            raise ValueError(f"{name}: cannot read file ({e.strerror or e})") from None
    if hasattr(source, "read"):
        try:
            # seekable file objects are read whole (from the start), then the position restored
            pos = source.tell() if source.seekable() else None
            if pos is not None:
                source.seek(0)
            data = source.read()
            if pos is not None:
                source.seek(pos)
        except (OSError, ValueError) as e:
            raise ValueError(f"{name}: cannot read file object ({e})") from None
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"{name}: file object must be opened in binary mode")
        return name, (name if os.path.isfile(name) else None), bytes(data), None
    raise ValueError(f"{name}: unsupported source type {type(source).__name__}")


def _open_bytes(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=image_formats())  # no EPS: it would run Ghostscript
    palette_missing(im)  # Pillow would read every pixel as black
    return im


def open_source(source: Source) -> OpenedSource:
    """Resolve ``source`` and open it with PIL (lazily: pixels are not decoded)."""
    name, path, data, image = _read_source(source)
    caught: list[str] = []
    if image is None:
        assert data is not None
        if not data:
            raise ValueError(f"{name}: empty file, not an image")
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            try:
                try:
                    image = _open_bytes(data)
                except ValueError as e:  # a text chunk before the pixels inflates beyond Pillow's limit
                    if not png_text_limit(e):
                        raise
                    image = _open_bytes(png_without_text(data))
                    warnings.warn(
                        "PNG text metadata not read: it inflates beyond the safe limit (a decompression bomb?)"
                    )
            except UnidentifiedImageError:
                raise ValueError(f"{name}: {unrecognised_reason(data)}") from None
            except Image.DecompressionBombError as e:
                raise ValueError(f"{name}: refused, image too large ({e})") from None
            except PARSE_ERRORS as e:  # mangled headers
                raise ValueError(f"{name}: unreadable image ({type(e).__name__}: {e})") from None
        caught = [str(w.message) for w in ws]
    return OpenedSource(name=name, path=path, data=data, image=image, warnings=caught)


# --------------------------------------------------------------------------- JPEG headers


@dataclass
class JpegHeader:
    qtables: dict[int, np.ndarray] = field(default_factory=dict)
    sof: int | None = None
    components: list[tuple[int, int, int, int]] = field(default_factory=list)  # (id, H, V, Tq)
    errors: list[str] = field(default_factory=list)  # invalid DQT entries (see ``header_problems``)
    #: damage that decoders step over (the tables stay usable), e.g. stray bytes between segments
    warnings: list[str] = field(default_factory=list)
    #: every EXIF block (APP1 ``Exif``) and XMP packet (APP1, Adobe's namespace) before the first
    #: scan, in file order: readers (Pillow) take one of each, a program may have added another
    exif_blocks: list[bytes] = field(default_factory=list)
    xmp_packets: list[bytes] = field(default_factory=list)


_XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"


def _parse_jpeg_header(data: bytes) -> JpegHeader | None:
    """Parse markers up to the first SOS. ``None`` when ``data`` is not a JPEG stream.

    Bytes between segments that are not a marker are skipped up to the next 0xFF marker byte, as
    libjpeg does ("Corrupt JPEG data: N extraneous bytes before marker"), and recorded in
    ``warnings``: no encoder writes them, a hand edit or damage does.
    """
    if data[:2] != b"\xff\xd8":
        return None
    hdr = JpegHeader()
    i, n = 2, len(data)
    while i + 4 <= n:
        start = i
        while True:  # to the next marker: 0xFF fill bytes, then a code other than 0x00 (stuffing)
            while i < n and data[i] != 0xFF:
                i += 1
            while i < n and data[i] == 0xFF:
                i += 1
            if i >= n or data[i] != 0x00:
                break
            i += 1
        if i >= n:
            break
        marker = data[i]
        skipped = len(data[start:i].rstrip(b"\xff"))  # what precedes the marker's 0xFF fill bytes
        if skipped:
            hdr.warnings.append(
                f"{skipped} extraneous byte{'s' if skipped > 1 else ''} before marker 0x{marker:02X} skipped "
                "(as decoders do; no encoder writes them: a hand-edited or damaged file)"
            )
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # standalone markers
        if marker == 0xD9 or i + 2 > n:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        payload = data[i + 2 : i + length]
        i += length
        if marker == 0xDB:
            _parse_dqt(payload, hdr.qtables, hdr.errors)
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            hdr.exif_blocks.append(payload)
        elif marker == 0xE1 and payload.startswith(_XMP_PREFIX):
            hdr.xmp_packets.append(payload[len(_XMP_PREFIX) :])
        elif marker in _SOF_MARKERS and hdr.sof is None and len(payload) >= 6:
            hdr.sof = marker
            for k in range(payload[5]):
                c = payload[6 + 3 * k : 9 + 3 * k]
                if len(c) == 3:
                    hdr.components.append((c[0], c[1] >> 4, c[1] & 15, c[2]))
        elif marker == 0xDA:
            break
    return hdr


def _parse_dqt(payload: bytes, out: dict[int, np.ndarray], errors: list[str]) -> None:
    """Tables of one DQT segment into ``out``.

    A table id above 3 or a precision other than 8/16 bit is invalid (decoders refuse it, and
    the table's length is unknown): recorded in ``errors``, the rest of the segment is skipped.
    """
    j = 0
    while j < len(payload):
        pq, tq = payload[j] >> 4, payload[j] & 15
        if tq > 3 or pq > 1:
            what = f"table id {tq} (must be 0..3)" if tq > 3 else f"precision {pq} (must be 0 or 1)"
            errors.append(f"DQT segment has an invalid {what}")
            return
        size = 128 if pq else 64
        raw = payload[j + 1 : j + 1 + size]
        if len(raw) < size:
            return  # truncated table: ignore it
        zz = np.frombuffer(raw, dtype=">u2" if pq else np.uint8).astype(np.uint16)
        out[tq] = zigzag_to_natural(zz)
        j += 1 + size


def zigzag_to_natural(values: "np.typing.ArrayLike") -> np.ndarray:
    """64 coefficients in zig-zag (DQT/file) order -> 8x8 uint16 array in row-major order."""
    zz = np.asarray(values).reshape(64)
    nat = np.empty(64, dtype=np.uint16)
    nat[ZIGZAG] = zz
    return nat.reshape(8, 8)


@lru_cache(maxsize=1)
def _pil_quantization_is_natural() -> bool:
    """Whether this Pillow's ``im.quantization`` is row-major (True since Pillow 8.3) or zig-zag."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "JPEG", qtables=[list(range(1, 65))])
    hdr = _parse_jpeg_header(buf.getvalue())
    pil = np.asarray(Image.open(io.BytesIO(buf.getvalue())).quantization[0], dtype=np.uint16)
    return bool(hdr is not None and np.array_equal(pil.reshape(8, 8), hdr.qtables[0]))


def read_header(op: OpenedSource) -> JpegHeader | None:
    """Header from the file bytes, or rebuilt from PIL's attributes when there are no bytes."""
    if op.data is not None:
        hdr = _parse_jpeg_header(op.data)
        if hdr is not None and (hdr.qtables or hdr.sof is not None or hdr.errors):
            return hdr
    im = op.image
    if not isinstance(im, JpegImagePlugin.JpegImageFile):
        return None
    hdr = JpegHeader()
    natural = _pil_quantization_is_natural()
    for k, tab in getattr(im, "quantization", {}).items():
        arr = np.asarray(tab, dtype=np.uint16)
        hdr.qtables[k] = arr.reshape(8, 8) if natural else zigzag_to_natural(arr)
    # PIL's layer tuples are (id, high nibble, low nibble, Tq); high nibble is H.
    hdr.components = [(c[0], c[1], c[2], c[3]) for c in getattr(im, "layer", [])]
    prog = im.info.get("progressive") or im.info.get("progression")
    hdr.sof = 0xC2 if prog else 0xC0
    return hdr


# --------------------------------------------------------------------------- public API


def quantization_tables(source: Source) -> dict[int, np.ndarray]:
    """Quantisation tables by table id as 8x8 uint16 arrays in natural (row-major) order.

    Empty dict for non-JPEG images; ``ValueError`` if ``source`` is not a readable image.
    """
    hdr = read_header(open_source(source))
    return {} if hdr is None else {k: v.copy() for k, v in sorted(hdr.qtables.items())}


@dataclass(frozen=True)
class QualityEstimate:
    """Nearest libjpeg (IJG) quality for a file's quantisation tables.

    ``quality``: the quality of the luminance table, what encoders and everyone else call a
    JPEG's quality (``cjpeg -quality 90,60`` is a quality-90 file with chroma at 60); the
    chroma side is in ``chroma_quality``. Equal to ``luma_quality``.
    ``exact``: every table equals libjpeg's at ``quality`` (the file follows standard libjpeg
    scaling, as written by most software, e.g. PIL, OpenCV, browsers, many social networks).
    ``standard``: each table is *some* IJG-scaled Annex K table, possibly at different
    qualities for luma and chroma (e.g. ``cjpeg -quality 90,80``). Camera firmware and
    Photoshop use their own tables: ``exact=standard=False``, ``quality`` is only the nearest.
    ``error``: mean absolute difference of all the tables used to the IJG tables at ``quality``.
    ``chroma_quality``: nearest quality of the chroma tables; the lowest one when Cb and Cr use
    different tables (the stronger compression is the one that matters for forensics).
    """

    quality: int
    exact: bool
    error: float
    standard: bool
    luma_quality: int
    chroma_quality: int | None
    n_tables: int

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def header_problems(hdr: JpegHeader) -> list[str]:
    """Why ``hdr``'s tables cannot be trusted: invalid DQT entries, a component using a table
    that is not defined (guessing another table would give a wrong quality), or a table in use
    holding zero quantisers (JPEG allows 1 and up; decoders still decode, so files exist).
    Empty when sound; a header without any table is not reported here (the caller says so in
    its own words).
    """
    out = list(hdr.errors)
    if hdr.qtables:
        for cid, _, _, tq in hdr.components:
            if tq not in hdr.qtables:
                out.append(f"component {cid} uses quantisation table {tq}, which is not defined")
        used = [c[3] for c in hdr.components if c[3] in hdr.qtables] or sorted(hdr.qtables)
        for tq in dict.fromkeys(used):
            zeros = int(np.count_nonzero(hdr.qtables[tq] == 0))
            if zeros:
                out.append(
                    f"quantisation table {tq} holds {zeros} zero quantiser{'s' if zeros > 1 else ''}, "
                    "invalid in JPEG (1 at least): the tables were forged or damaged"
                )
    return out


def used_tables(hdr: JpegHeader) -> tuple[np.ndarray, list[np.ndarray]]:
    """(luma table, distinct chroma tables): the first component's table and the other components'.

    Without components (a header rebuilt from PIL), the two lowest table ids, as libjpeg writes.
    Call only when ``header_problems(hdr)`` is empty and ``hdr.qtables`` is not.
    """
    ids = [c[3] for c in hdr.components] or sorted(hdr.qtables)[:2]
    chroma_ids = list(dict.fromkeys(i for i in ids[1:] if i != ids[0]))
    return hdr.qtables[ids[0]], [hdr.qtables[i] for i in chroma_ids]


def estimate_quality(source: Source) -> QualityEstimate | None:
    """Nearest IJG quality (1..100) of the file's luminance table, with the chroma side beside
    it (see :class:`QualityEstimate`); ``None`` for non-JPEG."""
    return estimate_from_header(read_header(open_source(source)))


def estimate_from_header(hdr: JpegHeader | None) -> QualityEstimate | None:
    """Quality from a parsed header; ``None`` without tables or when ``header_problems`` finds any."""
    if hdr is None or not hdr.qtables or header_problems(hdr):
        return None
    luma, chromas = used_tables(hdr)
    cand = ijg_stack()  # (fb, q, c, 8, 8)

    def table_err(kind: int, t: np.ndarray) -> np.ndarray:
        return np.abs(cand[:, :, kind] - t.astype(np.int64)).mean(axis=(2, 3))  # (fb, q)

    def nearest(e: np.ndarray, prefer: int | None = None) -> int:
        """The quality whose table is nearest; among equally near ones ``prefer`` if it is one
        (at qualities 1-3 every chroma value clips to 255: one table for three qualities)."""
        if prefer is not None and e[:, prefer - 1].min() == e.min():
            return prefer
        return int(np.unravel_index(int(np.argmin(e)), e.shape)[1]) + 1  # rows: baseline-clamped first

    err_l = table_err(0, luma)
    err_cs = [table_err(1, t) for t in chromas]  # every chroma table a component uses (Cb and Cr)
    err = (err_l + np.mean(err_cs, axis=0)) / 2 if err_cs else err_l
    ql = nearest(err_l)
    # rows: baseline-clamped (what PIL/cjpeg write) first; the error of all tables at the luma quality
    e = float(err[:, ql - 1].min())
    return QualityEstimate(
        quality=ql,
        exact=e == 0.0,
        error=round(e, 4),
        standard=all(bool(x.min() == 0) for x in (err_l, *err_cs)),
        luma_quality=ql,
        chroma_quality=min(nearest(x, prefer=ql) for x in err_cs) if err_cs else None,
        n_tables=len(hdr.qtables),
    )


def chroma_subsampling(source: Source) -> str | None:
    """'4:4:4', '4:2:2', '4:2:0', '4:1:1' (or '4:4:0') from the frame header.

    ``None`` for non-JPEG, greyscale/CMYK JPEGs, or unusual factor combinations.
    """
    return subsampling_from_header(read_header(open_source(source)))


def subsampling_from_header(hdr: JpegHeader | None) -> str | None:
    if hdr is None or len(hdr.components) != 3:
        return None
    (_, h0, v0, _), (_, h1, v1, _), (_, h2, v2, _) = hdr.components
    if (h1, v1) != (h2, v2) or min(h1, v1) < 1 or h0 % h1 or v0 % v1:
        return None
    return _SAMPLING_NAMES.get((h0 // h1, v0 // v1))


def is_progressive(source: Source) -> bool:
    """Whether the JPEG uses progressive coding (SOF2/6/10/14); False for non-JPEG."""
    hdr = read_header(open_source(source))
    return bool(hdr is not None and hdr.sof in PROGRESSIVE_SOF)


def jpeg_bytes(rgb_uint8: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """Encode an HxWx3 (or HxW) uint8 array as a baseline JPEG with libjpeg's IJG tables."""
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8:
        raise ValueError(f"jpeg_bytes: expected uint8 array, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"jpeg_bytes: expected HxWx3 or HxW array, got shape {arr.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg_bytes: quality must be in 1..100, got {quality}")
    if subsampling not in _SUBSAMPLING_TO_PIL:
        raise ValueError(f"jpeg_bytes: subsampling must be one of {sorted(_SUBSAMPLING_TO_PIL)}, got {subsampling!r}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(
        buf, "JPEG", quality=int(quality), subsampling=_SUBSAMPLING_TO_PIL[subsampling]
    )
    return buf.getvalue()


def jpeg_compress(rgb_uint8: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """JPEG round trip in memory: same shape and dtype as the input, with JPEG artefacts."""
    arr = np.asarray(rgb_uint8)
    out = np.asarray(Image.open(io.BytesIO(jpeg_bytes(arr, quality, subsampling))))
    return out.reshape(arr.shape) if out.size == arr.size else out
