"""Image files read on the pixel grid they store, whatever Pillow does on the way.

Two Pillow behaviours make a file's pixels differ from what it stores: its TIFF loader turns
the image by the EXIF orientation as it loads (and drops the tag), and a file opened *by path*
may be memory-mapped with the turned size, which scrambles uncompressed TIFFs with an
orientation of 5-8 (grey, palette, RGBA, CMYK, 16-bit; Pillow 13). A forgery map must line up
with the file and with its mask, so images and masks are read through a file object (no
mapping) and turned back.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile

from trufor_lab.common.native_stderr import native_stderr_kept
from trufor_lab.common.png_bytes import png_closed, png_rows_missing, png_text_limit, png_without_text

__all__ = [
    "DAMAGED_FILE_ERRORS",
    "FORMATS",
    "MAX_PIXELS",
    "decoder_words",
    "deep_colour",
    "icon_note",
    "image_formats",
    "load_heard",
    "load_stored",
    "loaded_tiff_orientation",
    "open_image",
    "open_unwarned",
    "orientation_tag",
    "palette_missing",
    "pil_log_unprinted",
    "pixel_limit",
    "planar16_tiff",
    "ppm_maxval",
    "png_closed",  # these four from png_bytes, where they live: read here by older imports
    "png_rows_missing",
    "png_text_limit",
    "png_without_text",
    "reduced_image_note",
    "stored_pixels",
    "stored_size",
    "tiff_uncovered",
    "turn_as_shown",
    "turn_to_stored",
    "undo_loader_turn",
    "unread_source",
    "xmp_filled_orientation",
]

#: The transpose that undoes each EXIF orientation (what ImageOps.exif_transpose applies).
UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


#: What Pillow and its plugins raise on a damaged or crafted file, besides the OSError and
#: SyntaxError they mean to raise (a TIFF whose next-IFD pointer leads nowhere raises TypeError from
#: n_frames; a PNG whose colour-type byte was changed, TypeError from the decoder's setup; a TIFF
#: whose strip offset is a fraction, TypeError from the seek; AVIF/HEIF decoders RuntimeError):
#: each is that file's problem only, said in one line naming it.
DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    SyntaxError,
    ValueError,
    EOFError,
    MemoryError,
    TypeError,
    IndexError,
    KeyError,
    ArithmeticError,
    AssertionError,
    struct.error,
)

#: Largest image read by default (pixels): a 200 MP panorama passes; a header claiming more is
#: refused before any pixel is decoded (a decompression bomb). Pillow's own limit is lower.
MAX_PIXELS = 200_000_000


@contextmanager
def pixel_limit(max_pixels: int = MAX_PIXELS) -> Iterator[None]:
    """Within the block, Pillow refuses an image of more than ``max_pixels`` (its global limit
    restored after) with a one-line ``ValueError`` naming the count, not its
    ``DecompressionBombError``, which callers catching decoder errors do not expect."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(n.group(1))} pixels" if n else "the image"
        raise ValueError(f"refused: {size} is more than max_pixels={max_pixels} (decompression bomb?)") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


#: The formats images and masks are read in: what cameras, phones, editors and benchmarks write
#: (MPO opens as JPEG). Not Pillow's others, EPS/PS above all, whose decoding runs Ghostscript.
#: Pillow tries them in this order: TGA, which has no signature, comes last (an icon was read as
#: a TGA of nonsense).
FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "DIB", "GIF", "WEBP", "PPM", "JPEG2000", "ICO", "PCX",
           "SGI", "QOI", "PSD", "AVIF", "HEIF", "TGA")  # fmt: skip


def image_formats() -> tuple[str, ...]:
    """:data:`FORMATS` that this Pillow can open (Pillow refuses a name without a plugin)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


class _Unprinted(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


@contextmanager
def pil_log_unprinted() -> Iterator[None]:
    """Pillow's own log lines (``More samples per pixel than can be decoded: 2048``) kept off
    the terminal of a program that configured no logging, while a file is read: the reader says
    what is wrong in one line naming the file. Configured handlers still get them."""
    log, handler = logging.getLogger("PIL"), _Unprinted()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


@contextmanager
def truncated_refused() -> Iterator[None]:
    """Pillow's ``LOAD_TRUNCATED_IMAGES`` off while a file is read (restored after): a notebook
    that set it (common in training code) made a cut file read silently, its missing part
    filled in, where the reader must say the file is cut short."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


@contextmanager
def open_image(source: str | os.PathLike | IO[bytes]) -> Iterator[Image.Image]:
    """``Image.open`` of :data:`FORMATS` only, through a file object (a path is opened here):
    never memory-mapped; Pillow's log lines unprinted (:func:`pil_log_unprinted`), and libtiff's
    while the header is read (:func:`~trufor_lab.common.native_stderr.native_stderr_kept`, only
    around Pillow's own calls: a warning the caller prints within the block still reaches the
    terminal); a cut file never read as whole (:func:`truncated_refused`)."""
    with pil_log_unprinted(), truncated_refused():
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f, _header(f) as im:
                yield im
        else:
            with _header(source) as im:
                yield im


@contextmanager
def open_unwarned(source: str | os.PathLike | IO[bytes], max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """:func:`open_image` under :func:`pixel_limit`, for a reader with no notes to give Pillow's
    warnings to (a mask, an image's size read from its header): they are not printed. A corrupt
    EXIF block or a TIFF tag of too many values made two lines each on the terminal, naming no
    file, in the middle of an evaluation; what damages the pixels raises all the same."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # first: pixel_limit's filter goes in front, a bomb still raises
        with pixel_limit(max_pixels), open_image(source) as im:
            yield im


@contextmanager
def _native_kept() -> Iterator[list[str]]:
    """libtiff's lines kept off the terminal (:func:`native_stderr_kept`, filled on leaving);
    Python's warnings raised meanwhile, which would be written on fd 2 too, are shown after."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            with native_stderr_kept() as printed:
                yield printed
        finally:
            heard = list(caught)
    for w in heard:  # the caller's filters were applied when each was raised
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def _header(f: IO[bytes]) -> Image.Image:
    """``Image.open`` of :data:`FORMATS`, libtiff's lines kept off the terminal; a palette image
    whose file gives no palette refused (:func:`palette_missing`)."""
    with _native_kept():
        im = Image.open(f, formats=image_formats())
    palette_missing(im)
    return im


def palette_missing(im: Image.Image) -> None:
    """Raise ``SyntaxError`` for a palette image whose file holds no palette for its pixels: a PNG
    of colour type 3 without its PLTE chunk before the image data (missing, or put after it).
    Pillow reads every pixel of it as black, and that black picture was analysed (and read as an
    empty mask) without a word; libpng refuses such a file."""
    if im.mode in ("P", "PA") and getattr(im, "palette", None) is None:
        raise SyntaxError("palette image without its palette (no PLTE chunk before the image data): colours unknown")


def decoder_words(printed: list[str]) -> list[str]:
    """A C decoder's lines, without the name libtiff gives Pillow's data (``tempfile.tif: ``)."""
    return list(dict.fromkeys(re.sub(r"^tempfile\.tif: ", "", line).rstrip(".") for line in printed))


def load_heard(im: Image.Image) -> None:
    """``im.load()`` with libtiff's lines kept off the terminal; where the decoder fails with only
    its number (``decoder error -2``), the ``OSError`` raised gives libtiff's reason instead."""
    printed: list[str] = []
    try:
        with _native_kept() as printed:
            im.load()
    except OSError as e:
        words = decoder_words(printed)
        if words and "decoder error" in str(e):
            raise OSError(words[0][:160]) from e
        raise


def xmp_filled_orientation(im: Image.Image, exif: Image.Exif) -> bool:
    """Whether the orientation in ``exif`` (``im.getexif()``) came from an XMP packet, not from
    the EXIF block: Pillow fills one in from XMP's tiff:Orientation when EXIF has none, while
    browsers and viewers follow EXIF only (so such a picture is shown as stored)."""
    if 0x0112 not in exif or not (im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")):
        return False
    tags = getattr(im, "tag_v2", None)
    if tags is not None:  # a TIFF's own directory is its EXIF
        return 0x0112 not in tags
    raw = im.info.get("exif")
    try:
        if raw is None and "Raw profile type exif" in im.info:  # as Pillow reads it (ImageMagick's PNG text)
            raw = bytes.fromhex("".join(str(im.info["Raw profile type exif"]).split("\n")[3:]))
        if raw is None:
            return True
        own = Image.Exif()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own.load(raw)
    except Exception:  # a malformed block: Pillow's reading stands
        return False
    return 0x0112 not in own


def exif_orientation(im: Image.Image) -> Any:
    """The raw EXIF orientation tag (``None`` when absent, only in XMP (see
    :func:`xmp_filled_orientation`), or the EXIF block is malformed)."""
    try:
        exif = im.getexif()
        return None if xmp_filled_orientation(im, exif) else exif.get(0x0112)
    except Exception:  # malformed EXIF: reported as unknown, never fatal
        return None


def orientation_tag(im: Image.Image) -> tuple[Any, int | None]:
    """The EXIF orientation tag as stored and its value if valid (1-8, else ``None``); read it
    before the pixels load (Pillow's TIFF loader then turns them and drops the tag)."""
    raw = exif_orientation(im)
    return raw, raw if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 8 else None


def loaded_tiff_orientation(im: Image.Image) -> tuple[Any, int | None]:
    """:func:`orientation_tag` of a TIFF the caller has loaded already (Pillow's loader turned its
    pixels and dropped the tag), read again from its file while that still holds the same
    picture; ``(None, None)`` for anything else."""
    tags = getattr(im, "tag_v2", None)
    path = os.fsdecode(im.filename) if getattr(im, "filename", None) else None
    if im.format != "TIFF" or getattr(im, "tile", None) or tags is None or 274 in tags or not path:
        return None, None
    try:
        with open_image(path) as f:
            if im.tell():
                f.seek(im.tell())
            if stored_size(f) != stored_size(im) or f.mode != im.mode:
                return None, None  # the file changed since
            return orientation_tag(f)
    except (OSError, ValueError, EOFError, SyntaxError, Image.UnidentifiedImageError):
        return None, None


def deep_colour(im: Image.Image, tiles: Any) -> bool:
    """Whether ``im`` holds 16-bit colour reduced to 8 bits by Pillow (which keeps the top byte),
    from its decoder's ``tiles``; for an image the caller has loaded already (no tiles left), from
    its file while that still holds a picture of the same size and mode."""
    if im.mode not in ("RGB", "RGBA", "CMYK"):
        return False
    if tiles or not getattr(im, "filename", None) or im.format not in ("PNG", "TIFF"):
        return any(";16" in str(getattr(t, "args", "")) for t in tiles)
    try:
        with open_image(os.fsdecode(im.filename)) as f:
            if im.tell():
                f.seek(im.tell())
            return (f.size, f.mode) == (im.size, im.mode) and deep_colour(f, f.tile)
    except (OSError, ValueError, EOFError, SyntaxError, Image.UnidentifiedImageError):
        return False


def unread_source(im: Image.Image) -> str | bytes | None:
    """The file path, or the bytes, an unloaded PIL image was opened from, when reading them gives
    the same picture (its first frame, not shrunk or recoloured by ``draft``); else ``None``."""
    if not getattr(im, "tile", None) or im.tell() != 0:
        return None  # loaded (perhaps changed in memory since), made in memory, or another frame
    source: str | bytes | None = None
    try:
        if getattr(im, "filename", None):
            path = os.fsdecode(im.filename)  # Image.open(b"/path") keeps the name as bytes
            source = path if os.path.isfile(path) else None
        elif getattr(im, "fp", None) is not None:  # Image.open(BytesIO(...)): read from its start
            pos = im.fp.tell()
            im.fp.seek(0)
            source = im.fp.read()
            im.fp.seek(pos)
        if source is None:
            return None
        with open_image(io.BytesIO(source) if isinstance(source, bytes) else source) as fresh:
            same = (fresh.size, fresh.mode) == (im.size, im.mode)
    except Exception:  # noqa: BLE001 - a probe: whatever fails here, the image itself is read instead
        return None
    return source if same else None


def turned_view(a: np.ndarray, orientation: int | None) -> np.ndarray:
    """:func:`turn_as_shown` without the copy: a view of ``a`` turned (its strides reversed or
    swapped), read-only when ``a`` is."""
    if orientation in (None, 1):
        return a
    turn = {
        2: lambda b: b[:, ::-1],
        3: lambda b: b[::-1, ::-1],
        4: lambda b: b[::-1],
        5: lambda b: b.swapaxes(0, 1),
        6: lambda b: np.rot90(b, -1),
        7: lambda b: np.rot90(b, 2).swapaxes(0, 1),
        8: lambda b: np.rot90(b, 1),
    }[orientation]
    return turn(a)


def turn_as_shown(a: np.ndarray, orientation: int | None) -> np.ndarray:
    """An ``(H, W, ...)`` array on a file's stored grid, turned the way viewers show the file
    with this EXIF ``orientation`` (what ``ImageOps.exif_transpose`` does to its pixels): a
    contiguous copy (``a`` itself when there is nothing to turn)."""
    if orientation in (None, 1):
        return a
    return np.ascontiguousarray(turned_view(a, orientation))


def turn_to_stored(a: np.ndarray, orientation: int | None) -> np.ndarray:
    """The inverse of :func:`turn_as_shown`: an array as viewers show the file, back on its
    stored grid."""
    return turn_as_shown(a, {6: 8, 8: 6}.get(orientation, orientation))  # the others undo themselves


def undo_loader_turn(im: Image.Image, orientation: int | None) -> tuple[Image.Image, bool]:
    """A loaded image back on the grid its file stores if the loader turned it; and whether it had."""
    if orientation in (None, 1) or exif_orientation(im) == orientation:
        return im, False
    out = im.transpose(UNDO_ORIENTATION[orientation])
    w, h = stored_size(im)
    if w != h and out.size == (h, w):
        # an uncompressed TIFF the caller opened by path and loaded: Pillow memory-maps the stored
        # raster at the turned size (rows cut at the wrong width), then turns that: its bytes, in
        # order, are still the stored picture
        fixed = Image.frombytes(out.mode, (w, h), out.tobytes())
        if out.mode in ("P", "PA"):
            fixed.putpalette(out.getpalette(rawmode="RGBA"), rawmode="RGBA")
        fixed.info = dict(out.info)
        out = fixed
    return out, True


def stored_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of the stored grid, from the header (Pillow reports a TIFF's turned size)."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and isinstance(tags.get(256), int) and isinstance(tags.get(257), int):
        return tags[256], tags[257]  # ImageWidth, ImageLength of the current frame
    return im.size


def tiff_uncovered(im: Image.Image) -> str | None:
    """Why the strips or tiles of a TIFF (not decoded yet) leave part of its grid unread, ``None``
    when they cover it. A damaged ImageLength (480 rows where the one strip holds 48) made Pillow
    decode the strip and leave every other row black: a picture of invented pixels, analysed
    without a word (libtiff, which reads compressed TIFFs, refuses such a file). A TIFF of
    separate planes (PlanarConfiguration 2) is checked plane by plane: one whose blue plane had no
    strip was read with a black blue channel."""
    if im.format != "TIFF" or not im.tile:
        return None
    w, h = stored_size(im)
    tiles = [t for t in im.tile if t[1] is not None]  # t[1], the extents: Pillow 10's tiles are tuples
    tags = getattr(im, "tag_v2", None) or {}
    planar = tags.get(284) == 2 and all(t[0] == "raw" for t in tiles)  # libtiff reads the planes itself
    planes: list[set[tuple[int, ...]]] = []
    for t in tiles:  # Pillow starts the next plane at the origin once one is laid out
        if not planes or planar and tuple(t[1][:2]) == (0, 0) and planes[-1]:
            planes.append(set())
        planes[-1].add(tuple(t[1]))
    spp = tags.get(277, 1)
    n = min(len(im.getbands()), spp if isinstance(spp, int) else 1) if planar else 1
    for k in range(n):
        boxes = planes[k] if k < len(planes) else set()
        covered = sum(max(0, min(x1, w) - max(x0, 0)) * max(0, min(y1, h) - max(y0, 0)) for x0, y0, x1, y1 in boxes)
        if covered < w * h:
            where = f"plane {k + 1} of {n}" if n > 1 else "its pixel data"
            return f"a damaged TIFF ({where} covers {covered} of the {w}x{h} pixels its header declares)"
    return None


def stored_pixels(im: Image.Image, frame: int = 0) -> Image.Image:
    """One frame of an opened image file, loaded on the grid the file stores (a new image that
    outlives the file)."""
    if frame:
        im.seek(frame)
    _, orientation = orientation_tag(im)
    load_heard(im)
    out, turned = undo_loader_turn(im, orientation)
    return out if turned else im.copy()


def load_stored(source: str | os.PathLike | IO[bytes], frame: int = 0) -> Image.Image:
    """The pixels of one frame of an image file, loaded, on the grid the file stores."""
    with open_image(source) as im:
        return stored_pixels(im, frame)


def ppm_maxval(tiles: Any) -> int:
    """The maximum sample a PPM/PGM file declares, from Pillow's decoder arguments ``(mode,
    maxval)`` (Pillow scales the samples by it); 255 for any other file."""
    for t in tiles or ():
        args = getattr(t, "args", None)
        if getattr(t, "codec_name", "") == "ppm" and isinstance(args, tuple) and len(args) == 2:
            return args[1] if isinstance(args[1], int) else 255
    return 255


def reduced_image_note(im: Image.Image) -> str | None:
    """What the current image of a TIFF is when it is not the full picture: a raw (DNG) file's
    embedded preview (its sensor data lies elsewhere, in a form Pillow cannot read), or an image
    marked reduced-resolution (NewSubfileType bit 0); ``None`` for anything else."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return None
    w, h = stored_size(im)
    if 0xC612 in tags:  # DNGVersion
        return (
            f"a raw (DNG) file: only its embedded preview ({w}x{h}) is read here, not the raw sensor "
            "data; convert the raw file to get the full picture"
        )
    sub = tags.get(254)  # NewSubfileType
    if isinstance(sub, int) and sub & 1:
        return f"the file marks this image ({w}x{h}) as a reduced-resolution copy: the full picture is not read here"
    return None


def icon_note(im: Image.Image) -> str | None:
    """Which of an icon's images is read (Pillow takes the largest, or the size a caller set)
    when the file holds several; ``None`` for anything else."""
    entries = getattr(getattr(im, "ico", None), "entry", None) if im.format == "ICO" else None
    if not entries or len(entries) < 2:
        return None
    sizes = ", ".join(f"{w}x{h}" for w, h in sorted(im.ico.sizes(), reverse=True))
    return f"the {im.size[0]}x{im.size[1]} image of the {len(entries)} in the icon ({sizes}): the others not analysed"


def tag_ints(v: Any) -> tuple[int, ...]:
    """A TIFF tag value as a tuple of ints (a single value, a tuple, or nothing)."""
    return tuple(int(x) for x in (v if isinstance(v, tuple) else (v,))) if v is not None else ()


def planar16_tiff(im: Image.Image) -> Image.Image | None:
    """The picture of an uncompressed 16-bit TIFF stored plane by plane (PlanarConfiguration 2),
    read from the file before Pillow loads it; ``None`` for any other image.

    Pillow 13 reads each such plane as 8-bit (raw modes ``R``, ``G``, ``B``): a picture that has
    nothing to do with the file. The samples are read here from the strips or tiles, and kept
    as Pillow keeps 16-bit colour stored pixel by pixel (the top byte), in ``im.mode``, on the
    stored grid (before any EXIF turn). ``ValueError`` (the reason) when they cannot be read
    exactly here."""
    tags = getattr(im, "tag_v2", None)
    if tags is None or tags.get(284) != 2 or max(tag_ints(tags.get(258)) or (8,)) <= 8 or tags.get(259, 1) != 1:
        return None  # not planar, 8-bit planes, or compressed (libtiff decodes those right)
    tile = getattr(im, "tile", None) or ()
    if tile and all(";16" in str(t.args[0]) for t in tile if t.args):
        return None  # Pillow reads these planes as 16-bit
    why = "16-bit planar TIFF that cannot be decoded reliably here"
    spp, (w, h) = int(tags.get(277, 1)), stored_size(im)
    if set(tag_ints(tags.get(258))) != {16} or set(tag_ints(tags.get(339, 1))) != {1} or tags.get(317, 1) != 1:
        raise ValueError(f"{why} (not plain unsigned 16-bit samples)")
    if spp != len(im.getbands()):
        raise ValueError(f"{why} ({spp} samples a pixel for Pillow's mode {im.mode})")
    fp = getattr(im, "fp", None)
    if fp is None or getattr(fp, "closed", False):
        raise ValueError(f"{why} (its pixels were already decoded by Pillow: pass the file itself)")
    tiled = 324 in tags  # tiles, else strips; plane after plane either way
    tw, th = (int(tags.get(322, 0)), int(tags.get(323, 0))) if tiled else (w, min(int(tags.get(278, h)), h) or h)
    offsets = tag_ints(tags.get(324 if tiled else 273))
    if not (tw and th) or len(offsets) < spp * -(-h // th) * -(-w // tw):  # checked before listing them
        raise ValueError(f"{why} (strip or tile offsets missing)")
    boxes = [(y, x, th if tiled else min(th, h - y), tw) for y in range(0, h, th) for x in range(0, w, tw)]
    order = "<u2" if getattr(tags, "_endian", "<") == "<" else ">u2"
    out = np.empty((h, w, spp), np.uint16)
    pos = fp.tell()
    fp.seek(0, os.SEEK_END)
    end = fp.tell()
    try:
        for k, off in enumerate(offsets[: spp * len(boxes)]):
            (y, x, bh, bw), s = boxes[k % len(boxes)], k // len(boxes)
            if off < 0 or off + bh * bw * 2 > end:
                raise ValueError(f"{why} (file is truncated)")
            fp.seek(off)
            block = np.frombuffer(fp.read(bh * bw * 2), order).reshape(bh, bw)
            out[y : y + bh, x : x + bw, s] = block[: h - y, : w - x]
    finally:
        fp.seek(pos)
    top = np.ascontiguousarray(out >> 8).astype(np.uint8)
    return Image.frombytes(im.mode, (w, h), top.tobytes())


#: Frames counted at most in a TIFF (Pillow's own count grows with the square of the frames: a
#: 2 MB file of 40 000 minimal frames took 19 s, a 9 MB one minutes, on every read).
MAX_TIFF_FRAMES = 10_000


def frame_count(im: Image.Image) -> int:
    """``im.n_frames``, but for a TIFF the directories are walked from the file itself, with a
    loop guard, and counted up to :data:`MAX_TIFF_FRAMES` (beyond it: that many plus one)."""
    fp = getattr(im, "fp", None)
    if im.format != "TIFF" or fp is None:
        return int(getattr(im, "n_frames", 1) or 1)
    here = fp.tell()
    try:
        fp.seek(0)
        head = fp.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None:
            return int(getattr(im, "n_frames", 1) or 1)
        big = struct.unpack(order + "H", head[2:4])[0] == 43  # BigTIFF: 8-byte counts and offsets
        count_fmt, entry, off_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        offset = struct.unpack(order + off_fmt, head[8:16] if big else head[4:8])[0]
        seen: set[int] = set()
        while offset and offset not in seen and len(seen) <= MAX_TIFF_FRAMES:
            fp.seek(offset)
            raw = fp.read(struct.calcsize(count_fmt))
            if len(raw) < struct.calcsize(count_fmt):  # as Pillow's count fails: a damaged chain
                raise ValueError(f"TIFF directory {len(seen) + 1} at offset {offset} lies beyond the file")
            seen.add(offset)
            n = struct.unpack(order + count_fmt, raw)[0]
            fp.seek(offset + len(raw) + n * entry)
            nxt = fp.read(struct.calcsize(off_fmt))
            offset = struct.unpack(order + off_fmt, nxt)[0] if len(nxt) == struct.calcsize(off_fmt) else 0
        return max(1, len(seen))
    finally:
        fp.seek(here)
