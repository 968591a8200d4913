"""The input contract: any image -> RGB uint8 ``(H, W, 3)`` -> tensor RGB / 256.

TruFor reads 8-bit RGB and divides by 256.0 (not 255): Noiseprint++ was trained on those raw
values, so nothing is normalised here (the RGB branch normalises inside the model).

How PIL modes become RGB (one policy, stated once):

- ``RGB``: as stored. ``RGBA``/``LA``/``PA``/``P`` with transparency: the alpha channel is dropped (the
  stored colour values are kept; compositing on a background would invent pixels). A transparent colour
  key (a PNG's tRNS in ``RGB``/``L``/``1``/16-bit grey, a GIF's transparent index read as grey): ignored
  the same way, and noted.
- ``L``/``1``/``P``: PIL's conversion to RGB. ``CMYK``/``YCbCr``/``LAB``/``HSV``: PIL's conversion too
  (noted: a colour transform, not stored values). ICC profiles are never applied (values as stored).
- Arrays: uint8 as given (copied), uint16 as 16-bit images below, float in ``[0, 1]`` by
  ``round(v * 255)``, a fourth channel dropped (each noted). PPM/PGM: scaled by their maximum.
- ``I;16*`` and ``I`` (16-bit images): scaled to 8 bits by ``round(v / 257)``, clipped; by the
  file's own depth where a TIFF's BitsPerSample says 9-15 bits (12-bit: ``round(v * 255 / 4095)``).
  Data within a sixteenth of that range (nearly black once scaled) is noted.
  16-bit colour (RGB/RGBA PNG or TIFF, CMYK TIFF): Pillow keeps the top byte (noted); an
  uncompressed TIFF stored plane by plane, which Pillow misreads, is read here the same way.
- ``RGBa``/``La`` (premultiplied alpha): the stored colour values, alpha dropped (noted).
- ``F`` (float): values no higher than 1.5 are a normalised picture (0..1), scaled like a float array; any
  other range is PIL's own convention (0..255), rounded. At most 1 % of the values may fall outside that
  range (clipped, noted with the share); more, NaN or Inf: refused (a measurement, as beyond 16 bits).
- Animated or multi-page files: the first frame; an icon of several sizes: the largest (each noted).
- EXIF orientation: **not applied** by default. The analysis runs on the pixel grid as stored, like the
  official code, so outputs stay aligned with the file (and with its JPEG 8x8 grid). ``load_image(...,
  exif_transpose=True)`` rotates/flips the pixels (for display); the analyses (``analyze``,
  ``predict_result``) instead read the stored grid and turn their outputs (``Result.as_shown``). The
  orientation tag is always reported (an invalid one is ignored, and said); Pillow's TIFF turn is undone.
- PNG chunk checksums are verified (a corrupted PNG is refused, not analysed). A JPEG of thousands of
  scans, which would take minutes to decode, is refused before decoding (``jpeg_cut.MAX_SCANS``).

Bad input raises :class:`ImageError` with one line naming the file and the reason.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from trufor_lab.common.arrays import record_repr
from trufor_lab.common.image_files import (
    DAMAGED_FILE_ERRORS,
    MAX_PIXELS,
    MAX_TIFF_FRAMES,
    UNDO_ORIENTATION,
    decoder_words,
    deep_colour,
    frame_count,
    icon_note,
    loaded_tiff_orientation,
    open_image,
    orientation_tag,
    planar16_tiff,
    palette_missing,
    ppm_maxval,
    reduced_image_note,
    tiff_uncovered,
    truncated_refused,
    turn_as_shown,
    undo_loader_turn,
    unread_source,
)
from trufor_lab.common.errors import OneLineError, grouped
from trufor_lab.common.jpeg_cut import stops_early, undecodable
from trufor_lab.common.native_stderr import native_stderr_kept
from trufor_lab.common.png_bytes import png_checked, png_closed, png_rows_missing, png_text_limit, png_without_text
from trufor_lab.common.paths import why_not_found
from trufor_lab.common.unreadable import tiff_codec_reason, unrecognised_reason

#: Smallest side of any image read here (Noiseprint++ takes 1xN); a full TruFor needs
#: :data:`~trufor_lab.model.trufor.MIN_TRUFOR_SIDE` (29), checked where the model is known.
MIN_SIDE = 1

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray, torch.Tensor]


class ImageError(OneLineError, ValueError):
    """An input that cannot be analysed; the message is one line: ``<name>: <reason>``."""


@dataclass(frozen=True)
class LoadedImage:
    """An RGB uint8 image and what was done to get it."""

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    rgb: np.ndarray
    name: str
    source_mode: str | None = None
    exif_orientation: int | None = None
    notes: tuple[str, ...] = ()
    turned: bool = False  # ``rgb`` is turned as viewers show the file (``exif_transpose=True``)


def _name_of(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, Image.Image) and getattr(src, "filename", None):
        return os.fsdecode(src.filename)  # Image.open(b"/path") keeps it as bytes
    return f"<{type(src).__name__}>"


#: How a viewer shows a picture with each EXIF orientation, against its stored pixels (the maps).
_SHOWN = {
    2: "mirrored left-right",
    3: "turned 180°",
    4: "mirrored top-bottom",
    5: "mirrored across its diagonal",
    6: "turned 90° clockwise",
    7: "mirrored across its anti-diagonal",
    8: "turned 90° counter-clockwise",
}


def orientation_note(orientation: int, how: str) -> str:
    """The note for an EXIF ``orientation`` (2-8) whose pixels were ``how``: ``"applied"`` (turned
    before anything read them), ``"stored"`` (analysed as stored) or ``"shown"`` (analysed as
    stored, outputs turned after)."""
    if how == "applied":
        return f"EXIF orientation {orientation} applied"
    if how == "stored":
        return f"EXIF orientation {orientation} not applied: analysed as stored (viewers show it {_SHOWN[orientation]})"
    return (
        f"EXIF orientation {orientation}: analysed as stored, then image and maps "
        f"{_SHOWN[orientation]} as viewers show it"
    )


def _tiff_samples(im: Image.Image) -> tuple[bool, bool, int | None]:
    """(signed integer samples, white is zero, bits a sample) from a TIFF's tags, read before any
    transpose (which drops them); ``(False, False, None)`` for other formats."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return False, False, None
    fmt, bits = tags.get(339), tags.get(258)  # SampleFormat (1 unsigned, 2 signed), BitsPerSample
    signed = 2 in (fmt if isinstance(fmt, tuple) else (fmt,))
    depths = [b for b in (bits if isinstance(bits, tuple) else (bits,)) if isinstance(b, int)]
    return signed, tags.get(262) == 0, max(depths) if depths else None  # Photometric 0: WhiteIsZero


def _pil_to_rgb(
    im: Image.Image, name: str, signed: bool = False, white_is_zero: bool = False, bits: int | None = None
) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    mode = im.mode
    if signed and mode in ("L", "P", "RGB"):  # Pillow reads signed bytes as unsigned: -74 became 182
        raise ImageError(f"{name}: signed 8-bit samples (a measurement, not a photo)")
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy(), notes
    if mode.startswith("I;16") or mode == "I":
        g, notes = _integer_grey(np.asarray(im), name, mode, bits, signed, white_is_zero)
        return np.repeat(g[..., None], 3, axis=2), notes
    if mode == "F":
        g, notes = _float_grey(np.asarray(im, dtype=np.float64), name)
        return np.repeat(g[..., None], 3, axis=2), notes
    if mode in ("RGBa", "La"):  # premultiplied: converting would divide by alpha
        a = np.asarray(im, dtype=np.uint8)
        notes.append("alpha channel dropped (premultiplied colours kept as stored)")
        return (a[..., :3] if mode == "RGBa" else np.repeat(a[..., :1], 3, axis=2)).copy(), notes
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        notes.append("alpha channel dropped")
        im = im.convert("RGBA") if mode in ("P", "PA") else im
        return np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., :3].copy(), notes
    try:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        if mode in ("CMYK", "YCbCr", "LAB", "HSV"):  # a colour transform, not the stored values
            notes.append(f"converted from {mode} by Pillow")
        return rgb, notes
    except (ValueError, OSError) as e:
        raise ImageError(f"{name}: cannot convert PIL mode {mode} to RGB ({e})") from None


def _integer_grey(
    a: np.ndarray, name: str, mode: str, bits: int | None, signed: bool, white_is_zero: bool
) -> tuple[np.ndarray, list[str]]:
    """Grey integer samples (16-bit, or Pillow's 32-bit mode ``I``) as 8 bits, scaled by the
    file's own depth where its BitsPerSample records one below 16 (a 12-bit TIFF's 4095 is
    white, not 1/16 of it), else as 16-bit; a picture that uses a small part of that range
    (nearly black once scaled) is said to."""
    notes: list[str] = []
    wide = bits == 32
    # Pillow stores unsigned 32-bit samples in its signed mode I: 4e9 reads as -294967296
    a = (a.view(np.uint32) if wide and not signed and a.dtype == np.int32 else a).astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < 0 or hi > 65535:  # clipping would invent a picture
        raise ImageError(f"{name}: integer values {lo:g}..{hi:g}, outside 0..65535 (a measurement, not a photo)")
    own = bits is not None and 8 < bits < 16 and hi < 2**bits  # a 10-, 12- or 14-bit TIFF, as Pillow keeps it
    depth = bits if own and bits else 16
    full = 2**depth - 1
    if wide and hi <= 255:  # 8-bit values in a 32-bit TIFF: scaled as 16-bit, they were black
        g = a.astype(np.uint8)
        notes.append("32-bit integer values within 0..255 taken as 8-bit")
    else:  # 16-bit PNG, TIFF, PGM/PPM (Pillow's mode I), whatever this image's range
        g = np.clip(np.rint(a / (full / 255.0)), 0, 255).astype(np.uint8)
        kind = "32-bit integer values within 0..65535" if wide else "integer values" if mode == "I" else None
        notes.append(
            f"{depth}-bit values scaled to 8 bits"
            if kind is None
            else f"{kind} scaled{' as 16-bit' if mode == 'I' and not wide else ''} to 8 bits"
        )
        if hi < (full + 1) / 16 and a.size and not white_is_zero:  # 4 bits of the range unused, or more
            used = max(int(hi).bit_length(), 8)
            picture = f"{'an' if used in (8, 11) else 'a'} {used}-bit picture saved as {depth}-bit?"
            notes.append(
                f"every value within 0..{hi:g} of {full}: nearly black as {depth}-bit ({picture} convert it to 8-bit first)"
            )
    if white_is_zero:  # Pillow inverts 8-bit WhiteIsZero TIFFs, not 16-bit ones
        g = 255 - g
        notes.append("WhiteIsZero: inverted")
    return g, notes


_SMALLER = "(a 12-bit or smaller picture saved as 16-bit? convert it to 8-bit first)"

#: Share of a float picture's values that may lie outside its range (0..1 or 0..255, beyond
#: rounding), as resampling overshoots do: clipped, and said; beyond it the data is refused like
#: integers beyond 16 bits: clipping would leave a picture that is not the file's.
FLOAT_CLIP_LIMIT = 0.01


def _float_grey(a: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Float samples (Pillow's mode ``F``) as 8 bits: a picture whose values reach no higher
    than 1.5 is a normalised one (0..1), scaled like a float array; else Pillow's own 0..255
    convention, rounded. Either way at most :data:`FLOAT_CLIP_LIMIT` of the values may fall
    outside the range (clipped, and said)."""
    if not np.isfinite(a).all():
        raise ImageError(f"{name}: float image holds NaN or Inf values")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    normalised = hi <= 1.5  # as 0..255 it would be black: 0, 1 or 2
    v = a * 255.0 if normalised else a
    outside = float(((v < -0.5) | (v >= 255.5)).mean()) if a.size else 0.0
    span = "0..1" if normalised else "0..255"
    if outside > FLOAT_CLIP_LIMIT:
        raise ImageError(
            f"{name}: float values {lo:.4g}..{hi:.4g}, {outside:.1%} outside {span} (a measurement, not a photo)"
        )
    clipped = f", {outside:.1%} clipped to {span}" if outside else ""
    said = "float values in 0..1 scaled to 8 bits" if normalised else "float values rounded to 8 bits"
    return np.clip(np.rint(v), 0, 255).astype(np.uint8), [said + clipped]


def _array_to_rgb(a: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """RGB uint8 (a copy: the caller may reuse its buffer) and what was done to get it."""
    notes: list[str] = []
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {a.shape}")
    if a.size == 0:  # before any min/max of its values
        raise ImageError(f"{name}: image has no pixels ({a.shape[1]}x{a.shape[0]})")
    if a.shape[2] == 4:
        a = a[..., :3]
        notes.append("alpha channel dropped")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype == np.uint8:
        return np.array(a, order="C"), notes
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:  # as a 16-bit PIL image (either byte order)
        g, more = _integer_grey(a.astype(np.uint16, copy=False), name, "I;16", None, False, False)
        return g, notes + more
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255, notes
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError(f"{name}: float images must hold finite values in [0, 1]")
        notes.append("float values in 0..1 scaled to 8 bits")
        return np.rint(a * 255.0).astype(np.uint8), notes
    raise ImageError(f"{name}: unsupported array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")


def load_image(
    src: ImageLike, *, exif_transpose: bool = False, max_pixels: int = MAX_PIXELS, name: str | None = None
) -> LoadedImage:
    """Read ``src`` (path, bytes, PIL image, numpy array or uint8 tensor) into a :class:`LoadedImage`: RGB
    uint8 pixels in ``.rgb``, with the name, EXIF orientation and notes on how it was read. ``name``: what
    messages and the result call it (default: the path, else ``<bytes>``, ...; e.g. the file's path when its
    bytes were read first). Float tensors are not images but model inputs: pass them to the model directly.

    >>> tl.load_image("photo.jpg").rgb.shape    # (H, W, 3) uint8; also .exif_orientation and .notes
    """
    name = _name_of(src) if name is None else name
    if isinstance(src, torch.Tensor):
        if src.dtype != torch.uint8:
            raise ImageError(f"{name}: only uint8 tensors are images; float tensors (RGB / 256) go to the model")
        t = src.detach().cpu()
        t = t[0] if t.ndim == 4 and t.shape[0] == 1 else t
        if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[2] not in (1, 3, 4):
            t = t.permute(1, 2, 0)
        rgb, notes = _array_to_rgb(t.numpy(), name)
        return LoadedImage(_check_size(rgb, name, max_pixels), name, notes=tuple(notes))
    if isinstance(src, np.ndarray):
        rgb, notes = _array_to_rgb(src, name)
        return LoadedImage(_check_size(rgb, name, max_pixels), name, notes=tuple(notes))
    if isinstance(src, Image.Image):
        source = unread_source(src)
        if source is not None:
            # not loaded yet: read from its file (or the bytes it was opened from) as a path is
            # read (Pillow maps an uncompressed TIFF with an EXIF turn at the turned size and
            # scrambles its pixels; a JPEG or PNG whose data stops early is only found from its file)
            return load_image(source, exif_transpose=exif_transpose, max_pixels=max_pixels, name=name)
        with _decoding(name, max_pixels) as said:
            loaded = _from_pil(src, name, exif_transpose, max_pixels)
        return _with_notes(loaded, said)
    if isinstance(src, bytes):
        src_file: Any = io.BytesIO(src)
    elif isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if os.path.isdir(path):
            raise ImageError(f"{name}: is a folder, not an image")
        if not os.path.isfile(path):  # missing, a link loop, a device or a pipe (whose open would block)
            raise ImageError(f"{name}: {why_not_found(Path(path))}")
        if os.path.getsize(path) == 0:
            raise ImageError(f"{name}: empty file")
        src_file = path
    else:
        raise ImageError(f"{name}: not an image (expected a path, bytes, PIL image, array or tensor)")
    data, mended = src if isinstance(src, bytes) else None, []
    while True:
        try:
            loaded = _from_file(src_file if data is None else data, name, exif_transpose, max_pixels)
            return replace(loaded, notes=(*loaded.notes, *mended)) if mended else loaded
        except ImageError as e:
            # a text chunk before the pixels that inflates beyond Pillow's limit (a bomb in the
            # metadata must not keep the pixels from being analysed: browsers show them), or a
            # PNG cut just before its closing chunk: mended once each, everything else raised
            bomb = png_text_limit(e) and _TEXT_BOMB not in mended
            if not bomb and ("file is truncated" not in str(e) or _NO_IEND in mended):
                raise
            data = _file_bytes(src_file, name) if data is None else data
            if bomb:
                data, mended = png_without_text(data), [*mended, _TEXT_BOMB]
            elif closed := png_closed(data):
                data, mended = closed, [*mended, _NO_IEND]
            else:
                raise


def _file_bytes(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:  # removed or made unreadable since it was opened
        raise ImageError(f"{name}: cannot read ({e.strerror or type(e).__name__})") from None


_TEXT_BOMB = "PNG text metadata ignored: it inflates beyond the safe limit"
_NO_IEND = "PNG ends without its closing IEND chunk (cut after the pixel data, which is complete)"


def _from_file(src: bytes | str, name: str, exif_transpose: bool, max_pixels: int) -> LoadedImage:
    """An image file (its bytes, or a path) read as :func:`load_image` reads it."""
    with _decoding(name, max_pixels, src) as said:
        with open_image(io.BytesIO(src) if isinstance(src, bytes) else src) as im:  # not mapped
            if im.format == "PNG" and not im.tile:  # no image data (an APNG counting no frames): nothing to verify
                raise ImageError(f"{name}: damaged PNG (no image data: cannot load this image)")
            whole = lambda: src if isinstance(src, bytes) else Path(src).read_bytes()  # noqa: E731
            if im.format == "PNG":  # chunk CRCs: Pillow would decode a corrupted PNG silently
                png_checked(data := whole())  # as Pillow's verify, without parsing 400 000 text chunks again
                missing = png_rows_missing(data)
                if missing:  # data that ends early but cleanly: Pillow leaves the rows black
                    raise ImageError(
                        f"{name}: unreadable image (pixel data ends early: {missing} bytes of rows missing)"
                    )
            short = undecodable(im, len(src) if isinstance(src, bytes) else os.path.getsize(src), whole)
            short = short or tiff_uncovered(im)  # Pillow would fill the rest black
            if short:  # before 8000x8000 grey pixels are decoded from a 631-byte file, or 5000 scans
                raise ImageError(f"{name}: {short}")
            loaded = _from_pil(im, name, exif_transpose, max_pixels)
            o = loaded.exif_orientation
            stored = turn_as_shown(loaded.rgb, {6: 8, 8: 6}.get(o, o)) if loaded.turned else loaded.rgb
            cut = stops_early(im, stored, whole)
            if cut is not None and cut[0] == "refuse":
                raise ImageError(f"{name}: {cut[1]}")
            if cut is not None:
                said.append(cut[1])
    return _with_notes(loaded, said)


#: What a malformed file can make a Pillow plugin raise: each is this file's problem only.
_DECODE_ERRORS = DAMAGED_FILE_ERRORS


@contextmanager
def _decoding(name: str, max_pixels: int, source: bytes | str | None = None) -> Iterator[list[str]]:
    """Decode under this call's pixel limit (not Pillow's 89 MP, restored after); every failure
    becomes one :class:`ImageError` line naming the file, and the decoder's warnings (corrupt
    EXIF ...) come back as notes instead of multi-line Python warnings; what libtiff prints on
    the terminal is kept off it, as notes or as the error's reason."""
    said: list[str] = []
    limit = Image.MAX_IMAGE_PIXELS
    printed: list[str] = []  # libtiff's own lines, off the terminal (they name no real file)
    try:
        with truncated_refused(), native_stderr_kept() as printed, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            yield said
        texts = [" ".join(str(w.message).split()) for w in caught] + decoder_words(printed)
        heard = dict.fromkeys(f"decoder warning: {t[:160]}" for t in texts if t)  # in order, once each
        said.extend(n for n in grouped(list(heard), 8) if n not in said)  # 60 000 of them: a few lines
    except ImageError:
        raise
    except (PermissionError, FileNotFoundError) as e:  # the file, not its content
        raise ImageError(f"{name}: cannot read ({e.strerror or type(e).__name__})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(n.group(1))} pixels" if n else "the image"
        raise ImageError(
            f"{name}: refused: {size} is more than max_pixels={max_pixels} (decompression bomb?)"
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: {unrecognised_reason(name if source is None else source)}") from None
    except _DECODE_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "truncated" in msg.lower():
            msg = "file is truncated"
        words = decoder_words(printed)
        missing = not words or any("not configured" in w for w in words)  # libtiff lacks the codec, or is silent
        codec = tiff_codec_reason(source) if source is not None and "decoder error" in msg and missing else None
        msg = words[0][:160] if words and "decoder error" in msg else msg  # the decoder's reason, not its number
        raise ImageError(f"{name}: {codec or f'unreadable image ({msg})'}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _with_notes(loaded: LoadedImage, notes: list[str]) -> LoadedImage:
    return replace(loaded, notes=loaded.notes + tuple(notes)) if notes else loaded


def _check_size(rgb: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if h * w > max_pixels:
        raise ImageError(f"{name}: refused: {w}x{h} is more than {max_pixels} pixels")
    return rgb


def _load_pixels(im: Image.Image, name: str, notes: list[str]) -> None:
    """Decode ``im``; a PNG chunk after the pixel data that cannot be read (a text bomb) is noted,
    the pixels, all decoded by then, are kept."""
    try:
        im.load()
    except ValueError as e:  # Pillow's text-chunk limit; a pixel decode error is an OSError
        if im.format != "PNG" or im.tile:  # the pixels themselves did not decode
            raise
        msg = " ".join(str(e).split())[:120] or type(e).__name__
        notes.append(f"a PNG chunk after the image data could not be read ({msg}): ignored")


#: The note for a transparent colour key (no alpha channel to drop: one colour marked see-through).
_KEY_IGNORED = "transparent colour key ignored (its pixels analysed as stored)"


def _from_pil(im: Image.Image, name: str, exif_transpose: bool, max_pixels: int) -> LoadedImage:
    w, h = im.size
    try:  # a caller's Image.open of a palette PNG without PLTE: every pixel black
        palette_missing(im)
    except SyntaxError as e:
        raise ImageError(f"{name}: unreadable image ({e})") from None
    if w * h > max_pixels:
        raise ImageError(f"{name}: refused: {w}x{h} is more than {max_pixels} pixels (decompression bomb?)")
    # before anything loads the pixels (a PNG's getexif does), which empties the tile list
    tiles = getattr(im, "tile", None) or ()  # an in-memory image has none
    deep = deep_colour(im, tiles)  # a caller's loaded image: said by its file
    # a PPM/PGM's decoder takes (mode, maxval) and scales its samples to 0..255 by that maxval
    maxval = ppm_maxval(tiles)
    ppm16 = maxval == 65535 and im.mode == "RGB"
    scaled = (
        f"samples of maximum {maxval} scaled to {16 if im.mode == 'I' else 8} bits"
        if maxval not in (255, 65535)
        else None
    )
    try:  # before Pillow loads (and misreads) the planes, closing the file
        planar = planar16_tiff(im)
    except ValueError as e:
        raise ImageError(f"{name}: {e}") from None
    frame = im.tell()  # a caller's image keeps its frame
    try:
        n_frames = frame_count(im)
    except _DECODE_ERRORS:  # a TIFF whose next-directory offset leads nowhere: its first image still reads
        im.seek(frame)
        n_frames = 1
        notes_first = ["frame count unreadable (a damaged chain of TIFF directories): this frame analysed"]
    else:
        notes_first = []
    layered = im.format == "PSD"  # Pillow counts a PSD's layers as frames; its pixels are the merged image
    signed, white_is_zero, bits = _tiff_samples(im)
    notes: list[str] = notes_first + [n for n in (reduced_image_note(im), icon_note(im)) if n]
    if im.format != "TIFF":  # decode errors raise here, not inside getexif (which swallows them)
        _load_pixels(im, name, notes)
    raw, orientation = orientation_tag(im)  # a TIFF's before loading: its loader drops the tag
    if raw is None:  # already loaded by the caller: turned, the tag dropped; its file still says
        raw, orientation = loaded_tiff_orientation(im)
    im.load()
    mode = im.mode
    if raw is not None and orientation is None:  # the file's text never reaches a note (terminal, report)
        shown = raw if isinstance(raw, int) and not isinstance(raw, bool) else "(not a number)"
        notes.append(f"invalid EXIF orientation {shown} ignored")
    stored, turned = undo_loader_turn(im, orientation)
    if planar is not None:  # read from the file, on the stored grid: Pillow's decode is dropped
        im, deep = planar, True
        if exif_transpose and orientation is not None and orientation != 1:  # the inverse of the undo
            im = planar.transpose(UNDO_ORIENTATION[{6: 8, 8: 6}.get(orientation, orientation)])
    elif not exif_transpose:
        im = stored
    elif orientation not in (None, 1) and not turned:
        im = ImageOps.exif_transpose(im)
    if orientation not in (None, 1):  # a viewer shows it turned: say why the maps are not
        notes.append(orientation_note(orientation, "applied" if exif_transpose else "stored"))
    if deep or ppm16 or scaled:
        notes.append(scaled or f"16-bit colour reduced to 8 bits{'' if ppm16 else ' (top byte)'}")
    deep = deep or ppm16
    rgb, more = _pil_to_rgb(im, name, signed, white_is_zero, bits)
    if deep and rgb.size and rgb.max() < 16:  # 4 bits of the range unused, as for 16-bit grey
        more.append(f"every top byte within 0..{rgb.max()} of 255: nearly black as 16-bit colour {_SMALLER}")
    if "transparency" in im.info and im.mode not in ("P", "PA", "RGBA", "LA", "RGBa", "La"):
        more.append(_KEY_IGNORED)  # a PNG's tRNS colour, a GIF's transparent index read as grey
    if layered:
        if n_frames > 1:
            more.insert(0, f"the merged image of a {n_frames}-layer PSD (layers not analysed one by one)")
    elif n_frames > 1:
        of = f"more than {MAX_TIFF_FRAMES}" if n_frames > MAX_TIFF_FRAMES else str(n_frames)
        more.insert(0, f"frame {frame + 1} of {of}" if frame else f"first of {of} frames")
    applied = exif_transpose and orientation not in (None, 1)
    return LoadedImage(_check_size(rgb, name, max_pixels), name, mode, orientation, tuple(notes + more), applied)


def to_tensor(
    rgb: np.ndarray, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> model input ``(1, 3, H, W)`` = RGB / 256 (anything else is
    refused: an int64 300 or a float 0..1 image would become a wrong input silently)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"to_tensor takes RGB uint8 (H, W, 3) (see load_image), got {rgb.dtype} {rgb.shape}")
    if not torch.empty((), dtype=dtype).is_floating_point():
        raise ValueError(f"to_tensor makes a floating model input, not {dtype}")
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    return t.to(device=device, dtype=dtype) / 256.0
