"""Signs that a JPEG file's image data stops early, which its decoder does not report.

libjpeg treats a scan that ends before the last block (a file cut short and closed with an
end-of-image marker, a header that declares more pixels than the data holds, or any cut file
read with Pillow's ``LOAD_TRUNCATED_IMAGES``) as a warning that Pillow never passes on: the
missing blocks come out with every coefficient zero, i.e. uniform mid-grey (luma 128), from the
cut to the end of the picture in the order the blocks are coded. Analysed as they are, those
grey blocks are a region with no camera traces at all, which a forgery detector flags.

Two checks: the data is too small to code as many blocks as the header declares (each block of
a scan costs at least one bit); and, when the picture ends in exactly mid-grey blocks (rare in
a photograph, common in a drawing with a grey background), whether they are data or fill: bytes
put before the end marker change a cut file's fill and leave a complete file as it was. Where
that cannot be told (bytes after the end marker, several images in one file) it is a note.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image

#: Luma within this of 128 counts as the decoder's fill (chroma upsampling leaves luma alone).
_GREY_TOLERANCE = 1.0


def _mcu(im: Image.Image) -> tuple[int, int] | None:
    """(height, width) of a baseline JPEG's coding unit, None for anything else (a progressive
    file's missing scans leave a blurred picture, not grey blocks)."""
    if im.format not in ("JPEG", "MPO") or im.info.get("progressive") or im.info.get("progression"):
        return None
    layers = getattr(im, "layer", None) or []
    if not layers:
        return None
    return 8 * max(v for _, _, v, _ in layers), 8 * max(h for _, h, _, _ in layers)


def too_few_bytes(im: Image.Image, n_bytes: int) -> str | None:
    """Why a JPEG of ``n_bytes`` cannot hold the pixels its header declares (None when it can):
    every 8x8 luma block costs at least one bit."""
    if im.format not in ("JPEG", "MPO"):
        return None
    w, h = im.size
    blocks = math.ceil(w / 8) * math.ceil(h / 8)
    if n_bytes * 8 >= blocks:
        return None
    return (
        f"unreadable image (its header declares {w}x{h} pixels, {blocks} blocks, but the file holds "
        f"{n_bytes} bytes: too few to code them; cut short or a damaged header)"
    )


def grey_fill(im: Image.Image, rgb: np.ndarray, data: Callable[[], bytes]) -> tuple[str, str] | None:
    """``("refuse" | "note", why)`` when ``rgb`` (the decoded pixels of ``im``, on its stored grid)
    ends in the decoder's mid-grey fill; None otherwise. ``data`` gives the file's bytes (read
    only when the pixels end in such grey)."""
    mcu = _mcu(im)
    if mcu is None or rgb.ndim != 3 or rgb.shape[:2] != (im.size[1], im.size[0]):
        return None
    mh, mw = mcu
    h, w = rgb.shape[:2]
    corner = rgb[(h - 1) // mh * mh :, (w - 1) // mw * mw :, :3]  # the last block coded
    if not np.all(corner == 128) and np.abs(corner.astype(np.float32).mean() - 128.0) > _GREY_TOLERANCE:
        return None  # the common case, decided without a pass over the picture
    rows, cols = math.ceil(h / mh), math.ceil(w / mw)
    luma = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    pad = np.pad(np.abs(luma - 128.0), ((0, rows * mh - h), (0, cols * mw - w)))  # padding counts as grey
    grey = (pad.reshape(rows, mh, cols, mw).max(axis=(1, 3)) <= _GREY_TOLERANCE).ravel()
    if not grey[-1] or grey.all():
        return None  # a grey picture through and through: nothing says it was cut
    start = grey.size - int(np.argmin(grey[::-1]))
    y, x = (start // cols) * mh, (start % cols) * mw
    tail = np.concatenate([rgb[y : y + mh, x:].reshape(-1, rgb.shape[2]), rgb[y + mh :].reshape(-1, rgb.shape[2])])
    if np.mean(np.all(tail[:, :3] == 128, axis=1)) < 0.9:  # the fill is exact grey, bar a blend at the cut
        return None
    cut = _data_stops_early(im, data())
    if cut is False:
        return None  # the picture's own grey
    if cut:
        return (
            "refuse",
            f"unreadable image (its data stops early: from row {y}, column {x} on, the picture is the uniform "
            "mid-grey a JPEG decoder fills in for missing data; the file is cut short)",
        )
    return (
        "note",
        f"the picture ends in uniform mid-grey from row {y}, column {x} on, what a JPEG decoder shows where a "
        "file's data stops early: unless the picture has such an area, the file is cut short and the map there "
        "means nothing",
    )


#: Bytes (no 0xFF: no marker) put before the end marker by :func:`_data_stops_early`.
_PROBE = bytes((i * 37 + 11) % 255 for i in range(256))


def _data_stops_early(im: Image.Image, data: bytes) -> bool | None:
    """Whether the scan of a single-image JPEG ends before its last block: with bytes put before
    its end marker, a complete file decodes the same (libjpeg skips bytes after the last block),
    a cut one decodes them into the missing blocks. None when this cannot be told (no end marker
    at the end of the file, several images in it, or the probe does not decode)."""
    if im.format != "JPEG" or not data.endswith(b"\xff\xd9"):
        return None
    try:
        with (
            Image.open(io.BytesIO(data), formats=["JPEG"]) as a,
            Image.open(io.BytesIO(data[:-2] + _PROBE + b"\xff\xd9"), formats=["JPEG"]) as b,
        ):
            return not np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    except (OSError, ValueError, SyntaxError):
        return None
