"""Signs that a JPEG file's image data stops early, which its decoder does not report.

libjpeg treats a scan that ends before the last block (a file cut short and closed with an
end-of-image marker, a header that declares more pixels than the data holds, or any cut file
read with Pillow's ``LOAD_TRUNCATED_IMAGES``) as a warning that Pillow never passes on: the
missing blocks come out with every coefficient zero, i.e. uniform mid-grey (luma 128), from the
cut to the end of the picture in the order the blocks are coded. Analysed as they are, those
grey blocks are a region with no camera traces at all, which a forgery detector flags.

A progressive JPEG is sent as a series of scans, each adding detail to the whole picture; one
cut inside a scan decodes with the blocks after the cut missing that scan's detail (blurred or
colourless below the cut, not grey), and one closed between two scans decodes whole but without
the detail of the scans that never came.

Checks: the data is too small to code as many blocks as the header declares (each block of
a scan costs at least one bit); the scans leave part of a component's detail unsent; and
whether the last scan ends before its last block: bytes put before the end marker change a cut
file's picture and leave a complete file as it was. That probe decodes the file twice more, so
for a baseline JPEG it runs only when the picture ends in exactly mid-grey blocks (rare in a
photograph, common in a drawing with a grey background); for a progressive one, always. Where
it cannot be told it is a note.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from PIL import Image

#: Luma within this of 128 counts as the decoder's fill (chroma upsampling leaves luma alone).
_GREY_TOLERANCE = 1.0


def _mcu(im: Image.Image) -> tuple[int, int] | None:
    """(height, width) of a JPEG's coding unit, None when Pillow does not say."""
    layers = getattr(im, "layer", None) or []
    if not layers:
        return None
    return 8 * max(v for _, _, v, _ in layers), 8 * max(h for _, h, _, _ in layers)


def undecodable(im: Image.Image, n_bytes: int, data: Callable[[], bytes]) -> str | None:
    """Why the JPEG ``im`` (``n_bytes`` long; ``data`` gives its bytes) is not decoded, None when it
    may be: :func:`too_few_bytes` or :func:`too_many_scans`."""
    return too_few_bytes(im, n_bytes) or too_many_scans(im, data)


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


def stops_early(im: Image.Image, rgb: np.ndarray, data: Callable[[], bytes]) -> tuple[str, str] | None:
    """``("refuse" | "note", why)`` when the JPEG ``im`` (``rgb``: its decoded pixels, on its stored
    grid) was decoded from data that stops early; None otherwise. ``data`` gives the file's bytes
    (read only for a progressive file or a picture ending in mid-grey)."""
    if im.format not in ("JPEG", "MPO"):
        return None
    if im.info.get("progressive") or im.info.get("progression"):
        return _progressive_cut(data(), rgb)
    return _grey_fill(im, rgb, data)


def _progressive_cut(data: bytes, rgb: np.ndarray) -> tuple[str, str] | None:
    walked = _walk(data)
    if walked is None:
        return None
    scans, eoi, restarts_missing = walked
    cut = restarts_missing or _data_stops_early(data, eoi, rgb)
    if cut:
        return (
            "refuse",
            "unreadable image (its data stops early: a progressive JPEG whose last scan ends before its last "
            "block, so the picture after the cut lacks detail the rest has; the file is cut short)",
        )
    if scans:
        return (
            "note",
            f"the file's progressive scans stop before the picture's full detail ({scans}): it is decoded "
            "with less detail than it was coded with, as a file cut short between two scans is; the map reflects "
            "that loss",
        )
    return None


def _grey_fill(im: Image.Image, rgb: np.ndarray, data: Callable[[], bytes]) -> tuple[str, str] | None:
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
    raw = data()
    walked = _walk(raw)
    cut = None if walked is None else walked.restarts_missing or _data_stops_early(raw, walked.eoi, rgb)
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


#: Frame markers (SOF0-3, 5-7, 9-11, 13-15) and the progressive ones among them.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
#: The next marker after entropy-coded data: 0xFF followed by anything but a stuffed zero, a
#: restart marker or another fill byte.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class _Walked(NamedTuple):
    unsent: str  # what the scans leave unsent, "" when nothing
    eoi: int  # the offset of the end marker
    restarts_missing: bool  # the last scan holds fewer restart markers than its blocks need


def _segments(data: bytes) -> Iterator[tuple[int, bytes, int, int]]:
    """``(marker, payload, start, end)`` of each segment of the first image in a JPEG file's bytes,
    walked as libjpeg reads them (stray bytes between segments skipped): ``start`` is where the
    segment's header ends, ``end`` where the next one begins (after a scan's coded data); the end
    marker comes last, with no payload. Stops early, without it, where the bytes cannot be walked."""
    if not data.startswith(b"\xff\xd8"):
        return
    pos = 2
    try:
        while True:
            if data[pos] != 0xFF:  # bytes that are no marker: libjpeg skips them (with a warning)
                pos = data.find(b"\xff", pos)
                if pos < 0:
                    return
                continue
            while data[pos + 1] == 0xFF:  # fill bytes before a marker
                pos += 1
            marker = data[pos + 1]
            if marker == 0xD9:
                yield marker, b"", pos, pos
                return
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:
                pos += 2
                continue
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            seg = data[pos + 4 : pos + 2 + length]
            if length < 2 or len(seg) != length - 2:
                return
            start = pos = pos + 2 + length
            if marker == 0xDA:
                nxt = _NEXT_MARKER.search(data, pos)
                if nxt is None:
                    yield marker, seg, start, len(data)  # counted, though it never ends
                    return
                pos = nxt.start()
            yield marker, seg, start, pos
    except IndexError:
        return


#: Scans a JPEG may hold before it is refused undecoded. Encoders write about ten (libjpeg's
#: progressive default), a sequential file one a component; each scan makes the decoder pass over
#: every block of the picture, so thousands of tiny scans (JPEG's end-of-band runs code a whole
#: band of a picture in a few bytes) make a file of a few hundred KB take minutes to decode
#: (libjpeg-turbo's LJT-01-003). 500 is the limit NVIDIA DALI puts on libjpeg-turbo.
MAX_SCANS = 500


def too_many_scans(im: Image.Image, data: Callable[[], bytes]) -> str | None:
    """Why the JPEG ``im`` is not decoded (None when it may be): more than :data:`MAX_SCANS`
    scans in the file's bytes (``data`` gives them), counted before any pixel is decoded."""
    if im.format not in ("JPEG", "MPO"):
        return None
    n = sum(marker == 0xDA for marker, _, _, _ in _segments(data()))
    if n <= MAX_SCANS:
        return None
    return (
        f"refused: a JPEG of {n} scans (encoders write about 10; more than {MAX_SCANS} make even a small "
        "file take minutes to decode, a known denial-of-service pattern)"
    )


def _walk(data: bytes) -> _Walked | None:
    """The scans of the first image in a JPEG file's bytes, walked to its end marker as libjpeg
    reads them (stray bytes between segments skipped); None when that cannot be done."""
    comps: list[tuple[int, int, int]] = []  # (id, horizontal, vertical sampling)
    size = (0, 0)
    progressive = False
    low: dict[int, list[int]] = {}  # per component, the lowest bit sent of each coefficient
    restart_interval, last, eoi = 0, None, None
    try:  # a segment too short for its fields
        for marker, seg, start, end in _segments(data):
            if marker == 0xD9:
                eoi = start
            elif marker in _SOF and not comps:
                size = (int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"))
                comps = [(seg[6 + 3 * i], seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 0x0F) for i in range(seg[5])]
                progressive = marker in _PROGRESSIVE_SOF
                low = {c: [99] * 64 for c, _, _ in comps}
            elif marker == 0xDD and len(seg) >= 2:
                restart_interval = int.from_bytes(seg[:2], "big")
            elif marker == 0xDA:
                ns = seg[0]
                ids = list(seg[1 : 1 + 2 * ns : 2])
                ss, se, al = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns] & 0x0F
                for c in ids:
                    for k in range(ss, min(se, 63) + 1) if progressive else range(64):
                        if c in low:
                            low[c][k] = min(low[c][k], al if progressive else 0)
                last = (ids, restart_interval, start, end)
    except IndexError:
        return None
    if eoi is None:
        return None
    names = ("luma", "blue chroma", "red chroma") if len(comps) == 3 else [f"component {c}" for c, _, _ in comps]
    unsent = [f"{name} {n}/64" for name, (c, _, _) in zip(names, comps) if (n := sum(b != 0 for b in low[c]))]
    return _Walked(
        f"frequencies not fully sent: {', '.join(unsent)}" if unsent else "",
        eoi,
        last is not None and _restarts_missing(data, comps, size, *last),
    )


def _restarts_missing(
    data: bytes, comps: list[tuple[int, int, int]], size: tuple[int, int], ids: list[int], interval: int, a: int, b: int
) -> bool:
    """Whether a scan (its data ``data[a:b]``) holds fewer restart markers than its coding units
    need: one cut just before a restart marker decodes the probe's bytes as junk before the next
    marker, and looks complete to it."""
    (h, w), known = size, {c: (hs, vs) for c, hs, vs in comps}
    if interval == 0 or h == 0 or w == 0 or not comps or any(c not in known for c in ids):
        return False
    hmax, vmax = max(hs for _, hs, _ in comps), max(vs for _, _, vs in comps)
    if len(ids) == 1:  # one component: its own blocks
        hs, vs = known[ids[0]]
        units = math.ceil(math.ceil(w * hs / hmax) / 8) * math.ceil(math.ceil(h * vs / vmax) / 8)
    else:
        units = math.ceil(w / (8 * hmax)) * math.ceil(h / (8 * vmax))
    return len(_RESTART.findall(data, a, b)) < math.ceil(units / interval) - 1


#: A restart marker inside entropy-coded data.
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")


#: Bytes (no 0xFF: no marker) put before the end marker by :func:`_data_stops_early`.
_PROBE = bytes((i * 37 + 11) % 255 for i in range(256))


def _data_stops_early(data: bytes, eoi: int, rgb: np.ndarray) -> bool | None:
    """Whether the last scan of a JPEG's first image (its end marker at ``eoi``) ends before its
    last block: with bytes put before its end marker a complete file decodes the same (libjpeg
    skips bytes after the last block), a cut one decodes them into the missing blocks. ``rgb`` is
    the picture as decoded already (compared first, so a complete file costs one decode more);
    None when the probe does not decode."""
    try:
        with Image.open(io.BytesIO(data[:eoi] + _PROBE + data[eoi:]), formats=["JPEG"]) as b:
            probed = np.asarray(b)
            if b.mode in ("L", "RGB") and np.array_equal(np.asarray(b.convert("RGB")), rgb[..., :3]):
                return False
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as a:  # the loader's pixels may be converted
            return not np.array_equal(np.asarray(a), probed)
    except (OSError, ValueError, SyntaxError):
        return None
