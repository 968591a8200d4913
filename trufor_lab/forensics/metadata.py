"""Metadata blocks beside EXIF, read as hostile input: XMP packets, comments, PNG text chunks.

XMP is XML written by editors (Photoshop, Lightroom, GIMP...) and phones. It is never parsed
as XML here: no entity, DTD or external reference is ever resolved. A bounded scan of the
first :data:`MAX_XMP_BYTES` finds the few properties that name software (``xmp:CreatorTool``,
``stEvt:softwareAgent`` of the edit history, a non-empty ``photoshop:History``), each value
cut to a short length; only the five XML entities and numeric character references are undone.
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image

__all__ = ["MAX_XMP_BYTES", "TIFF_STRUCTURE_TAGS", "xmp_packet", "xmp_software", "comment_text", "png_text_keys"]

#: XMP bytes scanned at most (a JPEG's XMP segment holds 64 KiB; extended XMP is not read).
MAX_XMP_BYTES = 1 << 20
#: Software names kept at most from one packet (an edit history can list hundreds of steps).
_MAX_TOOLS = 8
_MAX_VALUE = 200

#: TIFF tags that describe how the pixels are stored (baseline and extension structure), not
#: who made the picture: a plain TIFF written by any library holds them. Camera and editing
#: metadata (Make, Model, Software, DateTime, Artist, the Exif and GPS directories...) is the rest.
TIFF_STRUCTURE_TAGS = frozenset(
    [254, 255, *range(256, 260), *range(262, 267), 273, *range(277, 285), *range(286, 294), 296, 297, 301]
    + [*range(317, 326), 330, 332, 334, *range(338, 342), 347, *range(512, 522), *range(529, 533)]
    + [700, 34675]  # XMP and ICC: metadata, but counted as such on their own
)

_NAME = r"[A-Za-z_][\w.-]{0,40}:"
_TOOL_PATTERNS = [
    re.compile(rb"(?:" + _NAME.encode() + rb")?(CreatorTool|softwareAgent)\s*=\s*\"([^\"<]{1,%d})\"" % _MAX_VALUE),
    re.compile(rb"(?:" + _NAME.encode() + rb")?(CreatorTool|softwareAgent)\s*=\s*'([^'<]{1,%d})'" % _MAX_VALUE),
    re.compile(rb"<(?:" + _NAME.encode() + rb")?(CreatorTool|softwareAgent)\s*>\s*([^<]{1,%d})<" % _MAX_VALUE),
]
_PS_HISTORY = re.compile(rb"<photoshop:History\s*>\s*[^<\s]|photoshop:History\s*=\s*[\"'][^\"'\s]")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos|#\d{1,7}|#x[0-9A-Fa-f]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        k = m.group(1)
        if k in _NAMED:
            return _NAMED[k]
        code = int(k[2:], 16) if k[1] in "xX" else int(k[1:])
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return _ENTITY.sub(one, s)


def xmp_packet(im: Image.Image) -> bytes | None:
    """The image's XMP packet (JPEG APP1, PNG iTXt ``XML:com.adobe.xmp``, WebP, GIF, TIFF tag
    700) as Pillow found it, or ``None``."""
    for v in (im.info.get("xmp"), im.info.get("XML:com.adobe.xmp")):
        if isinstance(v, str):
            v = v.encode("utf-8", "replace")
        if isinstance(v, (bytes, bytearray)) and v.strip(b"\x00 \t\r\n"):
            return bytes(v)
    tags = getattr(im, "tag_v2", None)
    v = tags.get(700) if tags is not None else None
    if isinstance(v, (bytes, bytearray)) and v.strip(b"\x00 \t\r\n"):
        return bytes(v)
    return None


#: An entity reference XML itself does not define (``&e;``: declared by a DTD in the packet).
_UNDECLARED = re.compile(r"&[A-Za-z_][\w.-]*;")
#: A document type declaration: no real XMP packet has one (entity bombs and external files do).
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)\b")


def xmp_has_dtd(packet: bytes) -> bool:
    """Whether an XMP packet declares a DTD or entities (never expanded here; no writer of real XMP does)."""
    return _DTD.search(packet[:MAX_XMP_BYTES]) is not None


def xmp_software(packet: bytes) -> list[str]:
    """Distinct software names an XMP packet gives (creator tool first, then the edit history)."""
    head = packet[:MAX_XMP_BYTES]
    found: list[tuple[int, str]] = []
    for pat in _TOOL_PATTERNS:
        for m in pat.finditer(head):
            order = 0 if m.group(1) == b"CreatorTool" else 1
            found.append((order * len(head) + m.start(), m.group(2).decode("utf-8", "replace")))
            if len(found) >= 4 * _MAX_TOOLS:
                break
    out: list[str] = []
    for _, raw in sorted(found):
        name = " ".join(_unescape(raw).split())
        if _UNDECLARED.search(name):  # a DTD's entity, never expanded here: not a name the file gives
            continue
        if name and name not in out:
            out.append(name)
    if _PS_HISTORY.search(head) and not any("photoshop" in x.lower() for x in out):
        out.append("Adobe Photoshop (photoshop:History)")
    return out[:_MAX_TOOLS]


def comment_text(im: Image.Image) -> Any:
    """A JPEG COM segment or GIF comment as Pillow found it (bytes or text), or ``None``."""
    v = im.info.get("comment")
    return v if isinstance(v, (bytes, bytearray, str)) and v else None


def png_text_keys(data: bytes) -> list[str]:
    """Keywords of every tEXt/zTXt/iTXt chunk in a PNG's bytes (latin-1, as the PNG spec has
    them), in file order; empty for anything that is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return []
    keys, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keys.append(data[pos + 8 : pos + 8 + min(length, 80)].split(b"\x00", 1)[0].decode("latin-1"))
        if kind == b"IEND":
            break
        pos += 12 + length
    return keys
