"""Why Pillow did not take a file: what its first bytes say it is (another format, a TIFF in a
compression this Pillow cannot decode, a damaged or cut file), for one-line refusals that say
more than 'unknown'."""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import IO

import numpy as np
from PIL import Image, TiffImagePlugin

from trufor_lab.common.image_files import FORMATS, image_formats, pil_log_unprinted, tag_ints
from trufor_lab.common.paths import signed_format

__all__ = ["tiff_codec_reason", "unrecognised_reason"]


def _source(source: bytes | str) -> IO[bytes]:
    """The file (a path), or the bytes given for it, to read from the start."""
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def unrecognised_reason(source: bytes | str) -> str:
    """Why Pillow did not take a file (its path, or the bytes given), from its first bytes where
    they say more than 'unknown'."""
    try:
        with _source(source) as f:
            first = f.read(64)
    except OSError:
        first = b""
    head = first[:4]
    if first[4:8] == b"ftyp" and (kind := _bmff_kind(first)):
        return kind
    if head[:3] == b"\xff\xd8\xff":
        return "a JPEG that cannot be decoded here (damaged, or 12-bit, lossless or hierarchical coding?)"
    if head == b"\x89PNG":
        return "a PNG whose header or image data cannot be read (cut short or damaged?)"
    if head in (b"%!PS", b"\xc5\xd0\xd3\xc6"):
        return "a PostScript/EPS file, not read (decoding it would run Ghostscript)"
    if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        kind = _tiff_kind(source)
        if kind == _TRUNCATED:
            return "unreadable image (file is truncated)"
        if codec := tiff_codec_reason(source, unknown_only=True):  # Pillow does not know the compression
            return codec
        if kind in _ORDINARY_KINDS:  # plain samples: its layout, not its format, is at fault
            return f"a damaged TIFF ({_tiff_damage(source)})"
        return f"a TIFF with a sample format not supported here ({kind or 'float colour?'})"
    if (name := signed_format(first)) is not None:  # its signature says what it should be
        return f"a {name} that cannot be read (damaged, cut short, or of zero width or height?)"
    other = _other_format(source)
    if other is not None:
        return f"an image in a format not read here: {other}; convert it to PNG"
    return "not an image file (unrecognised format, or one not read here)"


#: Formats never opened, even to name them: EPS's plugin hands the file to Ghostscript. Pillow's
#: stubs (HDF5, BUFR, GRIB; MPEG) name data containers and videos by a few bytes: a weights file
#: is not an image in another format.
_NEVER_OPENED = ("EPS", "HDF5", "BUFR", "GRIB", "MPEG")

#: Bytes of a file handed to the other formats' plugins: enough for any header, and a plugin that
#: reads on (XPM reads lines: 600 MiB for a 300 MiB file without one) stops there.
_HEADER_BYTES = 64 * 1024


def _other_format(source: bytes | str) -> str | None:
    """The format of a file that Pillow opens beyond :data:`FORMATS` (``DDS (DirectDraw
    Surface)``), from its first :data:`_HEADER_BYTES` alone: nothing is decoded, EPS never
    opened; ``None`` when no plugin takes it."""
    Image.init()
    others = [f for f in Image.OPEN if f not in FORMATS and f not in _NEVER_OPENED]
    try:
        with _source(source) as f:
            head = io.BytesIO(f.read(_HEADER_BYTES))
        with pil_log_unprinted(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(head, formats=others) as im:
                return f"{im.format} ({im.format_description})" if im.format_description else str(im.format)
    except Exception:  # no plugin takes it, or one that does fails on its header: unnamed
        return None


#: ISO-BMFF brands (the ``ftyp`` box) of still pictures: iPhones save HEIC.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _bmff_kind(first: bytes) -> str | None:
    """Why a HEIC/HEIF or AVIF picture (its ``ftyp`` box in ``first``) was not read; ``None``
    for another ISO-BMFF file (a video)."""
    size = int.from_bytes(first[:4], "big")
    brands = {first[i : i + 4] for i in range(8, min(max(size, 16), len(first)) - 3, 4) if i != 12}
    if brands & _AVIF_BRANDS:
        if "AVIF" in image_formats():
            return "an AVIF picture that cannot be decoded here (damaged, or a coding this Pillow lacks?)"
        return "an AVIF picture: reading it needs a Pillow built with AVIF (12 or later), or convert it to JPEG/PNG"
    if brands & _HEIF_BRANDS:
        return (
            "a HEIC/HEIF photo: reading it needs the pillow-heif plugin (pip install pillow-heif), "
            "or convert it to JPEG/PNG"
        )
    return None


_TRUNCATED = "truncated"


def _tiff_kind(source: bytes | str) -> str:
    """'32-bit float, 3 samples a pixel' from a TIFF's first directory ('' when unreadable,
    :data:`_TRUNCATED` when the directory or the pixel data it points to runs past the end of
    the file: a cut file read as a default 1-bit picture was called an unsupported format)."""
    try:
        with _source(source) as f, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            file_size = len(source) if isinstance(source, bytes) else os.fstat(f.fileno()).st_size
            ifd = _first_ifd(f)
            # Pillow's short reads ("Truncated File Read", "Corrupt EXIF data. Expecting to read 2
            # bytes but only got 0"): a regular file ran out of bytes
            if any(re.search(r"truncated|only got", str(w.message), re.I) for w in caught):
                return _TRUNCATED
            # still within: Pillow decodes each tag when it is read, and warns then ("Metadata
            # Warning, tag 277 had too many entries"), two lines on the terminal naming no file
            if _tiff_data_end(ifd) > file_size:
                return _TRUNCATED
            bits, kinds = ({int(v) for v in np.atleast_1d(ifd.get(tag, 1))} for tag in (258, 339))
            n = int(ifd.get(277, 1))
        size = f"{min(bits)}-bit" if len(bits) == 1 else "mixed-size"
        kind = {1: "unsigned", 2: "signed", 3: "float"}.get(min(kinds), "unknown") if len(kinds) == 1 else "mixed"
        return f"{size} {kind}, {n} sample{'s' if n != 1 else ''} per pixel"
    except Exception:  # a damaged directory: the format is still named
        return ""


def _first_ifd(f: IO[bytes]) -> TiffImagePlugin.ImageFileDirectory_v2:
    """A TIFF's first directory, read from the file's start."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2(f.read(8))
    f.seek(ifd.next)
    ifd.load(f)
    return ifd


#: TIFF compressions (tag 259) that a Pillow's libtiff may be built without.
_TIFF_CODECS = {2: "CCITT RLE", 3: "CCITT Group 3", 4: "CCITT Group 4", 6: "old-style JPEG", 34712: "JPEG 2000",
                34887: "LERC", 34892: "lossy JPEG (DNG)", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP",
                50002: "JPEG XL", 52546: "JPEG XL"}  # fmt: skip


def tiff_codec_reason(source: bytes | str, unknown_only: bool = False) -> str | None:
    """Why a TIFF's pixels did not decode when its compression is one libtiff may be built
    without (libtiff's own words are 'decoder error -2'); ``None`` for other files.
    ``unknown_only``: only for a compression Pillow does not know at all (it refuses to open
    such a file: 'SyntaxError: 34712' was called damage), named by its number if not above."""
    try:
        with _source(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if f.read(4) not in (b"II*\x00", b"MM\x00*"):
                return None
            f.seek(0)
            code = _first_ifd(f).get(259)
            codec = _TIFF_CODECS.get(code)
            if unknown_only:
                if code is None or code in TiffImagePlugin.COMPRESSION_INFO:
                    return None
                codec = codec or f"compression scheme {int(code)}"
    except Exception:  # a damaged directory: the decoder's words stand
        return None
    return None if codec is None else f"a TIFF compressed with {codec}, which this Pillow/libtiff cannot decode"


#: Sample layouts Pillow reads (:func:`_tiff_kind`'s words): such a TIFF it cannot open is damaged.
_ORDINARY_KINDS = {f"{b}-bit unsigned, {n} sample{'s' if n != 1 else ''} per pixel" for b in (1, 2, 4, 8, 16)
                   for n in (1, 2, 3, 4)}  # fmt: skip


def _tiff_damage(source: bytes | str) -> str:
    """What is wrong in the layout of a TIFF with ordinary samples that Pillow cannot open."""
    try:
        with _source(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ifd = _first_ifd(f)
            w, h, rows = (int(ifd.get(t, 0)) for t in (256, 257, 278))
            strips, planes = len(tag_ints(ifd.get(273))), int(ifd.get(277, 1)) if ifd.get(284) == 2 else 1
            if not (w and h):
                return "its width or height is missing"
            if 278 in ifd and not 0 < rows < 2**31:
                return f"its RowsPerStrip {rows} is out of range"
            want = -(-h // min(rows or h, h)) * planes
            if strips and strips != want:
                return f"it lists {strips} strips where its size and RowsPerStrip make {want}"
            f.seek(0)
            TiffImagePlugin.TiffImageFile(f)
    except Exception as e:  # Pillow's own words for what else fails
        return f"its layout cannot be read: {type(e).__name__}: {' '.join(str(e).split())[:100]}"
    return "its layout cannot be read"


def _tiff_data_end(ifd: TiffImagePlugin.ImageFileDirectory_v2) -> int:
    """Where the last strip or tile of a TIFF directory ends (0 without any)."""
    for offsets, counts in ((273, 279), (324, 325)):  # strips, tiles
        if offsets in ifd and counts in ifd:
            ends = (int(o) + int(c) for o, c in zip(np.atleast_1d(ifd[offsets]), np.atleast_1d(ifd[counts])))
            return max(ends, default=0)
    return 0
