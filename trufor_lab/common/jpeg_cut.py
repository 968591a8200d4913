"""Signs that a JPEG file's image data stops early, which its decoder does not report.

libjpeg treats a scan that ends before the last block (a file cut short and closed with an
end-of-image marker, a header that declares more pixels than the data holds, or any cut file
read with Pillow's ``LOAD_TRUNCATED_IMAGES``) as a warning that Pillow never passes on: the
missing blocks come out with every coefficient zero, i.e. uniform mid-grey (luma 128), from the
cut to the end of the picture in the order the blocks are coded. Analysed as they are, those
grey blocks are a region with no camera traces at all, which a forgery detector flags.

Two checks, both on what the file says about itself: the data is too small to code as many
blocks as the header declares (each block of a scan costs at least one bit), and the picture
ends in a run of exactly mid-grey blocks, longer than a row of blocks, that starts inside a row
(a picture's own grey band spans whole rows; a cut falls anywhere). A shorter run, or one that
starts at a row's first block, is ambiguous: it is reported as a note, not refused.
"""

from __future__ import annotations

import math

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


def grey_fill(im: Image.Image, rgb: np.ndarray) -> tuple[str, str] | None:
    """``("refuse" | "note", why)`` when ``rgb`` (the decoded pixels of ``im``, on its stored grid)
    ends in the decoder's mid-grey fill; None otherwise."""
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
    if not grey[-1]:
        return None
    start = grey.size - int(np.argmin(grey[::-1])) if not grey.all() else 0
    if start == 0:
        return None  # a grey picture through and through: nothing says it was cut
    y, x = (start // cols) * mh, (start % cols) * mw
    tail = np.concatenate([rgb[y : y + mh, x:].reshape(-1, rgb.shape[2]), rgb[y + mh :].reshape(-1, rgb.shape[2])])
    if np.mean(np.all(tail[:, :3] == 128, axis=1)) < 0.9:  # the fill is exact grey, bar a blend at the cut
        return None
    if x and grey.size - start >= cols:  # more than a row of blocks, starting inside a row
        return (
            "refuse",
            f"unreadable image (its data stops early: from row {y}, column {x} on, the picture is the uniform "
            "mid-grey a JPEG decoder fills in for missing data; the file is cut short)",
        )
    return (
        "note",
        f"the bottom {h - y} pixel rows are uniform mid-grey, what a JPEG decoder shows where a file's data "
        "stops early: unless the picture has such a band, the file is cut short and the map there means nothing",
    )
