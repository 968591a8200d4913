"""A PNG's bytes, read and mended without Pillow: its text chunks dropped (a metadata bomb must
not keep the pixels from being read), a missing closing chunk added, missing rows counted (Pillow
leaves them black without a word)."""

from __future__ import annotations

import re
import zlib

__all__ = ["png_checked", "png_closed", "png_rows_missing", "png_text_limit", "png_without_text"]

#: Adam7's passes: (x0, y0, dx, dy).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_without_text(data: bytes) -> bytes:
    """A PNG's bytes without its text chunks (tEXt, zTXt, iTXt), every other chunk as it was
    (each carries its own checksum). Anything that is not a PNG is returned unchanged."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    out, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        end = pos + 12 + int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] not in (b"tEXt", b"zTXt", b"iTXt"):
            out.append(data[pos:end])
        pos = end
    out.append(data[pos:])  # a trailing fragment, for Pillow to judge
    return b"".join(out)


#: A PNG's closing chunk: no data, its fixed checksum.
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def png_closed(data: bytes) -> bytes | None:
    """A PNG that stops right after a whole chunk, its pixel data complete, but without the
    closing IEND chunk (cut by a tool or a transfer: browsers show it, Pillow calls it
    truncated), closed with one; ``None`` for anything else, which stays refused."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, kinds = 8, set()
    while pos < len(data):
        end = pos + 12 + int.from_bytes(data[pos : pos + 4], "big")
        if end > len(data) or data[pos + 4 : pos + 8] == b"IEND":
            return None  # a chunk cut inside: truly truncated (or not missing its end)
        kinds.add(data[pos + 4 : pos + 8])
        pos = end
    if not {b"IHDR", b"IDAT"} <= kinds or png_rows_missing(data):
        return None
    return data + _PNG_IEND


def png_rows_missing(data: bytes) -> int:
    """How many bytes of filtered pixel rows a PNG's image data lacks (0 when complete).

    Pillow decodes a PNG whose compressed data ends early but cleanly (every checksum valid)
    without a word, leaving the missing rows black; this inflates the data once to count them.
    A file that is not a well-formed PNG gives 0: Pillow's own checks speak for it."""
    pos, ihdr, idat = 8, None, []
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        return 0
    w, h = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, colour, interlace = ihdr[8], ihdr[9], ihdr[12]
    if colour not in _PNG_CHANNELS:
        return 0
    bits = depth * _PNG_CHANNELS[colour]
    passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
        if pw > 0 and ph > 0:
            expected += ph * (1 + -(-(pw * bits) // 8))
    inflater, pending, got = zlib.decompressobj(), b"".join(idat), 0
    try:
        while pending and got < expected:  # 1 MiB at a time, never past what the image needs
            out = inflater.decompress(pending, 1 << 20)
            got, pending = got + len(out), inflater.unconsumed_tail
            if not out:
                break
    except zlib.error:
        return 0  # corrupt data: Pillow refuses it itself
    return max(expected - got, 0)


#: A chunk type as Pillow takes one: four letters, digits or underscores.
_CHUNK_TYPE = re.compile(rb"\w{4}")


def png_checked(data: bytes) -> None:
    """What Pillow's ``verify`` checks of a PNG's bytes (its chunks from the first image data
    to IEND: each complete, of a valid type, its checksum right; those before are checked as
    Pillow opens the file), with Pillow's errors, without parsing the file a second time (a PNG
    of 400 000 text chunks before its pixels took a second more for each parse)."""
    pos = 8
    while pos + 8 <= len(data) and data[pos + 4 : pos + 8] != b"IDAT":
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    while True:
        if pos + 8 > len(data):
            raise OSError("truncated PNG file")
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if not _CHUNK_TYPE.fullmatch(kind):
            raise SyntaxError(f"broken PNG file (chunk {kind!r})")
        if kind == b"IEND":
            return
        end = pos + 8 + length
        if end > len(data):
            raise OSError("Truncated File Read")
        if end + 4 > len(data):
            raise SyntaxError(f"broken PNG file (incomplete checksum in {kind!r})")
        if zlib.crc32(data[pos + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            raise SyntaxError(f"broken PNG file (bad header checksum in {kind!r})")
        pos = end + 4


def png_text_limit(e: BaseException) -> bool:
    """Whether ``e`` is Pillow refusing a PNG's text: one chunk too large (``MAX_TEXT_CHUNK``) or
    all of them together (``MAX_TEXT_MEMORY``, many chunks each under the first limit)."""
    return "MAX_TEXT_CHUNK" in str(e) or "MAX_TEXT_MEMORY" in str(e)
