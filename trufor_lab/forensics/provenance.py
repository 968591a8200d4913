"""What an image file says about itself, for fact-checkers.

One cohesive thing: the readers (EXIF, JPEG coding, ICC, PNG text), the plain-language signs
drawn from them and their escaped rendering form one report, built in one pass over one file.

``read_provenance`` collects file facts (hash, size, format), EXIF (camera, software, dates,
GPS presence, orientation, thumbnail), JPEG coding facts (quantisation tables, libjpeg
quality, subsampling, progressive), ICC, XMP (scanned by ``metadata``), comments and PNG text
chunks, and turns them into plain-language *signs* (the thumbnail comparison is in
``thumbnail``). Metadata is easy to strip or forge: every sign is evidence, not proof.
Metadata is also hostile input: malformed blocks are recorded in ``problems`` (never raised)
and all strings are HTML-escaped when rendered.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import struct
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin

from trufor_lab.common.image_files import (
    frame_count,
    image_formats,
    load_heard,
    pil_log_unprinted,
    planar16_tiff,
    png_text_limit,
    png_without_text,
    stored_size,
    truncated_refused,
    xmp_filled_orientation,
)
from trufor_lab.common.errors import grouped
from trufor_lab.common.jpeg_cut import too_many_scans
from trufor_lab.common.paths import display_name
from trufor_lab.forensics import jpeg, metadata
from trufor_lab.forensics.jpeg import QualityEstimate, Source
from trufor_lab.forensics.thumbnail import compare_thumbnail

__all__ = ["Sign", "Provenance", "read_provenance", "SOCIAL_SIDES", "SCREEN_SIZES", "CAMERA_SIZES"]

#: Image sides that social networks and messengers resize to (Instagram 1080 wide,
#: Facebook/Twitter 2048/1200/960, WhatsApp 1600/1280, ...).
SOCIAL_SIDES = frozenset({640, 680, 720, 960, 1080, 1200, 1280, 1600, 2048})
#: Sizes cameras and phones commonly write (4:3, 3:2 and 16:9 settings, either orientation): a
#: side among ``SOCIAL_SIDES`` is no sign of a resize for these.
CAMERA_SIZES = frozenset(
    {
        (640, 480),
        (800, 600),
        (1024, 768),
        (1280, 960),
        (1600, 1200),
        (2048, 1536),
        (2560, 1920),
        (1280, 720),
        (1920, 1080),
        (1440, 1080),
        (2048, 1152),
        (1920, 1280),
        (2048, 1365),
    }
)
#: Common screen resolutions (either orientation): screenshots.
SCREEN_SIZES = frozenset(
    {
        (1280, 720),
        (1366, 768),
        (1440, 900),
        (1536, 864),
        (1600, 900),
        (1920, 1080),
        (1920, 1200),
        (2560, 1440),
        (2560, 1600),
        (2880, 1800),
        (3840, 2160),
        (750, 1334),
        (828, 1792),
        (1080, 1920),
        (1080, 2340),
        (1080, 2400),
        (1125, 2436),
        (1170, 2532),
        (1179, 2556),
        (1242, 2688),
        (1284, 2778),
        (1290, 2796),
        (1440, 3200),
    }
)
_EDITORS = (
    "photoshop",
    "lightroom",
    "gimp",
    "paint",
    "affinity",
    "pixelmator",
    "snapseed",
    "picasa",
    "canva",
    "facetune",
    "meitu",
    "photoscape",
    "luminar",
    "capture one",
    "darktable",
    "rawtherapee",
    "acdsee",
    "corel",
    "krita",
    "inkscape",
    "preview",
    "imagemagick",
    "graphicsmagick",
    "photopea",
    "fotor",
    "vsco",
    "picsart",
    "paintshop",
    # a maker's programs by their names, not the maker's name alone (DxO also made a camera, the DxO ONE)
    "dxo photolab",
    "dxo opticspro",
    "dxo optics pro",
    "dxo pureraw",
    "dxo filmpack",
    "dxo viewpoint",
    "on1 photo",
    "on1 effects",
    "on1 resize",
    "windows photo viewer",
    "windows photo editor",  # Windows 10's Photos app
    "windows live photo gallery",
    "microsoft photos",
)
#: An editor's name as a word, a version number glued to it or not ('Facetune2'; 'DSC-Paintbrush'
#: is not Paint); the generic words ('preview', 'paint') only where the name starts with them
#: (Apple's Preview, Paint, Paint.NET), not inside a firmware string ('G998BXXU5 preview build');
#: Apple's Photos app (macOS) writes 'Photos 3.0': 'Photos' only as the whole name, a version after it.
_GENERIC_EDITORS = ("preview", "paint")
_EDITOR_NAMES = re.compile(
    r"\b(?:" + "|".join(re.escape(e) for e in _EDITORS if e not in _GENERIC_EDITORS) + r")\d*\b"
    r"|^\s*(?:ms |microsoft )?(?:" + "|".join(_GENERIC_EDITORS) + r")\d*\b"
    r"|^\s*(?:apple )?photos(?:\s+\d+(?:\.\d+)*)?\s*$",
    re.IGNORECASE,
)
_EVIDENCE = " This is evidence, not proof."
_MAX_STR = 256
_TIFF_HEADS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SEVERITIES = ("info", "notice", "warning")
#: Pillow's formats for JPEG files: 'MPO' is a JPEG with extra pictures (many phones write it).
_JPEG_FORMATS = ("JPEG", "MPO")
#: A larger EXIF "thumbnail" is refused before decoding: its header can claim any size.
_MAX_THUMB_SIDE = 1024
#: Thumbnail size (160×120 is the standard's): one this small is decoded even when the image was
#: shrunk below it, since its crop and aspect are the point of comparing.
_THUMB_SIDE = 320


@dataclass(frozen=True)
class Sign:
    """One plain-language observation: what was seen, what it may mean, how strong it is."""

    code: str
    severity: str  # 'info' | 'notice' | 'warning'
    observation: str
    meaning: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.observation}: {self.meaning}"

    def to_dict(self) -> dict[str, str]:
        """JSON-safe dict."""
        return {"code": self.code, "severity": self.severity, "observation": self.observation, "meaning": self.meaning}


@dataclass
class Provenance:
    """Everything the file says about itself. Missing/malformed metadata -> ``None`` + ``problems``.

    ``gps`` holds the raw GPS tags (coordinates): it is hidden from ``repr``, ``rows`` and
    ``to_dict`` unless explicitly requested.
    """

    name: str
    path: str | None
    format: str | None
    size: tuple[int, int]
    mode: str
    frames: int = 1
    file_size: int | None = None
    sha256: str | None = None
    # EXIF
    exif_present: bool = False
    exif_unreadable: bool = False  # an EXIF block is there but none of it could be read
    make: str | None = None
    model: str | None = None
    software: str | None = None
    datetime_original: str | None = None
    datetime_digitized: str | None = None
    datetime_modified: str | None = None
    #: The time zones of the capture and modify dates (EXIF 2.31 OffsetTimeOriginal, OffsetTime: "+02:00").
    offset_original: str | None = None
    offset_modified: str | None = None
    orientation: int | None = None
    exif_size: tuple[int, int] | None = None
    gps_present: bool = False
    gps: dict[str, Any] = field(default_factory=dict, repr=False)
    exif: dict[str, Any] = field(default_factory=dict, repr=False)
    # EXIF thumbnail
    thumbnail_present: bool = False
    thumbnail_size: tuple[int, int] | None = None
    thumbnail_aspect_mismatch: bool | None = None
    thumbnail_correlation: float | None = None
    thumbnail_difference: float | None = None  # mean absolute grey-level difference (smoothed, 0..255)
    thumbnail_mismatch: bool | None = None
    #: degrees clockwise the image was turned after its thumbnail was made (it matches so turned)
    thumbnail_turned: int | None = None
    # JPEG coding
    quantization: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    jpeg_quality: QualityEstimate | None = None
    chroma_subsampling: str | None = None
    progressive: bool | None = None
    # other blocks
    icc_profile_present: bool = False
    icc_description: str | None = None
    png_text: dict[str, str] = field(default_factory=dict)
    png_text_bomb: bool = False  # a text chunk inflates beyond the safe limit (left unread)
    xmp_present: bool = False
    xmp_software: list[str] = field(default_factory=list)  # software the XMP names (creator, history)
    xmp_orientation: int | None = None  # XMP's tiff:Orientation without an EXIF one (viewers ignore it)
    #: software named by a further EXIF block or XMP packet of a JPEG (readers show only one)
    other_software: list[str] = field(default_factory=list)
    comment: str | None = None  # JPEG COM segment or GIF comment
    signs: list[Sign] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- views

    def to_dict(self, include_gps: bool = False) -> dict[str, Any]:
        """JSON-safe dict; GPS coordinates only with ``include_gps=True``."""
        out: dict[str, Any] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            if k == "gps":
                v = _jsonable(v) if include_gps else None
            elif k == "quantization":
                v = {str(i): t.astype(int).tolist() for i, t in v.items()}
            elif k == "jpeg_quality":
                v = None if v is None else v.to_dict()
            elif k == "signs":
                v = [s.to_dict() for s in v]
            else:
                v = _jsonable(v)
            out[k] = v
        return out

    def rows(self, show_gps: bool = False) -> list[tuple[str, str, str]]:
        """(section, field, value) string triples for tables; '—' marks an absent field."""

        def fmt(v: Any) -> str:
            if v is None:
                return "—"
            if isinstance(v, bool):
                return "yes" if v else "no"
            if isinstance(v, tuple):
                return "×".join(str(x) for x in v)
            return str(v)

        r: list[tuple[str, str, str]] = []
        add = lambda sec, f, v: r.append((sec, f, fmt(v)))  # noqa: E731
        add("File", "name", display_name(self.name))  # no folders, no bidi override (a name that reads backwards)
        add("File", "format", self.format)
        add(
            "File",
            "size (w×h)" + (", as stored (viewers turn it)" if self.orientation in (5, 6, 7, 8) else ""),
            self.size,
        )
        add("File", "mode", self.mode)
        if self.frames != 1:
            add("File", "frames", self.frames)
        add("File", "file size (bytes)", self.file_size)
        add("File", "sha256", self.sha256)
        add("EXIF", "present", "a block is there, unreadable" if self.exif_unreadable else self.exif_present)
        for f in (
            "make",
            "model",
            "software",
            "datetime_original",
            "datetime_digitized",
            "datetime_modified",
            "offset_original",
            "offset_modified",
            "orientation",
            "exif_size",
        ):
            if f.startswith("offset") and getattr(self, f) is None:
                continue  # most files have none: no row of dashes
            add("EXIF", f.replace("_", " "), getattr(self, f))
        if not self.gps_present:
            add("EXIF", "GPS", "absent")
        elif not show_gps and _gps_version_only(self.gps):
            add("EXIF", "GPS", "present but empty (only its version number)")
        elif not show_gps and not _gps_has_position(self.gps):
            add("EXIF", "GPS", "present, no usable position")
        elif show_gps:
            for k, v in self.gps.items():
                add("GPS", k, _short(v))
        else:
            add("EXIF", "GPS", "present (coordinates hidden)")
        add("Thumbnail", "present", self.thumbnail_present)
        if self.thumbnail_present:
            add("Thumbnail", "size (w×h)", self.thumbnail_size)
            add("Thumbnail", "aspect mismatch", self.thumbnail_aspect_mismatch)
            add(
                "Thumbnail",
                "correlation with image",
                None if self.thumbnail_correlation is None else f"{self.thumbnail_correlation:.2f}",
            )
            if self.thumbnail_difference is not None:
                add("Thumbnail", "mean difference (grey levels)", f"{self.thumbnail_difference:.1f}")
            add("Thumbnail", "mismatch", self.thumbnail_mismatch)
            if self.thumbnail_turned:
                add("Thumbnail", "matches the image turned", f"{self.thumbnail_turned}° clockwise")
        if self.format in _JPEG_FORMATS or self.quantization:
            q = self.jpeg_quality
            # read as the signs read it: standard tables -> their (luma) quality, chroma named beside it
            add("JPEG", "estimated quality", None if q is None else _quality_words(q) if q.standard else q.quality)
            std = None if q is None else "yes (not all at one quality)" if q.standard and not q.exact else q.standard
            add("JPEG", "standard libjpeg tables", std)
            if q is not None and not q.standard:  # only the nearest quality: say how near
                add("JPEG", "mean table error", f"{q.error:.2f}")
                add("JPEG", "luma / chroma quality", f"{q.luma_quality} / {fmt(q.chroma_quality)}")
            add("JPEG", "chroma subsampling", self.chroma_subsampling)
            add("JPEG", "progressive", self.progressive)
            for i, t in self.quantization.items():
                add("JPEG", f"quant table {i} (first row)", " ".join(str(int(x)) for x in t[0]))
        add("Color", "ICC profile", self.icc_profile_present)
        if self.icc_description:
            add("Color", "ICC description", self.icc_description)
        add("XMP", "present", self.xmp_present)
        if self.xmp_software:
            add("XMP", "software named", "; ".join(self.xmp_software))
        if self.xmp_orientation is not None:
            add("XMP", "orientation", f"{self.xmp_orientation} (not EXIF: viewers show the picture as stored)")
        if self.comment:
            add("Comment", "comment", self.comment)
        for k, v in self.png_text.items():
            add("PNG text", k, _short(v))
        for s in self.signs:
            r.append(("Signs", s.severity, f"{s.observation}: {s.meaning}"))
        for p in self.problems:
            r.append(("Problems", "problem", p))
        return r

    def _repr_html_(self) -> str:
        """HTML table for notebooks; every string escaped (metadata is attacker-controlled)."""
        colours = {"info": "#555", "notice": "#b36b00", "warning": "#b00020"}
        e = html.escape
        parts = [
            f"<div><b>Provenance of {e(display_name(self.name))}</b>",
            "<table style='border-collapse:collapse;text-align:left'>",
            "<tr><th>section</th><th>field</th><th>value</th></tr>",
        ]
        for sec, f, v in self.rows():
            style = f" style='color:{colours[f]}'" if sec == "Signs" and f in colours else ""
            parts.append(
                f"<tr><td>{e(sec)}</td><td{style}>{e(f)}</td><td style='word-break:break-all'>{e(v)}</td></tr>"
            )
        parts.append("</table></div>")
        return "".join(parts)


# --------------------------------------------------------------------------- helpers


def _utf8_reading(s: str) -> str:
    """Undo Pillow's latin-1 reading of EXIF text written as UTF-8 ('CafÃ©' -> 'Café').

    Taken only when the latin-1 bytes are valid UTF-8, which real latin-1 text almost never is.
    """
    if s.isascii():
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return s


def _clean(v: Any) -> str | None:
    """EXIF/PNG value -> printable, bounded string (or None when empty)."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8", "replace")
    s = _utf8_reading(str(v)).replace("\x00", "").strip()
    s = "".join(ch if ch.isprintable() else "\ufffd" for ch in s)
    if not s:
        return None
    return s if len(s) <= _MAX_STR else s[:_MAX_STR] + "…"


def _short(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)) and len(v) > 64:
        return f"<{len(v)} bytes>"
    return _clean(v) or ""


def _jsonable(v: Any) -> Any:
    """Recursively convert PIL/numpy/bytes values to JSON-safe Python types."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, TiffImagePlugin.IFDRational):
        f = float(v) if v.denominator else float("nan")
        return f if math.isfinite(f) else None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, (bytes, bytearray)):
        return _short(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Sign):
        return v.to_dict()
    return _clean(v)


def _exif_value(v: Any) -> Any:
    """An EXIF value for the ``exif``/``gps`` dicts: text cleaned like the named fields; a few
    bytes that are no text (a BYTE tag: GPSAltitudeRef 0 above / 1 below sea level, FileSource,
    ComponentsConfiguration) as their numbers, which read as text gave '' and U+FFFD."""
    if isinstance(v, (bytes, bytearray)) and len(v) <= 4:
        text = bytes(v).rstrip(b"\x00")
        if not (text and all(0x20 <= c < 0x7F for c in text)):
            return v[0] if len(v) == 1 else list(v)
    return _clean(v) if isinstance(v, str) else _jsonable(v)


def _whole_number(v: Any) -> int | None:
    """EXIF number -> int; ``None`` for text, NaN/inf floats, 0-denominator rationals, fractions."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if not isinstance(v, (float, np.floating, TiffImagePlugin.IFDRational)):
        return None  # text ("6" as ASCII), bytes, several values
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return int(f) if math.isfinite(f) and f.is_integer() else None


def _gps_degrees(v: Any, limit: float) -> float | None:
    """GPS (degrees, minutes, seconds) as stored in ``Provenance.gps`` -> degrees; ``None`` when
    missing, not finite (0 denominators come out ``None``) or beyond ``limit``."""
    parts = v if isinstance(v, (list, tuple)) else [v]
    if not 1 <= len(parts) <= 3 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in parts):
        return None
    if any(not 0 <= float(x) < 60 for x in parts[1:]) or float(parts[0]) < 0:  # 10° 75' 99" is no place
        return None
    deg = sum(float(x) / 60**k for k, x in enumerate(parts))
    return deg if abs(deg) <= limit else None


def _gps_has_position(gps: dict[str, Any]) -> bool:
    """Whether the GPS tags hold a usable latitude and longitude (not just a version, no 0
    denominators, minutes and seconds below 60, and not 0° N 0° E: what devices write without a fix)."""
    lat, lon = _gps_degrees(gps.get("GPSLatitude"), 90.0), _gps_degrees(gps.get("GPSLongitude"), 180.0)
    return lat is not None and lon is not None and (lat, lon) != (0.0, 0.0)


def _gps_version_only(gps: dict[str, Any]) -> bool:
    """Whether the GPS directory holds its GPSVersionID and nothing else: what Canon cameras
    without a GPS receiver write in every photo, no sign of damage or of a position removed."""
    return set(gps) == {"GPSVersionID"}


def _frame_count(im: Image.Image, problems: list[str]) -> int:
    """Number of frames; a broken frame chain (e.g. a TIFF next-IFD pointer out of range) counts
    as 1, recorded in ``problems``, and the image is put back on its first frame."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return max(1, frame_count(im))
    except (*jpeg.PARSE_ERRORS, OverflowError) as e:
        problems.append(f"frame count unreadable ({type(e).__name__}: {e}); counted as 1 frame")
    try:
        im.seek(0)
    except (*jpeg.PARSE_ERRORS, OverflowError):
        pass
    return 1


def _quality_words(q: QualityEstimate) -> str:
    """'90', or '90 (chroma tables at quality 60)' (cjpeg -quality 90,60): one wording for the
    table and the signs, headlined by the luma quality as encoders name it."""
    ql = q.luma_quality
    return str(ql) if q.chroma_quality in (None, ql) else f"{ql} (chroma tables at quality {q.chroma_quality})"


def _parse_exif_datetime(s: str) -> datetime | None:
    m = re.match(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", s)
    if not m:
        return None
    try:
        return datetime(*(int(x) for x in m.groups()))
    except ValueError:
        return None


def _utc_offset(s: str | None) -> timedelta | None:
    """An EXIF OffsetTime ("+02:00", "-05:30"; "+0900" as some devices write it, without the
    colon) as a time difference; ``None`` when absent or malformed."""
    m = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", s or "")
    if not m or int(m[3]) >= 60 or int(m[2]) * 60 + int(m[3]) > 14 * 60:
        return None
    d = timedelta(hours=int(m[2]), minutes=int(m[3]))
    return d if m[1] == "+" else -d


def _icc_description(icc: bytes) -> str | None:
    """The profile's 'desc' tag (ICC v2 'desc' or v4 'mluc'); None if absent/malformed."""
    try:
        (count,) = struct.unpack(">I", icc[128:132])
        for k in range(min(count, 256)):
            sig, off, size = struct.unpack(">4sII", icc[132 + 12 * k : 144 + 12 * k])
            if sig != b"desc":
                continue
            tag = icc[off : off + size]
            if tag[:4] == b"desc":
                (n,) = struct.unpack(">I", tag[8:12])
                return _clean(tag[12 : 12 + n].split(b"\x00")[0].decode("latin-1"))
            if tag[:4] == b"mluc":
                ln, o = struct.unpack(">II", tag[20:28])
                return _clean(tag[o : o + ln].decode("utf-16-be", "replace"))
    except (struct.error, UnicodeDecodeError):
        return None
    return None


def _strip_exif_header(raw: bytes) -> bytes:
    return re.sub(b"^(Exif\x00\x00){1,2}", b"", raw)


# --------------------------------------------------------------------------- reading


def read_provenance(source: Source) -> Provenance:
    """Read everything ``source`` (path, bytes, file object or PIL image) says about itself.

    Raises ``ValueError`` (one line naming the file) only when it is not a readable image.
    """
    with pil_log_unprinted(), truncated_refused():  # the one-line error or a recorded problem says what is wrong
        return _read_provenance(source)


def _read_provenance(source: Source) -> Provenance:
    op = jpeg.open_source(source)
    im = op.image
    frame_problems: list[str] = []
    p = Provenance(
        name=op.name,
        path=op.path,
        format=im.format,
        size=stored_size(im),  # Pillow gives a TIFF's size turned by its EXIF orientation
        mode=im.mode,
        frames=_frame_count(im, frame_problems),
    )
    p.problems.extend(f"while opening: {w}" for w in op.warnings)
    p.png_text_bomb = any(w.startswith("PNG text metadata not read") for w in op.warnings)
    p.problems.extend(frame_problems)
    if op.data is not None:
        p.file_size = len(op.data)
        p.sha256 = hashlib.sha256(op.data).hexdigest()
    else:
        p.problems.append("file bytes unavailable (in-memory image): no file size or hash")

    small = _decode_small(op, p)
    _read_png_text(im, op.data, p)  # first: a bad chunk after IDAT then fails here, not in getexif's load as "EXIF"
    raw_exif = _read_exif(im, p)
    _read_thumbnail(im, raw_exif, small, p)
    hdr = _read_jpeg(op, p)
    icc = im.info.get("icc_profile")
    if isinstance(icc, (bytes, bytearray)) and icc:
        p.icc_profile_present = True
        p.icc_description = _icc_description(bytes(icc))
    xmp = metadata.xmp_packet(im)
    if xmp is not None:
        p.xmp_present = True
        p.xmp_software = [c for c in (_clean(x) for x in metadata.xmp_software(xmp)) if c]
        if metadata.xmp_has_dtd(xmp):
            p.problems.append("XMP packet declares a DTD or entities (no real XMP does; not expanded)")
    _read_more_blocks(hdr, p)
    p.comment = _clean(metadata.comment_text(im))
    if isinstance(source, Image.Image) and op.data is not None:
        _note_changed_in_memory(source, op.data, p)
    p.problems = grouped(p.problems, MAX_PROBLEMS)
    p.signs = _signs(p)
    return p


#: Problems listed at most, each kind once (a 300 KB file of 50 000 stray bytes between JPEG
#: segments, or an EXIF directory of 60 000 broken tags, made 25 MB reports and PDFs that never ended).
MAX_PROBLEMS = 40


def _note_changed_in_memory(im: Image.Image, data: bytes, p: Provenance) -> None:
    """A PIL image changed in memory after opening (``thumbnail``, ``convert``...) no longer is
    the file its hash, size, EXIF and tables come from: say so."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            on_disk = jpeg.open_source(data).image
            if im.tell():
                on_disk.seek(im.tell())  # the caller's frame of a multi-frame file
            disk_size, disk_mode = on_disk.size, on_disk.mode
    except (*jpeg.PARSE_ERRORS, Image.DecompressionBombError):
        return
    if (disk_size, disk_mode) != (im.size, im.mode):  # Pillow's view of both (a TIFF's turned size)
        p.problems.append(
            f"the image in memory ({im.size[0]}×{im.size[1]} {im.mode}) differs from its file "
            f"({disk_size[0]}×{disk_size[1]} {disk_mode}): it was changed after opening; file size, "
            "hash, EXIF, thumbnail and JPEG facts describe the file on disk, not the image in memory"
        )


def _grey_8bit(im: Image.Image) -> Image.Image:
    """Grey 0..255 as the analysis reads the picture: 16-bit grey scaled by 1/257 and float by
    255 (``convert("L")`` clipped them: a 16-bit picture against its own thumbnail 'did not match')."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = float(np.nanmax(a)) if a.size else 0.0
        scale = 255.0 if im.mode == "F" and top <= 1.0 else 1 / 257 if top > 255 else 1.0
        return Image.fromarray(np.clip(np.nan_to_num(a * scale), 0, 255).astype(np.uint8))
    if im.mode == "La":  # premultiplied grey: its stored values, as the analysis keeps them
        return im.getchannel(0)
    return im.convert("RGB").convert("L") if im.mode == "LAB" else im.convert("L")  # Pillow has no LAB to L


def _decode_small(op: jpeg.OpenedSource, p: Provenance) -> np.ndarray | None:
    """Decode (JPEG: at 1/8 scale via draft) to a small grey array; record damage as a problem."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = png_without_text(op.data) if p.png_text_bomb and op.data is not None else op.data
            im = Image.open(io.BytesIO(data), formats=image_formats()) if data is not None else op.image
            if data is not None and (scans := too_many_scans(im, lambda: data)):  # minutes to decode
                p.problems.append(f"image data not decoded ({scans})")
                return None
            if op.data is not None and im.format in _JPEG_FORMATS:
                im.draft("L", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            planar = planar16_tiff(im)  # Pillow misreads these planes: read from the file
            load_heard(im)  # libtiff's own lines kept off the terminal; its reason is the problem's
            g = _grey_8bit(im if planar is None else planar)
            if max(g.size) > 512:
                g = g.copy()
                g.thumbnail((512, 512))
            return np.asarray(g, dtype=np.float32)
    except jpeg.PARSE_ERRORS as e:
        if png_text_limit(e) and op.data is not None and op.data[:8] == b"\x89PNG\r\n\x1a\n":
            if not p.png_text_bomb:  # a text chunk after the pixels: they decode, the chunk is the bomb
                p.png_text_bomb = True
                return _decode_small(op, p)
        p.problems.append(f"image data could not be fully decoded ({type(e).__name__}: {e})")
        return None


def _ifd0_count(tiff: bytes) -> tuple[int, bool] | None:
    """How many entries a TIFF block's first directory declares, and whether it links to a
    next one (a thumbnail's) (``None`` when its header or directory lies outside the block)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    off = struct.unpack(order + "I", tiff[4:8])[0]
    if off + 2 > len(tiff):
        return None
    n = struct.unpack(order + "H", tiff[off : off + 2])[0]
    link = tiff[off + 2 + 12 * n : off + 6 + 12 * n]
    return n, len(link) == 4 and struct.unpack(order + "I", link)[0] != 0


def _read_exif(im: Image.Image, p: Provenance) -> bytes | None:
    """Fill the EXIF fields; returns the raw TIFF block (for the thumbnail) when usable."""
    raw = im.info.get("exif")
    tiff = None
    if isinstance(raw, (bytes, bytearray)):
        tiff = _strip_exif_header(bytes(raw))
        if tiff[:4] not in _TIFF_HEADS:
            p.problems.append("EXIF block is malformed (no valid TIFF header); ignored")
            p.exif_unreadable = True
            return None
    base: dict[int, Any] = {}
    sub: dict[int, Any] = {}
    gps: dict[int, Any] = {}
    try:
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            ex = im.getexif()
            base = {k: v for k, v in ex.items()}
            if xmp_filled_orientation(im, ex):  # Pillow's, from XMP: viewers do not turn by it
                p.xmp_orientation = _whole_number(base.pop(0x0112))
            for ifd, dst in ((ExifTags.IFD.Exif, sub), (ExifTags.IFD.GPSInfo, gps)):
                try:
                    dst.update(ex.get_ifd(ifd))
                except jpeg.PARSE_ERRORS as e:
                    p.problems.append(f"EXIF {ifd.name} directory unreadable ({type(e).__name__}: {e})")
        seen = " ".join(p.problems)
        p.problems.extend(f"EXIF: {w.message}" for w in ws if str(w.message) not in seen)
    except jpeg.PARSE_ERRORS as e:
        p.problems.append(f"EXIF block could not be parsed ({type(e).__name__}: {e})")
        p.exif_unreadable = raw is not None
        return None
    if raw is not None and not (base or sub or gps):
        if tiff is not None and (ifd0 := _ifd0_count(tiff)) is not None and ifd0[0] == 0:  # well-formed, no tags
            # GIMP's export of a picture without EXIF: no tags, but a thumbnail
            p.problems.append(
                "EXIF block holds no tags, only a thumbnail" if ifd0[1] else "EXIF block present but empty (no tags)"
            )
        else:
            p.problems.append("EXIF block present but holds no readable tags")
            p.exif_unreadable = True
    # a TIFF's own structure (size, strips, compression) is no camera or editing metadata
    p.exif_present = bool(set(base) - metadata.TIFF_STRUCTURE_TAGS or sub or gps)

    tags = ExifTags.TAGS
    for k, v in {**base, **sub}.items():
        if k in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop, 0x927C):
            continue  # pointers and MakerNote
        p.exif[tags.get(k, f"0x{k:04X}")] = _exif_value(v)
    for attr, ifd, tag in (
        ("make", base, 0x010F),
        ("model", base, 0x0110),
        ("software", base, 0x0131),
        ("datetime_modified", base, 0x0132),
        ("datetime_original", sub, 0x9003),
        ("datetime_digitized", sub, 0x9004),
        ("offset_modified", sub, 0x9010),
        ("offset_original", sub, 0x9011),
    ):
        v = ifd.get(tag)
        if v is not None and not isinstance(v, (str, bytes, bytearray)):  # a text tag stored as a number
            p.problems.append(f"EXIF {attr.replace('_', ' ')} is stored as a {type(v).__name__}, not text; ignored")
            v = None
        setattr(p, attr, _clean(v))
    for tag, attr in (("OffsetTimeOriginal", "offset_original"), ("OffsetTime", "offset_modified")):
        zone = getattr(p, attr)
        if zone is not None and re.fullmatch(r"[\s:]*", zone):  # EXIF's 'unknown': blanks
            setattr(p, attr, None)
        elif zone is not None and _utc_offset(zone) is None:
            p.problems.append(
                f"EXIF {tag} {zone!r} is not a time zone (±HH:MM or ±HHMM, at most 14 hours): "
                "the dates are compared without their time zones"
            )
    o = base.get(0x0112)
    if o is not None:
        # an integer (SHORT) only, as the image loader (load_image) takes it: text or a rational
        # "6" is malformed, and the two must not disagree in one report
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            p.orientation = int(o)
            if not 1 <= p.orientation <= 8:
                p.problems.append(f"EXIF orientation {p.orientation} is out of range 1..8")
        elif _whole_number(o) is None:
            p.problems.append(f"EXIF orientation is not a whole number: {_short(o)!r}; ignored")
        else:
            p.problems.append(
                f"EXIF orientation {_short(o)!r} is malformed (stored as {type(o).__name__}, not an integer); ignored"
            )
    ew, eh = sub.get(0xA002), sub.get(0xA003)
    if ew is not None and eh is not None:
        w, h = _whole_number(ew), _whole_number(eh)
        if w is None or h is None:
            p.problems.append(
                f"EXIF pixel dimensions are not whole numbers: {_short(ew)!r}×{_short(eh)!r} (malformed; ignored)"
            )
        elif w <= 0 or h <= 0:
            p.problems.append(f"EXIF pixel dimensions {w}×{h} are malformed (not positive); ignored")
        else:
            p.exif_size = (w, h)
    if gps:
        p.gps_present = True
        p.gps = {ExifTags.GPSTAGS.get(k, f"0x{k:04X}"): _exif_value(v) for k, v in gps.items()}
        ver = gps.get(0x0000)  # GPSVersionID: 4 BYTEs such as 2,2,0,0, not text
        if isinstance(ver, (bytes, tuple)) and 0 < len(ver) <= 8 and all(isinstance(x, int) for x in ver):
            p.gps["GPSVersionID"] = ".".join(str(x) for x in ver)
        if not _gps_has_position(p.gps) and not _gps_version_only(p.gps):  # Canon's without a receiver: normal
            p.problems.append("GPS block without a usable position (latitude/longitude missing, invalid, or 0° N 0° E)")
    later = datetime.now() + timedelta(days=2)  # EXIF dates carry no time zone: a day's slack either way
    for f in ("datetime_original", "datetime_digitized", "datetime_modified"):
        s = getattr(p, f)
        when = None if s is None else _parse_exif_datetime(s)
        if s is not None and re.fullmatch(r"[\s:0]*", s):  # EXIF's way to say 'unknown': blanks (or zeros)
            setattr(p, f, f"unknown (written as {s!r})")
        elif s is not None and when is None:
            p.problems.append(f"EXIF {f.replace('_', ' ')} is not a valid date: {s!r}")
        elif when is not None and when > later:
            p.problems.append(f"EXIF {f.replace('_', ' ')} is in the future: {s!r} (a wrong clock or an edited date)")
    return tiff


def _read_thumbnail(im: Image.Image, tiff: bytes | None, small: np.ndarray | None, p: Provenance) -> None:
    """Locate the IFD1 thumbnail, decode it and compare with the main image."""
    if tiff is None:
        return
    try:
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            ifd1 = im.getexif().get_ifd(ExifTags.IFD.IFD1)
        seen = " ".join(p.problems)
        p.problems.extend(f"EXIF thumbnail directory: {w.message}" for w in ws if str(w.message) not in seen)
    except jpeg.PARSE_ERRORS as e:
        p.problems.append(f"EXIF thumbnail directory unreadable ({type(e).__name__}: {e})")
        return
    off, length = ifd1.get(0x0201), ifd1.get(0x0202)
    if off is None and length is None:
        if 0x0111 in ifd1:  # strip offsets: uncompressed TIFF thumbnail
            p.thumbnail_present = True
            p.problems.append("EXIF thumbnail is uncompressed; not compared")
        return
    p.thumbnail_present = True
    try:
        off, length = int(off), int(length)
    except (TypeError, ValueError, OverflowError):  # inf offsets included
        p.problems.append("EXIF thumbnail offset/length are malformed")
        return
    data = tiff[off : off + length]
    if off < 0 or length <= 0 or len(data) < length or data[:2] != b"\xff\xd8":
        p.problems.append("EXIF thumbnail points outside the EXIF block or is not a JPEG")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = Image.open(io.BytesIO(data), formats=["JPEG"])  # header only: the size is checked before decoding
            tw, th = t.size
            if max(tw, th) > _MAX_THUMB_SIDE or (tw * th > p.size[0] * p.size[1] and max(tw, th) > _THUMB_SIDE):
                p.problems.append(
                    f"EXIF thumbnail claims {tw}×{th} pixels, more than a thumbnail ({_MAX_THUMB_SIDE} px "
                    f"a side at most, and above {_THUMB_SIDE} px no larger than the image); not decoded"
                )
                return
            t.load()
            p.thumbnail_size = (tw, th)
            thumb = np.asarray(t.convert("L"), dtype=np.float32)
    except (*jpeg.PARSE_ERRORS, Image.DecompressionBombError) as e:
        p.problems.append(f"EXIF thumbnail could not be decoded ({type(e).__name__}: {e})")
        return
    if small is None or min(thumb.shape) < 2:
        return
    c = compare_thumbnail(thumb, small, p.size)
    p.thumbnail_aspect_mismatch = c.aspect_mismatch
    p.thumbnail_correlation = round(c.correlation, 4)
    p.thumbnail_difference = round(c.difference, 2)
    p.thumbnail_mismatch = c.mismatch
    p.thumbnail_turned = c.turned or None


def _read_jpeg(op: jpeg.OpenedSource, p: Provenance) -> jpeg.JpegHeader | None:
    hdr = jpeg.read_header(op)
    if hdr is None:
        if p.format in _JPEG_FORMATS:
            p.problems.append("JPEG header could not be parsed")
        return None
    p.quantization = dict(sorted(hdr.qtables.items()))
    p.problems.extend(f"JPEG header: {x}" for x in hdr.warnings)
    if not hdr.qtables:
        p.problems.append("JPEG has no quantisation tables (DQT) before the first scan")
    p.problems.extend(f"JPEG header could not be parsed: {x}; no quality estimate" for x in jpeg.header_problems(hdr))
    p.jpeg_quality = jpeg.estimate_from_header(hdr)
    p.chroma_subsampling = jpeg.subsampling_from_header(hdr)
    p.progressive = hdr.sof in jpeg.PROGRESSIVE_SOF
    return hdr


def _read_more_blocks(hdr: jpeg.JpegHeader | None, p: Provenance) -> None:
    """A JPEG with two EXIF blocks or two XMP packets: Pillow reads one of each (the first EXIF,
    the last XMP), so an editor named only in another was not seen. Each is read; what they
    name is said (``hdr``: the header :func:`_read_jpeg` parsed)."""
    if hdr is None or (len(hdr.exif_blocks) < 2 and len(hdr.xmp_packets) < 2):
        return
    named: list[str] = []
    for block in hdr.exif_blocks[1:]:
        ex = Image.Exif()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ex.load(block)
                sw = ex.get(0x0131)
        except (*jpeg.PARSE_ERRORS, struct.error):
            continue
        if isinstance(sw, (str, bytes)) and (c := _clean(sw)):
            named.append(c)
    for packet in hdr.xmp_packets:
        named += [c for c in (_clean(x) for x in metadata.xmp_software(packet)) if c]
    known = {p.software, *p.xmp_software}
    p.other_software = list(dict.fromkeys(x for x in named if x not in known))
    what = ", ".join(
        f"{n} {kind}"
        for n, kind in ((len(hdr.exif_blocks), "EXIF blocks"), (len(hdr.xmp_packets), "XMP packets"))
        if n > 1
    )
    also = f"; the others name {', '.join(repr(x) for x in p.other_software[:3])}" if p.other_software else ""
    p.problems.append(f"{what} in one file (cameras write one; a program added another): each read{also}")


def _read_png_text(im: Image.Image, data: bytes | None, p: Provenance) -> None:
    """PNG tEXt/zTXt/iTXt chunks; ones Pillow cannot decode (e.g. a zTXt decompression bomb)
    become a problem, keeping only the chunks read before the pixels; so does a chunk Pillow
    drops without a word (an iTXt whose text is not UTF-8)."""
    if im.format != "PNG":
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = dict(getattr(im, "text", {}) or {})
    except Exception as e:  # any: once a load has failed, Pillow's .text raises a bare AssertionError
        why = f"{type(e).__name__}: {e}" if str(e) else "a chunk after the image data could not be decoded"
        p.problems.append(f"PNG text chunks unreadable ({why}); only those before the image data are shown")
        text = {k: v for k, v in im.info.items() if isinstance(v, str)}
    else:
        if data is not None and not p.png_text_bomb:
            dropped = list(dict.fromkeys(k for k in metadata.png_text_keys(data) if k not in text))
            if dropped:
                names = ", ".join(repr(_clean(k) or "?") for k in dropped[:8])
                p.problems.append(
                    f"PNG text chunk{'s' if len(dropped) > 1 else ''} {names} could not be decoded "
                    "(malformed text or compression); not shown"
                )
    for k, v in text.items():
        key = _clean(k) or "?"
        p.png_text[key] = "<binary>" if not isinstance(v, str) else (_clean(v) or "")


# --------------------------------------------------------------------------- signs


def _signs(p: Provenance) -> list[Sign]:
    """Turn the facts into plain-language, hedged observations."""
    s: list[Sign] = []

    def add(code: str, severity: str, observation: str, meaning: str, evidence: bool = True) -> None:
        """``evidence=False``: a sign that says it is no evidence either way gets no 'evidence,
        not proof' after it (the two sentences contradicted each other)."""
        assert severity in _SEVERITIES
        s.append(Sign(code, severity, observation, meaning.rstrip(".") + "." + (_EVIDENCE if evidence else "")))

    w, h = p.size
    if p.png_text_bomb:  # wherever the chunk sits, before or after the pixels
        add(
            "metadata_bomb",
            "warning",
            "a PNG text chunk inflates beyond the safe limit (a decompression bomb); it was not read",
            "no camera or editor writes such a chunk: the file was made to break or stall tools that "
            "read metadata; its pixels are analysed as usual",
        )
    other_metadata = p.png_text or p.icc_profile_present or p.xmp_present or p.comment
    if p.exif_unreadable:  # not stripped: damaged, cut short or written by hand
        add(
            "exif_damaged",
            "notice",
            "an EXIF block is present but none of it can be read",
            "cameras and editors write readable EXIF; a damaged block comes from a tool or a "
            "transfer that broke it, or from editing the metadata by hand",
        )
    elif not p.exif_present:
        if p.format in _JPEG_FORMATS:
            add(  # no evidence either way (as the report's caveats and a PNG's 'no metadata' say)
                "no_exif",
                "notice",
                "no EXIF metadata (common for screenshots and social-network re-uploads)",
                "cameras write EXIF; it was never there or has been stripped, as most platforms, "
                "messengers and many editors do; it says nothing about the content being genuine or not",
                evidence=False,
            )
        elif not (other_metadata or p.png_text_bomb):
            add(
                "no_metadata",
                "notice",
                f"no metadata in this {p.format or 'image'} file",
                "typical of screenshots, graphics exports and stripped re-uploads; it says "
                "nothing about the content being genuine or not",
                evidence=False,
            )
    if p.format == "PNG":
        add(
            "png",
            "info",
            "PNG format",
            "cameras do not write PNG: this is a screenshot, an "
            "export from an editor or a converted file, not an original camera file",
        )
    if p.xmp_present:
        named = f" naming {'; '.join(repr(x) for x in p.xmp_software[:3])}" if p.xmp_software else ""
        add(
            "xmp",
            "info",
            f"XMP metadata present{named}",
            "XMP is written by editing and cataloguing software (Adobe's and others) and by some phones"
            + ("; the software it names opened or wrote the file" if p.xmp_software else ""),
        )
    named_sw = [x for x in (p.software, p.png_text.get("Software")) if x]
    named_sw += [x for x in (*p.xmp_software, *p.other_software) if x not in named_sw]
    editors = [x for x in named_sw if _EDITOR_NAMES.search(x)]
    software = editors[0] if editors else named_sw[0] if named_sw else None
    if software:
        where = (
            ""
            if software in (p.software, p.png_text.get("Software"))
            else " (named in the XMP metadata)"
            if software in p.xmp_software
            else " (named in a further metadata block of the file)"
        )
        if editors:
            add(
                "software",
                "warning",
                f"edited with software {software!r}{where}",
                "the file was written by this editor: the image was opened and re-saved, possibly changed",
            )
        else:
            add(
                "software",
                "info",
                f"written by software {software!r}{where}",
                "the program that last wrote the file; cameras record their firmware here, "
                "other values mean an app or editor re-saved the image",
            )
    mod, orig = p.datetime_modified, p.datetime_original
    if mod and orig:
        dm, do = _parse_exif_datetime(mod), _parse_exif_datetime(orig)
        zm, zo = _utc_offset(p.offset_modified), _utc_offset(p.offset_original)
        if dm is not None and do is not None and zm is not None and zo is not None:  # both in UTC
            dm, do = dm - zm, do - zo
            mod, orig = f"{mod} {p.offset_modified}", f"{orig} {p.offset_original}"
        if dm is not None and do is not None and abs(dm - do) <= timedelta(seconds=1):
            pass  # written in the same second or the next: a camera saving its own photo
        elif dm is not None and do is not None and dm > do:
            add(
                "dates",
                "notice",
                f"modify date differs from capture date ({orig} → {mod})",
                "the file was re-saved after capture (editing, rotation or export)",
            )
        elif dm is not None and do is not None and dm < do:
            add(
                "dates",
                "notice",
                f"modify date is earlier than the capture date ({mod} before {orig})",
                (
                    f"the modify date is the one {p.software!r} (the EXIF Software) wrote when it saved "
                    "the file: its computer's clock or time zone differs from the camera's, or a date "
                    "was edited"
                    if p.software and _EDITOR_NAMES.search(p.software)
                    # a camera's or phone's firmware names itself here too: no computer of its own
                    else f"the EXIF Software {p.software!r} is the camera's own firmware or a program "
                    "that saved the file later: a clock or time-zone setting differs between the two "
                    "dates, or a date was edited"
                    if p.software
                    else "dates a camera writes together disagree: a clock or time-zone setting, or dates "
                    "edited by a program"
                )
                + "; they cannot both be taken at face value",
            )
    if p.thumbnail_turned:
        add(
            "thumbnail_turned",
            "info",
            f"EXIF thumbnail shows the image before it was turned {p.thumbnail_turned}° clockwise",
            "the pixels were turned after the thumbnail was made and the thumbnail kept, as apps "
            "that apply the EXIF orientation do; turned back, the thumbnail matches the image",
        )
    if p.thumbnail_mismatch:
        why = "aspect ratio" if p.thumbnail_aspect_mismatch else "content"
        add(
            "thumbnail",
            "warning",
            f"EXIF thumbnail does not match the image ({why})",
            "the preview kept from an earlier version differs from the current pixels: the "
            "image was cropped, rotated or edited without updating the thumbnail",
        )
    if p.exif_size is not None and p.exif_size not in ((w, h), (h, w)):
        add(
            "exif_size",
            "warning",
            f"EXIF says {p.exif_size[0]}×{p.exif_size[1]} but the image is {w}×{h}",
            "the image was resized or cropped after the EXIF was written",
        )
    camera_size = (w, h) in CAMERA_SIZES or (h, w) in CAMERA_SIZES
    # 1920×1080 and 1280×720 are also cameras' 16:9 settings: with the camera named in EXIF, the
    # size it recorded and no editor, they are no sign of a screenshot
    as_recorded = p.exif_size is None or p.exif_size in ((w, h), (h, w))
    if camera_size and (p.make or p.model) and as_recorded and not editors:
        pass
    elif ((w, h) in SCREEN_SIZES or (h, w) in SCREEN_SIZES) and max(w, h) in SOCIAL_SIDES:
        # 1600×900, 1280×720: also what a messenger's resize to a 1600 or 1280 px long side makes
        # of a 16:9 photo, the commonest shape of a phone picture; neither reading is favoured
        add(
            "screen_size",
            "notice",
            f"dimensions {w}×{h} are a screen resolution, and also what a platform that resizes "
            f"the long side to {max(w, h)} px makes of a photo of this shape",
            "a screenshot, a video frame, or a photo resized by a messenger or social network: "
            "the size alone cannot tell them apart",
            evidence=False,
        )
    elif (w, h) in SCREEN_SIZES or (h, w) in SCREEN_SIZES:
        add(
            "screen_size",
            "notice",
            f"dimensions {w}×{h} are a screen resolution",
            "typical of screenshots or video frames rather than camera photos",
        )
    elif not camera_size and (w in SOCIAL_SIDES or h in SOCIAL_SIDES):
        side = f"width {w} is a common resize width" if w in SOCIAL_SIDES else f"height {h} is a common resize side"
        add(
            "social_size",
            "notice",
            f"dimensions {w}×{h}: {side} of social networks and messengers (1080, 2048, 1200, 1600...)",
            "the image may have been resized by a platform or an editor; a camera or phone setting can "
            "give this size too",
        )
    q = p.jpeg_quality
    if q is not None:
        if q.standard and q.luma_quality < 90 and (p.make or p.model) and not editors:
            add(
                "recompressed",
                "info",
                f"JPEG quality {_quality_words(q)}, lower than camera files usually are",
                "camera files are usually at quality 90 or above; some cameras save lower at a "
                "smaller-file setting, and the camera named in EXIF with no editing software named "
                "fits that: weak evidence of recompression",
            )
        elif q.standard and q.luma_quality < 90:
            add(
                "recompressed",
                "notice",
                f"JPEG quality {_quality_words(q)} suggests recompression",
                "standard libjpeg tables at this quality are typical of software and platforms "
                "re-saving the image; cameras usually store at quality 90+",
            )
        elif q.standard:
            add(
                "libjpeg",
                "info",
                f"standard libjpeg tables at quality {_quality_words(q)}",
                "written by a software encoder (library, app, phone); not typical of "
                "dedicated cameras, which use their own tables",
            )
        else:
            add(
                "custom_tables",
                "info",
                "non-standard quantisation tables (camera or editor)",
                f"the tables do not follow libjpeg scaling (nearest quality {q.quality}); "
                "cameras and editors such as Photoshop use their own tables",
            )
    if p.gps_present and _gps_has_position(p.gps):
        add(
            "gps",
            "info",
            "GPS location recorded (coordinates hidden)",
            "the device stored where the photo was taken; it can be checked against the "
            "claimed place but is easy to edit",
        )
    return s
