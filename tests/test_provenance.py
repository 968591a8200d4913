"""read_provenance on hand-made files: EXIF, thumbnails, tables, PNG text, hostile metadata."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, PngImagePlugin, features

from trufor_lab.forensics import jpeg
from trufor_lab.forensics.provenance import Provenance, Sign, read_provenance


def _pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth, structured RGB content (no dark borders) so thumbnails can be compared."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    r = 130 + 80 * np.sin(6 * x + seed) * np.cos(4 * y)
    g = 130 + 80 * np.cos(5 * y - 2 * x + seed)
    b = 130 + 60 * np.sin(3 * (x + y))
    img = np.stack([r, g, b], -1)
    img[h // 4 : h // 2, w // 5 : w // 2] = [220, 210, 60]
    return np.clip(img, 40, 225).astype(np.uint8)


def _save(arr: np.ndarray, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _codes(p: Provenance) -> set[str]:
    return {s.code for s in p.signs}


def _camera_exif(software: str = "Adobe Photoshop 25.0") -> Image.Exif:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Canon"
    ex[ExifTags.Base.Model] = "Canon EOS 5D"
    ex[ExifTags.Base.Software] = software
    ex[ExifTags.Base.Orientation] = 6
    ex[ExifTags.Base.DateTime] = "2024:05:02 18:00:00"
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2024:05:01 09:30:00"
    sub[ExifTags.Base.DateTimeDigitized] = "2024:05:01 09:30:00"
    gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (45.0, 27.0, 51.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (9.0, 11.0, 13.25)
    return ex


def _exif_with_thumbnail(thumb_jpeg: bytes) -> bytes:
    """APP1 payload: little-endian TIFF, IFD0 (Make, Orientation) -> IFD1 (JPEG thumbnail)."""
    make = b"Nikon\x00"
    ifd0_off, ifd1_off = 8, 8 + 2 + 2 * 12 + 4
    make_off = ifd1_off + 2 + 3 * 12 + 4
    thumb_off = make_off + len(make)
    ifd0 = struct.pack("<H", 2)
    ifd0 += struct.pack("<HHII", 0x010F, 2, len(make), make_off)
    ifd0 += struct.pack("<HHIHH", 0x0112, 3, 1, 1, 0)
    ifd0 += struct.pack("<I", ifd1_off)
    ifd1 = struct.pack("<H", 3)
    ifd1 += struct.pack("<HHIHH", 0x0103, 3, 1, 6, 0)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, thumb_off)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumb_jpeg))
    ifd1 += struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", ifd0_off) + ifd0 + ifd1 + make + thumb_jpeg
    assert len(b"II*\x00") + 4 + len(ifd0) == ifd1_off
    return b"Exif\x00\x00" + tiff


def _letterboxed_thumb(arr: np.ndarray) -> bytes:
    """160x120 thumbnail with black bars, as cameras store for 3:2 sensors."""
    im = Image.fromarray(arr)
    im.thumbnail((160, 120))
    canvas = Image.new("RGB", (160, 120))
    canvas.paste(im, ((160 - im.width) // 2, (120 - im.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------- EXIF


def test_camera_exif_fields_and_signs(tmp_path) -> None:
    data = _save(_pattern(300, 200), quality=93, exif=_camera_exif().tobytes())
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    p = read_provenance(path)
    assert (p.name, p.path, p.format) == (str(path), str(path), "JPEG")
    assert (p.size, p.mode) == ((300, 200), "RGB")
    assert p.file_size == len(data) and p.sha256 == hashlib.sha256(data).hexdigest()
    assert (p.make, p.model, p.software) == ("Canon", "Canon EOS 5D", "Adobe Photoshop 25.0")
    assert p.datetime_original == "2024:05:01 09:30:00"
    assert p.datetime_digitized == "2024:05:01 09:30:00"
    assert p.datetime_modified == "2024:05:02 18:00:00"
    assert p.orientation == 6 and p.exif_present and p.gps_present
    assert p.gps["GPSLatitudeRef"] == "N" and p.gps["GPSLatitude"][0] == 45.0
    assert p.jpeg_quality is not None and p.jpeg_quality.quality == 93 and p.jpeg_quality.exact
    assert p.chroma_subsampling == "4:2:0" and p.progressive is False
    assert not p.thumbnail_present and p.problems == []
    codes = _codes(p)
    assert {"software", "dates", "gps", "libjpeg"} <= codes and "no_exif" not in codes
    sw = next(s for s in p.signs if s.code == "software")
    assert sw.severity == "warning" and "edited with software" in sw.observation
    assert all(s.meaning.endswith("evidence, not proof.") for s in p.signs)
    assert any("modify date differs from capture date" in s.observation for s in p.signs)


def test_gps_coordinates_hidden_unless_asked() -> None:
    p = read_provenance(_save(_pattern(64, 48), quality=90, exif=_camera_exif().tobytes()))
    shown = repr(p) + json.dumps(p.to_dict()) + str(p.rows()) + p._repr_html_()
    assert "27.0" not in shown and "51.5" not in shown and "13.25" not in shown
    assert ("EXIF", "GPS", "present (coordinates hidden)") in p.rows()
    assert p.to_dict()["gps"] is None
    full = json.loads(json.dumps(p.to_dict(include_gps=True)))
    assert full["gps"]["GPSLatitude"] == [45.0, 27.0, 51.5]
    assert ("GPS", "GPSLatitudeRef", "N") in p.rows(show_gps=True)


@pytest.mark.parametrize(
    "tiff",
    [
        b"II*\x00" + struct.pack("<I", 0xFFFFFFF0),  # IFD0 far past the end
        b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010F, 2, 0x7FFFFFFF, 100) + b"\0" * 4,
        b"XX*\x00" + b"\0" * 12,  # no TIFF header
    ],
    ids=["offset", "huge-count", "header"],
)
def test_a_damaged_exif_block_is_not_reported_as_stripped(tiff) -> None:
    """A damaged EXIF block read 'EXIF present: no' and 'no EXIF metadata ... never there or
    has been stripped', while the Problems said the block is there: a damaged block points to a
    tool or a hand edit, not to a platform's stripping."""
    jpg = _save(_pattern(120, 80), quality=90)
    app1 = b"Exif\x00\x00" + tiff
    data = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]
    p = read_provenance(data)
    assert p.exif_unreadable and not p.exif_present
    codes = _codes(p)
    assert "exif_damaged" in codes and "no_exif" not in codes
    assert ("EXIF", "present", "a block is there, unreadable") in p.rows()
    assert not read_provenance(jpg).exif_unreadable


def test_an_exif_block_with_only_a_thumbnail_is_not_called_empty() -> None:
    """GIMP exports a picture that had no EXIF with a block of no tags but a thumbnail (MATE's
    wallpapers): 'EXIF block present but empty (no tags)' stood beside 'Thumbnail present: yes'."""
    main = _pattern(480, 320)
    thumb = _letterboxed_thumb(main)
    ifd1_off = 8 + 2 + 4
    thumb_off = ifd1_off + 2 + 3 * 12 + 4
    ifd1 = struct.pack("<H", 3) + struct.pack("<HHIHH", 0x0103, 3, 1, 6, 0)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, thumb_off) + struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
    tiff = b"II*\x00" + struct.pack("<IHI", 8, 0, ifd1_off) + ifd1 + struct.pack("<I", 0) + thumb
    p = read_provenance(_save(main, quality=90, exif=b"Exif\x00\x00" + tiff))
    assert p.thumbnail_present and p.thumbnail_size == (160, 120) and p.thumbnail_mismatch is False
    assert p.problems == ["EXIF block holds no tags, only a thumbnail"]
    assert not p.exif_unreadable and "no_exif" in _codes(p)


def test_a_well_formed_empty_exif_block_is_not_called_damaged() -> None:
    """A script that re-saves with exif=im.getexif() from a picture that had none writes a
    valid block with no tags: no 'damaged or edited by hand' sign for that."""
    im = Image.fromarray(_pattern(64, 48))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=im.getexif())
    p = read_provenance(buf.getvalue())
    assert not p.exif_unreadable and "exif_damaged" not in _codes(p) and "no_exif" in _codes(p)
    assert "EXIF block present but empty (no tags)" in p.problems


def test_jpeg_without_metadata() -> None:
    data = _save(_pattern(200, 150), quality=75)
    p = read_provenance(data)
    assert p.name == "<bytes>" and not p.exif_present and p.make is None and p.software is None
    assert not p.gps_present and p.gps == {} and p.orientation is None
    assert p.problems == []
    codes = _codes(p)
    assert {"no_exif", "recompressed"} <= codes
    assert any("no EXIF metadata" in s.observation for s in p.signs)
    assert any("JPEG quality 75 suggests recompression" in s.observation for s in p.signs)
    json.dumps(p.to_dict())


def test_jpeg_with_odd_quantisation_tables() -> None:
    luma = (jpeg.ijg_table(92).astype(int) + 1 + np.arange(64).reshape(8, 8) % 2).ravel().tolist()
    chroma = (jpeg.ijg_table(92, chroma=True).astype(int) + 1).ravel().tolist()
    p = read_provenance(_save(_pattern(96, 64), qtables=[luma, chroma], subsampling=0))
    assert p.jpeg_quality is not None and not p.jpeg_quality.exact and not p.jpeg_quality.standard
    assert abs(p.jpeg_quality.quality - 92) <= 4
    assert p.chroma_subsampling == "4:4:4"
    assert p.quantization[0].ravel().tolist() == luma
    assert "custom_tables" in _codes(p)
    assert any("non-standard quantisation tables" in s.observation for s in p.signs)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["quantization"]["0"][0] == luma[:8] and d["jpeg_quality"]["exact"] is False


# --------------------------------------------------------------------------- other formats


def test_png_with_text_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GIMP 2.10")
    info.add_text("Comment", "made <by> hand")
    info.add_itxt("Description", "città", lang="it")
    p = read_provenance(_save(_pattern(100, 80), "PNG", pnginfo=info))
    assert p.format == "PNG" and p.png_text["Software"] == "GIMP 2.10"
    assert p.png_text["Comment"] == "made <by> hand" and p.png_text["Description"] == "città"
    assert p.jpeg_quality is None and p.quantization == {} and p.chroma_subsampling is None
    assert {"png", "software"} <= _codes(p) and "no_metadata" not in _codes(p)
    assert ("PNG text", "Software", "GIMP 2.10") in p.rows()
    assert "made &lt;by&gt; hand" in p._repr_html_()


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_with_and_without_exif() -> None:
    plain = read_provenance(_save(_pattern(120, 90), "WEBP", quality=80))
    assert plain.format == "WEBP" and not plain.exif_present and plain.jpeg_quality is None
    assert "no_metadata" in _codes(plain) and plain.problems == []
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Google"
    ex[ExifTags.Base.Model] = "Pixel 8"
    tagged = read_provenance(_save(_pattern(120, 90), "WEBP", quality=80, exif=ex.tobytes()))
    assert (tagged.make, tagged.model) == ("Google", "Pixel 8")
    assert "no_metadata" not in _codes(tagged)


def test_screenshot_like_png() -> None:
    arr = np.full((1080, 1920, 3), 245, np.uint8)
    arr[40:80, :] = (30, 30, 60)
    p = read_provenance(_save(arr, "PNG", compress_level=1))
    assert p.size == (1920, 1080) and not p.exif_present and p.png_text == {}
    assert {"no_metadata", "png", "screen_size"} <= _codes(p)
    assert p.icc_profile_present is False


def test_a_camera_16_9_photo_at_1920x1080_is_no_screen_resolution() -> None:
    """Cameras offer 1920×1080 as a photo size (Panasonic Lumix: 16:9, 2M): a photo at that size with
    its camera, its size and its dates in EXIF was called 'a screen resolution, typical of
    screenshots or video frames rather than camera photos'. Without the camera, or after a
    resize the EXIF records, the notice stays."""
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Panasonic"
    ex[ExifTags.Base.Model] = "DMC-FZ200"
    ex[ExifTags.Base.Software] = "Ver.1.0"
    ex[ExifTags.Base.DateTime] = "2019:07:14 10:02:33"
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2019:07:14 10:02:33"
    sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight] = 1920, 1080
    photo = _pattern(1920, 1080)
    p = read_provenance(_save(photo, quality=95, exif=ex.tobytes()))
    assert p.exif_size == (1920, 1080) and "screen_size" not in _codes(p) and "social_size" not in _codes(p)
    assert "screen_size" in _codes(read_provenance(_save(photo, quality=95)))
    sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight] = 4608, 2592
    resized = read_provenance(_save(photo, quality=95, exif=ex.tobytes()))
    assert {"screen_size", "exif_size"} <= _codes(resized)


REAL_PHOTO = Path(__file__).parent / "data" / "real_photos" / "IMG_1054.JPG"


def _messenger(photo: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> bytes:
    """A real photo cropped to ``box``, resized to ``size`` and re-saved as a messenger does:
    JPEG quality 78, 4:2:0, EXIF stripped."""
    buf = io.BytesIO()
    photo.convert("RGB").crop(box).resize(size, Image.LANCZOS).save(buf, "JPEG", quality=78, subsampling="4:2:0")
    return buf.getvalue()


def test_a_16_9_photo_a_messenger_resized_is_not_called_a_screenshot(shared_dir) -> None:
    """A 16:9 phone photo resized by a messenger to a 1600 or 1280 px long side comes out at
    1600×900 or 1280×720, screen resolutions: the sign said 'typical of screenshots or video
    frames rather than camera photos', so a fact-checker read a re-shared photo as a
    screenshot. A screen size whose long side is a platform's resize side names both; a phone
    screenshot's size (1170×2532, long side no platform's) keeps its plain wording."""
    canon = Image.open(REAL_PHOTO)  # 1280×960
    pristine2 = Image.open(shared_dir / "images" / "pristine2.jpg")  # 2048×1773
    made = {
        (1280, 720): _messenger(canon, (0, 120, 1280, 840), (1280, 720)),
        (1600, 900): _messenger(pristine2, (0, 300, 2048, 1452), (1600, 900)),
        (900, 1600): _messenger(pristine2, (700, 0, 1697, 1773), (900, 1600)),
    }
    for size, data in made.items():
        p = read_provenance(data)
        assert p.size == size and not p.exif_present
        (sign,) = [s for s in p.signs if s.code == "screen_size"]
        assert "rather than camera photos" not in sign.meaning, (size, sign)
        assert f"resizes the long side to {max(size)} px" in sign.observation
        assert "photo resized by a messenger" in sign.meaning and "evidence" not in sign.meaning
    shot = Image.new("RGB", (1170, 2532), (24, 24, 28))
    shot.paste(canon.convert("RGB").resize((1170, 878)), (0, 320))
    (sign,) = [s for s in read_provenance(_save(np.asarray(shot), "PNG")).signs if s.code == "screen_size"]
    assert sign.meaning.startswith("typical of screenshots")


def test_no_exif_is_not_called_evidence(shared_dir) -> None:
    """A messenger strips EXIF from every photo: the sign said '... has been stripped. This is
    evidence, not proof.' while the report's caveats say its absence alone means little, and a
    WebP without metadata 'says nothing about the content being genuine or not'. All three agree."""
    data = _messenger(Image.open(REAL_PHOTO), (0, 0, 1280, 960), (1280, 960))
    (sign,) = [s for s in read_provenance(data).signs if s.code == "no_exif"]
    assert "evidence" not in sign.meaning
    assert "says nothing about the content being genuine or not" in sign.meaning


def test_social_network_resize_width() -> None:
    p = read_provenance(_save(_pattern(1080, 1350), quality=85))
    assert "social_size" in _codes(p)
    (sign,) = [s for s in p.signs if s.code == "social_size"]
    assert "width 1080 is a common resize width" in sign.observation and "may have been resized" in sign.meaning


# --------------------------------------------------------------------------- thumbnails


def test_matching_exif_thumbnail() -> None:
    main = _pattern(480, 320)
    exif = _exif_with_thumbnail(_letterboxed_thumb(main))
    p = read_provenance(_save(main, quality=95, exif=exif))
    assert p.make == "Nikon" and p.orientation == 1
    assert p.thumbnail_present and p.thumbnail_size == (160, 120)
    assert p.thumbnail_aspect_mismatch is False and p.thumbnail_correlation > 0.9
    assert p.thumbnail_mismatch is False and "thumbnail" not in _codes(p)
    assert p.problems == []


def _camera_app1(path: Path) -> bytes:
    """The camera's own EXIF segment (APP1, with its thumbnail), as stored in ``path``."""
    data, i = path.read_bytes(), 2
    while i < len(data):
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if data[i + 1] == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            return data[i : i + 2 + length]
        i += 2 + length
    raise AssertionError("no EXIF segment")


@pytest.mark.parametrize("turn", [Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_180])
def test_an_app_that_turned_the_pixels_and_kept_the_thumbnail_is_not_called_an_edit(turn) -> None:
    """An app applying the EXIF orientation turns the pixels, resets the tag and keeps the
    camera's EXIF block with its thumbnail of the unturned picture: the report warned 'EXIF
    thumbnail does not match the image: ... cropped, rotated or edited', a warning for a file
    whose content is untouched. Turned back, the thumbnail matches: that is said, no warning;
    a splice turned the same way still warns."""
    camera = Image.open(REAL_PHOTO)  # Canon, 1280×960, with a 256×192 thumbnail of these pixels
    app1 = _camera_app1(REAL_PHOTO)

    def resaved(im: Image.Image) -> bytes:
        data = _save(np.asarray(im.transpose(turn)), quality=90)
        return data[:2] + app1 + data[2:]  # the camera's EXIF kept, thumbnail and all

    p = read_provenance(resaved(camera.convert("RGB")))
    assert p.thumbnail_present and p.thumbnail_mismatch is False, p.thumbnail_correlation
    assert p.thumbnail_turned == (90 if turn == Image.Transpose.ROTATE_270 else 180)
    assert "thumbnail" not in _codes(p) and "thumbnail_turned" in _codes(p)
    assert not any("thumbnail" in s.code and s.severity == "warning" for s in p.signs), p.signs
    (sign,) = [s for s in p.signs if s.code == "thumbnail_turned"]
    assert f"before it was turned {p.thumbnail_turned}° clockwise" in sign.observation
    assert "edited" not in sign.meaning
    donor = Image.open(REAL_PHOTO.with_name("IMG-20191006-WA0002.jpg")).convert("RGB")
    spliced = camera.convert("RGB")
    spliced.paste(donor.crop((0, 0, 560, 420)), (600, 420))  # a real photo's region, 19 % of the picture
    q = read_provenance(resaved(spliced))
    assert q.thumbnail_mismatch and not q.thumbnail_turned and "thumbnail" in _codes(q)


@pytest.mark.parametrize("dark", [0.15, 0.3, 0.45])
def test_a_dark_part_of_the_picture_is_not_taken_for_a_letterbox_bar(dark) -> None:
    """A photo whose top is night sky (grey levels under 16), with a thumbnail that is an exact
    downscale of it: the dark rows were trimmed as letterbox bars, and the report warned that
    the image was cropped or edited without updating its thumbnail."""
    main = _pattern(640, 480).astype(np.float32)
    main[: int(480 * dark)] *= 0.06
    main = main.clip(0, 255).astype(np.uint8)
    thumb = Image.fromarray(main)
    thumb.thumbnail((160, 120))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=90)
    p = read_provenance(_save(main, quality=95, exif=_exif_with_thumbnail(buf.getvalue())))
    assert p.thumbnail_size == (160, 120) and not p.thumbnail_aspect_mismatch
    assert not p.thumbnail_mismatch and "thumbnail" not in _codes(p), p.thumbnail_correlation


@pytest.mark.parametrize("size", [(640, 360), (480, 320)])  # 16:9 and 3:2 in a 160×120 thumbnail
@pytest.mark.parametrize("dark", [0.15, 0.5, 1.0])
def test_a_dark_edge_of_the_picture_next_to_a_letterbox_bar_is_no_mismatch(size, dark) -> None:
    """A night photo (its top, or all of it, under 16 grey levels) with the camera's letterboxed
    160×120 thumbnail: the dark rows of the picture ran on from the black bar, the trim took
    them too (or gave up), and the report warned 'EXIF thumbnail does not match the image
    (aspect ratio)' on an untouched photo. The bars are looked for where the aspects put them."""
    w, h = size
    main = _pattern(w, h).astype(np.float32)
    main[: int(h * dark)] *= 0.06
    main = main.clip(0, 255).astype(np.uint8)
    p = read_provenance(_save(main, quality=95, exif=_exif_with_thumbnail(_letterboxed_thumb(main))))
    assert p.thumbnail_size == (160, 120) and p.thumbnail_aspect_mismatch is False
    assert p.thumbnail_mismatch is False and "thumbnail" not in _codes(p), p.thumbnail_correlation
    if dark == 1.0:
        return  # all of it dark: too little contrast to tell pictures apart
    # another picture in the same letterbox is still told apart
    # (not the picture turned 180°: that is the same picture turned, said as such)
    another = _pattern(w, h, seed=3).astype(np.float32)
    another[: int(h * dark)] *= 0.06
    another = another.clip(0, 255).astype(np.uint8)
    other = read_provenance(_save(main, quality=95, exif=_exif_with_thumbnail(_letterboxed_thumb(another))))
    assert other.thumbnail_mismatch and not other.thumbnail_aspect_mismatch and "thumbnail" in _codes(other)


def test_mismatching_exif_thumbnail_content_and_aspect() -> None:
    main = _pattern(480, 320)
    edited = main.copy()[::-1, ::-1]  # same aspect, different content
    exif = _exif_with_thumbnail(_letterboxed_thumb(edited))
    p = read_provenance(_save(main, quality=95, exif=exif))
    assert p.thumbnail_present and p.thumbnail_mismatch and not p.thumbnail_aspect_mismatch
    assert p.thumbnail_correlation < 0.5
    assert any(
        s.observation.startswith("EXIF thumbnail does not match the image") and s.severity == "warning" for s in p.signs
    )
    uncropped = _pattern(480, 480)  # the thumbnail was made before a crop to 3:2
    thumb = Image.fromarray(uncropped).resize((120, 120))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG")
    q = read_provenance(_save(main, quality=95, exif=_exif_with_thumbnail(buf.getvalue())))
    assert q.thumbnail_mismatch and q.thumbnail_aspect_mismatch


def test_exif_dimensions_disagree_with_image() -> None:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Sony"
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.ExifImageWidth] = 6000
    sub[ExifTags.Base.ExifImageHeight] = 4000
    p = read_provenance(_save(_pattern(300, 200), quality=92, exif=ex.tobytes()))
    assert p.exif_size == (6000, 4000) and "exif_size" in _codes(p)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\x00\x00" + b"\x13\x37garbage" * 8,  # no TIFF header
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 10,  # 65535 IFD entries
        b"Exif\x00\x00MM\x00*\x00\x00\xff\xf0",  # IFD offset past the end
    ],
)
def test_malformed_exif_is_recorded_not_raised(payload: bytes) -> None:
    p = read_provenance(_save(_pattern(64, 48), quality=90, exif=payload))
    assert p.format == "JPEG" and p.size == (64, 48)
    assert p.problems and all(isinstance(x, str) for x in p.problems)
    assert p.make is None and not p.gps_present
    assert p.jpeg_quality is not None and p.jpeg_quality.quality == 90
    json.dumps(p.to_dict())
    p._repr_html_()


def test_thumbnail_pointing_outside_exif_is_a_problem() -> None:
    exif = bytearray(_exif_with_thumbnail(b"\xff\xd8" + b"\x00" * 20))
    exif[-22:] = b"\x00" * 22  # data no longer a JPEG
    p = read_provenance(_save(_pattern(64, 48), quality=90, exif=bytes(exif)))
    assert p.thumbnail_present and p.thumbnail_mismatch is None
    assert any("thumbnail" in x for x in p.problems)


def test_truncated_jpeg_is_a_problem_not_an_error() -> None:
    data = _save(_pattern(256, 256), quality=90)
    p = read_provenance(data[: len(data) // 2])
    assert p.format == "JPEG" and p.jpeg_quality is not None
    assert any("decoded" in x for x in p.problems)


def test_not_an_image_raises_one_line_naming_the_file(tmp_path) -> None:
    txt = tmp_path / "report.txt"
    txt.write_text("this is not an image\n" * 10)
    with pytest.raises(ValueError, match="report.txt") as ei:
        read_provenance(txt)
    assert "\n" not in str(ei.value)
    with pytest.raises(ValueError, match="nope.jpg"):
        read_provenance(tmp_path / "nope.jpg")


def test_hostile_strings_are_escaped_in_html() -> None:
    evil = '<script>alert("x")</script>'
    ex = _camera_exif(software=evil)
    ex[ExifTags.Base.Make] = "<img src=x onerror=alert(1)>"
    p = read_provenance(_save(_pattern(64, 48), quality=90, exif=ex.tobytes()))
    assert p.software == evil
    h = p._repr_html_()
    assert "<script" not in h and "<img" not in h
    assert "&lt;script&gt;" in h and "&lt;img src=x" in h


# --------------------------------------------------------------------------- views and sources


def test_views_are_well_formed() -> None:
    p = read_provenance(_save(_pattern(64, 48), quality=90, exif=_camera_exif().tobytes()))
    rows = p.rows()
    assert rows and all(len(r) == 3 and all(isinstance(x, str) for x in r) for r in rows)
    sections = {r[0] for r in rows}
    assert {"File", "EXIF", "JPEG", "Signs"} <= sections
    assert all(isinstance(s, Sign) and s.severity in {"info", "notice", "warning"} for s in p.signs)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["size"] == [64, 48] and d["signs"][0]["meaning"]


def test_pil_image_and_file_object_sources(tmp_path) -> None:
    data = _save(_pattern(64, 48), quality=88, exif=_camera_exif().tobytes())
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    with Image.open(path) as im:
        p = read_provenance(im)
    assert p.sha256 == hashlib.sha256(data).hexdigest() and p.make == "Canon"
    with open(path, "rb") as f:
        assert read_provenance(f).jpeg_quality.quality == 88
    mem = read_provenance(Image.new("RGB", (32, 32), "white"))
    assert mem.format is None and mem.sha256 is None and mem.problems


# --------------------------------------------------------------------------- hand-built EXIF, JPEG edits


def _ifd(entries: list[tuple[int, int, int, bytes]], start: int) -> bytes:
    """One little-endian IFD at offset ``start``: (tag, type, count, value bytes) entries."""
    head, data = struct.pack("<H", len(entries)), b""
    data_off = start + 2 + 12 * len(entries) + 4
    for tag, typ, count, val in sorted(entries):
        if len(val) <= 4:
            head += struct.pack("<HHI", tag, typ, count) + val.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, typ, count, data_off + len(data))
            data += val + b"\x00" * (len(val) % 2)
    return head + struct.pack("<I", 0) + data


def _exif_block(ifd0: list, sub: list = (), gps: list = ()) -> bytes:
    """'Exif' APP1 payload: IFD0, with the Exif and GPS directories linked from it when given."""
    links = [(tag, e) for tag, e in ((0x8769, sub), (0x8825, gps)) if e]
    off = 8 + len(_ifd(list(ifd0) + [(t, 4, 1, b"\x00" * 4) for t, _ in links], 8))
    ptrs, tail = [], b""
    for tag, entries in links:
        ptrs.append((tag, 4, 1, struct.pack("<I", off + len(tail))))
        tail += _ifd(list(entries), off + len(tail))
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + _ifd(list(ifd0) + ptrs, 8) + tail


def _ascii(s: str, encoding: str = "utf-8") -> tuple[int, bytes]:
    b = s.encode(encoding) + b"\x00"
    return len(b), b


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _set_sof(data: bytes, **patch: int) -> bytes:
    """Baseline JPEG ``data`` with SOF0 fields patched: ``w``/``h``, or ``tq`` = (Y, Cb, Cr) tables."""
    out = bytearray(data)
    i = out.find(b"\xff\xc0")
    if "w" in patch:
        out[i + 5 : i + 9] = struct.pack(">HH", patch["h"], patch["w"])
    for k, tq in enumerate(patch.get("tq", ())):
        out[i + 12 + 3 * k] = tq
    return bytes(out)


def _dqt(tq: int, table: np.ndarray) -> bytes:
    zz = np.asarray(table).reshape(64)[jpeg.ZIGZAG]
    return b"\xff\xdb\x00\x43" + bytes([tq]) + bytes(zz.tolist())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_infinite_exif_numbers_are_problems_not_crashes(tmp_path, fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    exif = _exif_block(
        [(0x0112, 11, 1, struct.pack("<f", float("inf")))],  # Orientation as FLOAT
        sub=[(0xA002, 12, 1, struct.pack("<d", float("-inf"))), (0xA003, 3, 1, struct.pack("<H", 48))],
    )
    path = _write(tmp_path, f"inf.{fmt.lower()}", _save(_pattern(64, 48), fmt, exif=exif))
    p = read_provenance(path)
    assert p.format == fmt and p.exif_present
    assert p.orientation is None and p.exif_size is None
    assert any("orientation is not a whole number: 'inf'" in x for x in p.problems)
    assert any("pixel dimensions are not whole numbers" in x for x in p.problems)
    json.dumps(p.to_dict())


@pytest.mark.parametrize("claimed", [(400, 300), (2000, 2000), (65000, 65000)])  # beyond thumbnail size
def test_oversized_thumbnail_is_refused_before_decoding(tmp_path, claimed: tuple[int, int]) -> None:
    main = _pattern(96, 64)
    thumb = _set_sof(_save(main[::4, ::4].copy(), quality=80), w=claimed[0], h=claimed[1])
    path = _write(tmp_path, "thumb.jpg", _save(main, quality=90, exif=_exif_with_thumbnail(thumb)))
    p = read_provenance(path)
    assert p.thumbnail_present and p.thumbnail_size is None and p.thumbnail_mismatch is None
    assert any(x.startswith("EXIF thumbnail") and "decod" in x for x in p.problems)
    assert p.jpeg_quality is not None and p.jpeg_quality.quality == 90


def test_tiff_with_next_ifd_out_of_range(tmp_path) -> None:
    data = bytearray(_save(_pattern(64, 48), "TIFF"))
    (ifd0,) = struct.unpack("<I", data[4:8])
    (n,) = struct.unpack("<H", data[ifd0 : ifd0 + 2])
    data[ifd0 + 2 + 12 * n : ifd0 + 6 + 12 * n] = struct.pack("<I", 0x7FFFFFF0)
    p = read_provenance(_write(tmp_path, "next.tif", bytes(data)))
    assert p.format == "TIFF" and p.frames == 1 and p.size == (64, 48)
    assert any("frame count unreadable" in x for x in p.problems)


def test_utf8_exif_text_and_gps_version(tmp_path) -> None:
    exif = _exif_block(
        [
            (0x010F, 2, *_ascii("Café Ñikon")),
            (0x0131, 2, *_ascii("Редактор 1.0")),
            (0x8298, 2, *_ascii("© José", "latin-1")),  # real latin-1 text stays as it is
        ],
        gps=[(0x0000, 1, 4, bytes([2, 2, 0, 0]))],
    )
    p = read_provenance(_write(tmp_path, "utf8.jpg", _save(_pattern(64, 48), quality=90, exif=exif)))
    assert (p.make, p.software) == ("Café Ñikon", "Редактор 1.0")
    assert p.exif["Make"] == "Café Ñikon" and p.exif["Copyright"] == "© José"
    assert p.gps["GPSVersionID"] == "2.2.0.0"
    assert ("GPS", "GPSVersionID", "2.2.0.0") in p.rows(show_gps=True)


def test_gps_block_without_a_position_is_not_a_location(tmp_path) -> None:
    gps = [
        (0x0001, 2, 2, b"N\x00"),
        (0x0002, 5, 3, struct.pack("<6I", 45, 0, 27, 0, 51, 0)),  # zero denominators
        (0x0003, 2, 2, b"E\x00"),
        (0x0004, 5, 3, struct.pack("<6I", 9, 1, 11, 1, 13, 0)),
    ]
    exif = _exif_block([(0x010F, 2, *_ascii("Canon"))], gps=gps)
    p = read_provenance(_write(tmp_path, "gps.jpg", _save(_pattern(64, 48), quality=90, exif=exif)))
    assert p.gps_present and "gps" not in _codes(p)
    assert any("GPS block without a usable position" in x for x in p.problems)
    assert ("EXIF", "GPS", "present, no usable position") in p.rows()


def test_cr_table_counts_in_the_report(tmp_path) -> None:
    base = _save(_pattern(96, 64), quality=85)
    i = base.find(b"\xff\xc0")
    data = _set_sof(base[:i] + _dqt(2, jpeg.ijg_table(20, chroma=True)) + base[i:], tq=(0, 1, 2))
    p = read_provenance(_write(tmp_path, "cr.jpg", data))
    q = p.jpeg_quality
    assert q is not None and not q.exact and (q.luma_quality, q.chroma_quality) == (85, 20)
    assert ("JPEG", "standard libjpeg tables", "yes (not all at one quality)") in p.rows()  # as the signs say
    assert any("JPEG quality 85 (chroma tables at quality 20)" in s.observation for s in p.signs)


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: _set_sof(d, tq=(3, 1, 1)), "component 1 uses quantisation table 3"),
        (lambda d: d.replace(b"\xff\xdb\x00\x43\x00", b"\xff\xdb\x00\x43\x05", 1), "invalid table id 5"),
    ],
    ids=["undefined-table", "table-id-5"],
)
def test_missing_luma_table_is_a_problem_not_a_guess(tmp_path, edit, reason: str) -> None:
    p = read_provenance(_write(tmp_path, "bad.jpg", edit(_save(_pattern(96, 64), quality=75))))
    assert p.format == "JPEG" and p.jpeg_quality is None
    assert any(x.startswith("JPEG header could not be parsed") and reason in x for x in p.problems)
    assert not {"recompressed", "libjpeg", "custom_tables"} & _codes(p)


def test_multi_picture_jpeg_is_read_as_jpeg(tmp_path) -> None:
    frames = [Image.fromarray(_pattern(96, 64)), Image.fromarray(_pattern(96, 64, seed=1))]
    path = tmp_path / "phone.jpg"
    frames[0].save(path, "MPO", save_all=True, append_images=frames[1:], quality=80)
    p = read_provenance(path)
    assert p.format == "MPO" and p.frames == 2 and p.jpeg_quality.quality == 80
    assert "no_exif" in _codes(p) and "no_metadata" not in _codes(p)


def test_mixed_qualities_headline_is_the_luma_quality(tmp_path) -> None:
    tabs = [jpeg.ijg_table(85).ravel().tolist(), jpeg.ijg_table(60, chroma=True).ravel().tolist()]
    p = read_provenance(_write(tmp_path, "mixed.jpg", _save(_pattern(96, 64), qtables=tabs)))
    (sign,) = [s for s in p.signs if s.code == "recompressed"]
    assert sign.observation == "JPEG quality 85 (chroma tables at quality 60) suggests recompression"


def test_an_infinite_thumbnail_offset_is_a_problem_not_a_crash(tmp_path):
    """A DOUBLE inf JPEGInterchangeFormat raised OverflowError out of the report."""
    import struct

    p = struct.pack
    tiff = (
        b"II*\0"
        + p("<I", 8)
        + p("<HI", 0, 14)  # IFD0: no tags, next -> IFD1
        + p("<H", 2)
        + p("<HHII", 0x0201, 12, 1, 44)
        + p("<HHII", 0x0202, 4, 1, 10)
        + p("<I", 0)
        + p("<d", float("inf"))
    )
    Image.new("RGB", (32, 32)).save(tmp_path / "inf.jpg", exif=b"Exif\0\0" + tiff)
    prov = read_provenance(tmp_path / "inf.jpg")
    assert "EXIF thumbnail offset/length are malformed" in prov.problems


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_ztxt_bomb_after_the_pixels_is_a_problem_not_a_crash(tmp_path) -> None:
    """A zTXt chunk after IDAT inflating past Pillow's MAX_TEXT_CHUNK raised a bare
    AssertionError from ``PngImageFile.text`` out of read_provenance (and the report)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GIMP 2.10")  # before IDAT: still shown
    png = _save(_pattern(8, 8), "PNG", pnginfo=info)
    bomb = zlib.compress(b"A" * (2 * PngImagePlugin.MAX_TEXT_CHUNK))
    iend = png.rindex(b"IEND") - 4
    data = png[:iend] + _png_chunk(b"zTXt", b"Comment\x00\x00" + bomb) + png[iend:]
    p = read_provenance(_write(tmp_path, "bomb.png", data))
    (problem,) = [x for x in p.problems if x.startswith("PNG text chunks unreadable")]
    assert "MAX_TEXT_CHUNK" in problem and "\n" not in problem
    assert p.png_text == {"Software": "GIMP 2.10"} and not any("EXIF" in x for x in p.problems)
    assert ("Problems", "problem", problem) in p.rows()


def test_a_text_bomb_before_the_pixels_is_a_warning_sign_not_an_unreadable_file(tmp_path) -> None:
    """Before IDAT, Pillow refuses to open the file at all: provenance (and the report) said the
    image was unreadable; now its pixels are read, the chunk is not, and the signs say why."""
    png = _save(_pattern(8, 8), "PNG")
    bomb = zlib.compress(b"A" * (2 * PngImagePlugin.MAX_TEXT_CHUNK))
    idat = png.index(b"IDAT") - 4
    data = png[:idat] + _png_chunk(b"zTXt", b"Comment\x00\x00" + bomb) + png[idat:]
    p = read_provenance(_write(tmp_path, "bomb.png", data))
    assert p.png_text_bomb and p.size == (8, 8) and p.sha256 == hashlib.sha256(data).hexdigest()
    assert not any("could not be fully decoded" in x for x in p.problems), p.problems
    codes = {s.code: s.severity for s in p.signs}
    assert codes.get("metadata_bomb") == "warning" and "no_metadata" not in codes


def test_table_and_signs_give_the_same_quality_for_mixed_luma_and_chroma(tmp_path) -> None:
    """cjpeg -quality 90,60: the table said quality 60, not standard, while the signs said
    standard libjpeg tables at quality 90 (chroma 60)."""
    tabs = [jpeg.ijg_table(90).ravel().tolist(), jpeg.ijg_table(60, chroma=True).ravel().tolist()]
    p = read_provenance(_write(tmp_path, "q90-60.jpg", _save(_pattern(32, 32), qtables=tabs)))
    words = "90 (chroma tables at quality 60)"
    (sign,) = [s for s in p.signs if s.code == "libjpeg"]
    assert sign.observation == f"standard libjpeg tables at quality {words}"
    jpeg_rows = {f: v for sec, f, v in p.rows() if sec == "JPEG"}
    assert jpeg_rows["estimated quality"] == words
    assert jpeg_rows["standard libjpeg tables"] == "yes (not all at one quality)"
    assert "mean table error" not in jpeg_rows  # an error to one quality means nothing for two
    plain = read_provenance(_save(_pattern(32, 32), quality=75))  # one quality: unchanged
    plain_rows = {f: v for sec, f, v in plain.rows() if sec == "JPEG"}
    assert plain_rows["estimated quality"] == "75" and plain_rows["standard libjpeg tables"] == "yes"


def test_tiff_size_is_the_stored_size_whatever_the_orientation(tmp_path) -> None:
    """Pillow gives a TIFF with EXIF orientation 5-8 its turned size: the table said 37×61 for a
    61×37 file (the same picture as JPEG said 61×37)."""
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8))
    for ext in ("jpg", "tif"):
        ex = im.getexif()
        ex[0x0112] = 6
        im.save(tmp_path / f"o.{ext}", exif=ex)
        p = read_provenance(tmp_path / f"o.{ext}")
        assert (
            p.size == (61, 37)
            and ("File", "size (w×h), as stored (viewers turn it)", "61×37") in p.rows()
            and p.orientation == 6
        )


def test_a_truncated_16_bit_planar_tiff_is_a_problem(tmp_path) -> None:
    """Pillow reads only half of each uncompressed 16-bit plane: a file missing its last bytes
    was reported as decoded whole."""
    tifffile = pytest.importorskip("tifffile")
    a = np.random.default_rng(0).integers(0, 65536, (3, 40, 48)).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, a, photometric="rgb", planarconfig="separate")
    whole = read_provenance(buf.getvalue())
    assert whole.size == (48, 40) and not whole.problems
    cut = read_provenance(buf.getvalue()[:-500])
    assert any("could not be fully decoded" in x and "truncated" in x for x in cut.problems), cut.problems


# --------------------------------------------------------------------------- review fixes


def test_stray_bytes_in_the_jpeg_header_are_a_problem_and_the_rest_is_read(tmp_path) -> None:
    """Two bytes before the SOF2 of a progressive JPEG: the report said not progressive, no
    subsampling, and recorded nothing."""
    good = _save(_pattern(96, 64), quality=85, progressive=True)
    i = good.index(b"\xff\xc2")
    p = read_provenance(_write(tmp_path, "junk.jpg", good[:i] + b"\x00\x00" + good[i:]))
    assert p.progressive is True and p.chroma_subsampling == "4:2:0" and p.jpeg_quality.quality == 85
    (problem,) = [x for x in p.problems if "extraneous" in x]
    assert problem.startswith("JPEG header: 2 extraneous bytes before marker 0xC2") and "hand-edited" in problem


def test_zero_quantisers_are_a_problem_not_a_camera(tmp_path) -> None:
    base = _save(_pattern(96, 64), quality=90)
    data = base.replace(base[base.index(b"\xff\xdb") :][:69], _dqt(0, np.zeros((8, 8), int)), 1)
    p = read_provenance(_write(tmp_path, "zeros.jpg", data))
    assert p.jpeg_quality is None
    assert any("zero quantisers" in x and "no quality estimate" in x for x in p.problems)
    assert not {"recompressed", "libjpeg", "custom_tables"} & _codes(p)


def _xmp(tool: str = "Adobe Photoshop 25.0", history: str = "") -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="{tool}">{history}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


def test_icc_xmp_and_comments_count_as_metadata(tmp_path) -> None:
    """'no metadata in this PNG/WEBP/GIF file' was said of files with an ICC profile, XMP or a
    comment."""
    arr = _pattern(64, 48)
    icc = read_provenance(_save(arr, "PNG", icc_profile=b"\x00" * 200))
    assert icc.icc_profile_present and "no_metadata" not in _codes(icc)
    gif = read_provenance(_save(arr, "GIF", comment=b"Edited in Adobe Photoshop"))
    assert gif.comment == "Edited in Adobe Photoshop" and "no_metadata" not in _codes(gif)
    assert ("Comment", "comment", "Edited in Adobe Photoshop") in gif.rows()
    assert "no_metadata" in _codes(read_provenance(_save(arr, "GIF")))  # the plain file still is
    assert "no_metadata" in _codes(read_provenance(_save(arr, "PNG")))
    if features.check("webp"):
        webp = read_provenance(_save(arr, "WEBP", xmp=_xmp()))
        assert webp.xmp_present and "no_metadata" not in _codes(webp)
        assert ("XMP", "present", "yes") in webp.rows()


def test_software_named_only_in_xmp_is_an_editing_sign(tmp_path) -> None:
    """XMP was never read: an editor named only there (JPEG APP1, PNG iTXt, WebP) gave no sign."""
    arr = _pattern(64, 48)
    history = (
        '<xmpMM:History xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"><rdf:Seq>'
        '<rdf:li stEvt:action="saved" stEvt:softwareAgent="Adobe Photoshop Lightroom Classic 12.0 (Windows)"/>'
        "</rdf:Seq></xmpMM:History>"
    )
    jpg = read_provenance(_save(arr, quality=90, xmp=_xmp("Canon EOS 5D firmware 1.1", history)))
    assert jpg.xmp_present and jpg.xmp_software == [
        "Canon EOS 5D firmware 1.1",
        "Adobe Photoshop Lightroom Classic 12.0 (Windows)",
    ]
    (sign,) = [s for s in jpg.signs if s.code == "software"]
    assert sign.severity == "warning" and "Lightroom" in sign.observation and "XMP" in sign.observation
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta><xmp:CreatorTool>GIMP 2.10</xmp:CreatorTool></x:xmpmeta>")
    png = read_provenance(_save(arr, "PNG", pnginfo=info))
    assert png.xmp_software == ["GIMP 2.10"] and "edited with software 'GIMP 2.10'" in str(png.signs)
    plain = read_provenance(_save(arr, quality=90))
    assert not plain.xmp_present and ("XMP", "present", "no") in plain.rows() and "software" not in _codes(plain)
    if features.check("webp"):
        webp = read_provenance(_save(arr, "WEBP", xmp=_xmp()))
        assert any(s.code == "software" and "Adobe Photoshop 25.0" in s.observation for s in webp.signs)


def test_hostile_xmp_is_scanned_not_parsed(tmp_path) -> None:
    """Entities and DTDs are never resolved; a huge packet is read only up to a bound."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    evil = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<x:xmpmeta><rdf:Description xmp:CreatorTool="&e;&b; &lt;Tool&gt; &#65;"/></x:xmpmeta>'
    ).encode()
    p = read_provenance(_save(_pattern(64, 48), quality=90, xmp=evil))
    # the undeclared entities are no name the file gives (it was "written by software '&e;&b; ...'")
    assert p.xmp_software == [] and any("declares a DTD" in x for x in p.problems)
    shown = str(p.to_dict()) + p._repr_html_()
    assert "TOP-SECRET" not in shown and "aaaaaaaaaa" not in shown and "<Tool>" not in p._repr_html_()
    from trufor_lab.forensics import metadata

    late = b"<x>" + b" " * metadata.MAX_XMP_BYTES + b'xmp:CreatorTool="Adobe Photoshop"</x>'
    assert metadata.xmp_software(late) == []


def test_a_png_text_chunk_pillow_drops_is_a_problem(tmp_path) -> None:
    png = _save(_pattern(16, 16), "PNG")
    idat = png.index(b"IDAT") - 4
    data = png[:idat] + _png_chunk(b"iTXt", b"Software\x00\x00\x00\x00\x00GIMP \xff\xfe") + png[idat:]
    p = read_provenance(_write(tmp_path, "badutf8.png", data))
    assert p.png_text == {} and any("PNG text chunk 'Software' could not be decoded" in x for x in p.problems)


def test_tiff_structure_is_not_exif(tmp_path) -> None:
    """A plain TIFF's ImageWidth, StripOffsets, Compression... were counted as EXIF."""
    plain = read_provenance(_write(tmp_path, "plain.tif", _save(_pattern(64, 48), "TIFF")))
    assert not plain.exif_present and ("EXIF", "present", "no") in plain.rows()
    assert "no_metadata" in _codes(plain)
    tagged = read_provenance(_write(tmp_path, "cam.tif", _save(_pattern(64, 48), "TIFF", tiffinfo={271: "Nikon"})))
    assert tagged.exif_present and tagged.make == "Nikon" and "no_metadata" not in _codes(tagged)


def _jpeg_with_thumbnail(main: np.ndarray, thumb_of: np.ndarray, quality: int = 95) -> bytes:
    t = Image.fromarray(thumb_of)
    t.thumbnail((160, 120))
    buf = io.BytesIO()
    t.save(buf, "JPEG", quality=90)
    return _save(main, quality=quality, exif=_exif_with_thumbnail(buf.getvalue()))


@pytest.mark.parametrize("sigma", [1, 3, 8])
def test_thumbnail_of_a_near_flat_scene_is_not_a_mismatch(sigma: int) -> None:
    """Grey + noise: the thumbnail of the same pixels correlated 0.12-0.50 with the image (noise
    against noise), which was reported as a content mismatch."""
    rng = np.random.default_rng(sigma)
    arr = np.clip(128 + rng.normal(0, sigma, (1200, 1600, 1)), 0, 255).repeat(3, 2).astype(np.uint8)
    p = read_provenance(_jpeg_with_thumbnail(arr, arr))
    assert p.thumbnail_present and p.thumbnail_size == (160, 120)
    assert p.thumbnail_mismatch is False and "thumbnail" not in _codes(p), p.thumbnail_correlation
    assert p.thumbnail_difference is not None and p.thumbnail_difference < 2


@pytest.mark.parametrize("side", [100, 240])
def test_the_thumbnail_of_a_small_sharp_picture_matches_it(side: int) -> None:
    """A small JPEG is decoded at 1/8 scale for the comparison (13 px for 100 px): it was
    upsampled to the thumbnail's 64 px grid, and the sharp edges of text, blurred on one side
    only, were counted as changes (Pillow's test JPEGs from Photoshop: 6 of 31 called
    mismatched, none by the earlier rule)."""
    img = np.full((side, side, 3), 30, np.uint8)
    img[: side // 8, : side // 8] = (230, 30, 30)
    for k in range(5):  # letter-like strokes
        x0 = side // 6 + k * side // 7
        img[side // 3 : 2 * side // 3, x0 : x0 + max(2, side // 30)] = (230, 40, 40)
        img[side // 3 : side // 3 + max(2, side // 30), x0 : x0 + side // 12] = (230, 40, 40)
    p = read_provenance(_jpeg_with_thumbnail(img, img))
    assert p.thumbnail_present and p.thumbnail_mismatch is False, (p.thumbnail_correlation, p.thumbnail_difference)
    assert "thumbnail" not in _codes(p)


def _with_block(a: np.ndarray, value: int | None = None) -> np.ndarray:
    """``a`` with 1/16 of the picture changed: inverted, or set to ``value``."""
    out = a.copy()
    h, w = a.shape[:2]
    box = (slice(h // 2, h // 2 + h // 4), slice(w // 8, w // 8 + w // 4))
    out[box] = 255 - out[box] if value is None else value
    return out


def _noisy_grey(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + rng.normal(0, 3, (480, 640, 1)), 0, 255).repeat(3, 2).astype(np.uint8)


@pytest.mark.parametrize(
    "main, thumb",
    [
        (_noisy_grey(), np.clip(_noisy_grey(1).astype(int) - 70, 0, 255).astype(np.uint8)),
        (_noisy_grey(), _with_block(_noisy_grey(), value=30)),  # an object removed from a flat wall
        (_pattern(640, 480), _pattern(640, 480, seed=3)),
        (_pattern(640, 480), np.asarray(Image.fromarray(_pattern(640, 480)[60:-60, 80:-80]).resize((640, 480)))),
        (_pattern(640, 480), _with_block(_pattern(640, 480))),
    ],
    ids=["flat-other-scene", "flat-object-removed", "other-scene", "cropped", "edited-region"],
)
def test_thumbnail_of_another_picture_is_still_a_mismatch(main: np.ndarray, thumb: np.ndarray) -> None:
    """The flat-scene tolerance must not hide a thumbnail of another picture, of the picture
    before a crop, or before an edit big enough to see at thumbnail size (one of the picture
    before a rotation is said as such: test_an_app_that_turned_the_pixels_...)."""
    p = read_provenance(_jpeg_with_thumbnail(main, thumb))
    assert p.thumbnail_mismatch is True and p.thumbnail_aspect_mismatch is False
    assert "EXIF thumbnail does not match the image (content)" in str(p.signs)
    same = read_provenance(_jpeg_with_thumbnail(main, main))
    assert same.thumbnail_mismatch is False and "thumbnail" not in _codes(same)


@pytest.mark.parametrize("size", [(640, 480), (1280, 960), (1600, 1200), (2048, 1536), (1536, 2048)])
def test_camera_sizes_are_not_called_resized(size: tuple[int, int]) -> None:
    """640×480 ... 2048×1536 (4:3 camera settings) were called 'not those of a camera', even
    with Make=Canon."""
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Canon"
    p = read_provenance(_save(_pattern(*size), quality=92, exif=ex.tobytes()))
    assert p.make == "Canon" and "social_size" not in _codes(p)
    assert not any("not those of a camera" in s.observation for s in p.signs)


def test_a_resize_side_that_is_a_height_is_not_called_a_width() -> None:
    p = read_provenance(_save(_pattern(900, 1200), quality=85))
    (sign,) = [s for s in p.signs if s.code == "social_size"]
    assert "height 1200 is a common resize side" in sign.observation and "width" not in sign.observation


@pytest.mark.parametrize(
    "entry, shown",
    [
        ((0x0112, 2, *_ascii("6")), "'6'"),  # Orientation as ASCII text
        ((0x0112, 5, 1, struct.pack("<II", 6, 1)), "'6.0'"),  # as a RATIONAL 6/1
    ],
    ids=["ascii", "rational"],
)
def test_a_malformed_orientation_is_ignored_as_the_image_loader_ignores_it(tmp_path, entry, shown: str) -> None:
    """Provenance said orientation 6 while load_image(exif_transpose=True) ignored the same tag
    as 'not a number': one report said both."""
    from trufor_lab.common.image_files import orientation_tag

    path = _write(tmp_path, "o.jpg", _save(_pattern(96, 64), quality=90, exif=_exif_block([entry])))
    p = read_provenance(path)
    with Image.open(path) as im:
        assert orientation_tag(im)[1] is None  # what load_image goes by
    assert p.orientation is None and ("EXIF", "orientation", "—") in p.rows()
    assert any(x.startswith("EXIF orientation") and shown in x and "ignored" in x for x in p.problems), p.problems
    good = read_provenance(_save(_pattern(96, 64), quality=90, exif=_exif_block([(0x0112, 3, 1, b"\x06\x00")])))
    assert good.orientation == 6 and not good.problems


@pytest.mark.parametrize(
    "sub, why",
    [
        ([(0xA002, 2, *_ascii("4000")), (0xA003, 2, *_ascii("3000"))], "not whole numbers"),
        ([(0xA002, 3, 1, b"\x00\x00"), (0xA003, 3, 1, b"\x00\x00")], "0×0 are malformed"),
    ],
    ids=["ascii", "zero"],
)
def test_malformed_exif_dimensions_are_a_problem_not_a_resize(tmp_path, sub: list, why: str) -> None:
    """'EXIF says 0×0 but the image is 96×64 ... resized or cropped' for a 0×0 or text size."""
    exif = _exif_block([(0x010F, 2, *_ascii("Canon"))], sub=sub)
    p = read_provenance(_write(tmp_path, "dims.jpg", _save(_pattern(96, 64), quality=90, exif=exif)))
    assert p.exif_size is None and "exif_size" not in _codes(p)
    assert any(x.startswith("EXIF pixel dimensions") and why in x for x in p.problems), p.problems


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_an_oversized_text_chunk_after_the_pixels_is_the_metadata_bomb_sign(tmp_path, kind: bytes) -> None:
    """After IDAT, the chunk made provenance say the pixels could not be fully decoded (they
    decode fine), and the metadata_bomb sign given before IDAT was missing."""
    png = _save(_pattern(8, 8), "PNG")
    bomb = zlib.compress(b"A" * (2 * PngImagePlugin.MAX_TEXT_CHUNK))
    head = b"Comment\x00\x00" if kind == b"zTXt" else b"Comment\x00\x01\x00\x00\x00"
    iend = png.rindex(b"IEND") - 4
    p = read_provenance(_write(tmp_path, "late.png", png[:iend] + _png_chunk(kind, head + bomb) + png[iend:]))
    assert not any("could not be fully decoded" in x for x in p.problems), p.problems
    assert p.png_text_bomb and {s.code: s.severity for s in p.signs}.get("metadata_bomb") == "warning"
    assert "no_metadata" not in _codes(p)


def test_a_pil_image_changed_in_memory_is_noted(tmp_path) -> None:
    """After im.thumbnail(), the size came from memory while the hash, file size and EXIF came
    from the file on disk, without a word."""
    data = _save(_pattern(640, 480), quality=90, exif=_camera_exif().tobytes())
    path = _write(tmp_path, "x.jpg", data)
    with Image.open(path) as im:
        im.thumbnail((200, 200))
        p = read_provenance(im)
    assert p.size == (200, 150) and p.sha256 == hashlib.sha256(data).hexdigest()
    (note,) = [x for x in p.problems if "in memory" in x]
    assert "200×150" in note and "640×480" in note and "describe the file on disk" in note
    with Image.open(path) as im:
        assert not any("in memory" in x for x in read_provenance(im).problems)


def test_a_sign_that_says_it_is_no_evidence_is_not_called_evidence() -> None:
    """'... it says nothing about the content being genuine or not. This is evidence, not proof.'"""
    plain = read_provenance(_save(_pattern(120, 90), "PNG"))
    (sign,) = [s for s in plain.signs if s.code == "no_metadata"]
    assert sign.meaning.endswith("genuine or not.") and "evidence, not proof" not in sign.meaning
    assert all("evidence, not proof" in s.meaning for s in plain.signs if s.code != "no_metadata")


def test_many_png_text_chunks_over_the_total_limit_and_a_damaged_avif_are_one_line() -> None:
    """70 zTXt chunks of 1 MB (each under Pillow's per-chunk limit, 70 MB together) refused the
    whole file before the pixels, or said 'image data could not be fully decoded' after them;
    a damaged AVIF raised Pillow's RuntimeError as a traceback."""
    import struct
    import zlib

    from trufor_lab.inference.preprocess import ImageError, load_image

    def chunk(k, v):
        return struct.pack(">I", len(v)) + k + v + struct.pack(">I", zlib.crc32(k + v))

    png = _save(_pattern(64, 64), "PNG")
    z = zlib.compress(b"B" * 1_000_000, 9)
    text = b"".join(chunk(b"zTXt", b"c%d\0\0" % i + z) for i in range(70))
    i_idat, i_iend = png.index(b"IDAT") - 4, len(png) - 12
    for data in (png[:i_idat] + text + png[i_idat:], png[:i_iend] + text + png[i_iend:]):
        p = read_provenance(data)
        assert "metadata_bomb" in _codes(p), [s.code for s in p.signs]
        assert not any("could not be fully decoded" in x for x in p.problems), p.problems
        assert load_image(data).rgb.shape == (64, 64, 3)
    if features.check("avif"):
        buf = io.BytesIO()
        Image.fromarray(_pattern(64, 64)).save(buf, "AVIF")
        bad = bytearray(buf.getvalue())
        bad[81] ^= 0xFF
        with pytest.raises(ImageError, match=r"^<bytes>: unreadable image \("):
            load_image(bytes(bad))
        try:
            read_provenance(bytes(bad))
        except ValueError as e:  # one line, or read with a problem noted: never a traceback
            assert "\n" not in str(e)


def test_a_16_bit_grey_png_matches_its_own_thumbnail() -> None:
    """convert('L') clipped 16-bit grey: the same picture as 8-bit matched its thumbnail
    (correlation 1.0) and as 16-bit 'did not match (content)' (correlation 0.07)."""
    import struct

    y, x = np.mgrid[0:192, 0:256]
    grey = ((x + y) * 255 // 446).astype(np.uint8)
    t = io.BytesIO()
    Image.fromarray(grey).resize((160, 120)).save(t, "JPEG", quality=90)
    t = t.getvalue()
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHI", 0x10F, 2, 4) + b"Cam\0" + struct.pack("<I", 26)
    ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x201, 4, 1, 56) + struct.pack("<HHII", 0x202, 4, 1, len(t))
    ex = b"II*\0\x08\0\0\0" + ifd0 + ifd1 + b"\0\0\0\0" + t
    for arr in (grey, grey.astype(np.uint16) * 257):
        b = io.BytesIO()
        Image.fromarray(arr).save(b, "PNG", exif=b"Exif\0\0" + ex)
        p = read_provenance(b.getvalue())
        assert p.thumbnail_correlation is not None and p.thumbnail_correlation > 0.99, arr.dtype
        assert "thumbnail" not in _codes(p)


def test_dates_that_contradict_each_other_or_lie_ahead_are_said_so() -> None:
    """Modified 2020, captured 2023 read 'the file was re-saved after capture'; a capture date of
    2099 passed without a word."""

    def jpeg_with(modified: str, original: str) -> bytes:
        ex = Image.Exif()
        ex[0x0132] = modified
        ex.get_ifd(0x8769)[0x9003] = original
        b = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(b, "JPEG", quality=95, exif=ex.tobytes())
        return b.getvalue()

    before = read_provenance(jpeg_with("2020:01:01 00:00:00", "2023:05:01 10:00:00"))
    (sign,) = [s for s in before.signs if s.code == "dates"]
    assert "earlier than the capture date" in sign.observation and "re-saved after" not in sign.meaning
    after = read_provenance(jpeg_with("2023:06:01 00:00:00", "2023:05:01 10:00:00"))
    assert "re-saved after capture" in [s for s in after.signs if s.code == "dates"][0].meaning
    future = read_provenance(jpeg_with("2099:12:31 23:59:59", "2099:12:31 23:59:59"))
    assert sum("is in the future: '2099:12:31 23:59:59'" in x for x in future.problems) == 2
    assert not any("in the future" in x for x in after.problems)


def test_a_text_tag_stored_as_a_number_is_not_shown_as_text() -> None:
    """Software stored as a FLOAT NaN read "written by software 'nan'" while to_dict() said None."""
    import struct

    tiff = b"II*\0\x08\0\0\0" + struct.pack("<HHHI", 1, 0x131, 11, 1) + struct.pack("<f", float("nan")) + b"\0\0\0\0"
    b = io.BytesIO()
    Image.new("RGB", (64, 64)).save(b, "JPEG", exif=b"Exif\0\0" + tiff)
    p = read_provenance(b.getvalue())
    assert p.software is None and "software" not in _codes(p)
    assert "EXIF software is stored as a float, not text; ignored" in p.problems


def test_an_editor_named_only_in_a_second_exif_block_or_xmp_packet_is_seen() -> None:
    """Pillow reads the first EXIF block and the last XMP packet: 'Canon firmware' was reported
    (info) and a second block naming Adobe Photoshop was never mentioned."""
    import struct

    def exif(software: str) -> bytes:
        s = software.encode() + b"\0"
        return b"II*\0\x08\0\0\0" + struct.pack("<HHHII", 1, 0x131, 2, len(s), 26) + b"\0\0\0\0" + s

    def app1(payload: bytes) -> bytes:
        return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload

    j = _save(_pattern(64, 64), "JPEG", quality=95)
    two_exif = (
        j[:2]
        + app1(b"Exif\0\0" + exif("Canon firmware 1.0"))
        + app1(b"Exif\0\0" + exif("Adobe Photoshop 25.0"))
        + j[2:]
    )
    x1 = b'<x:xmpmeta><rdf:Description xmp:CreatorTool="Adobe Photoshop 25.0"/></x:xmpmeta>'
    x2 = b'<x:xmpmeta><rdf:Description dc:format="image/jpeg"/></x:xmpmeta>'
    prefix = b"http://ns.adobe.com/xap/1.0/\0"
    two_xmp = j[:2] + app1(prefix + x1) + app1(prefix + x2) + j[2:]
    for data, what in ((two_exif, "2 EXIF blocks"), (two_xmp, "2 XMP packets")):
        p = read_provenance(data)
        (sign,) = [s for s in p.signs if s.code == "software"]
        assert sign.severity == "warning" and "Adobe Photoshop 25.0" in sign.observation, sign
        assert any(x.startswith(f"{what} in one file") and "Adobe Photoshop" in x for x in p.problems), p.problems
    one = read_provenance(j[:2] + app1(b"Exif\0\0" + exif("Canon firmware 1.0")) + j[2:])
    assert not any("in one file" in x for x in one.problems) and one.other_software == []


_XMP_TURNED = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    b'<?xpacket end="w"?>'
)


def test_an_xmp_orientation_is_not_reported_as_exif(tmp_path):
    """Pillow's getexif fills in XMP's tiff:Orientation when a file has no EXIF: a JPEG with only
    an XMP packet was said to have EXIF (orientation 6) and its 'no EXIF' sign was suppressed."""
    path = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30), (90, 120, 150)).save(path, xmp=_XMP_TURNED)
    p = read_provenance(path)
    assert p.xmp_orientation == 6
    assert not p.exif_present and p.orientation is None
    assert ("EXIF", "present", "no") in p.rows() and ("EXIF", "orientation", "—") in p.rows()
    assert any(r[:2] == ("XMP", "orientation") and r[2].startswith("6 ") for r in p.rows())
    assert any(s.code == "no_exif" for s in p.signs)


def test_an_exif_orientation_beside_an_xmp_one_is_still_exif(tmp_path):
    path = tmp_path / "a.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (40, 30)).save(path, exif=exif, xmp=_XMP_TURNED)
    p = read_provenance(path)
    assert p.orientation == 8 and p.xmp_orientation is None


def test_a_thumbnail_larger_than_a_shrunk_image_is_still_compared(tmp_path):
    """A 160x107 thumbnail in an image shrunk to 100x100 was 'more than a thumbnail; not
    decoded', so the crop it shows (3:2 against a square) went unsaid."""
    full = _pattern(300, 200)
    thumb = Image.fromarray(full)
    thumb.thumbnail((160, 120))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=90)
    square = np.ascontiguousarray(full[:, 50:250])  # cropped square, then shrunk
    small = np.asarray(Image.fromarray(square).resize((100, 100)))
    p = read_provenance(_save(small, quality=95, exif=_exif_with_thumbnail(buf.getvalue())))
    assert p.thumbnail_size == thumb.size and not any("not decoded" in x for x in p.problems)
    assert p.thumbnail_aspect_mismatch and "thumbnail" in _codes(p)


def test_dates_written_by_an_editor_name_it():
    """A GIMP-saved file's modify date before its capture date was 'dates a camera writes
    together disagree', though GIMP, not the camera, wrote the modify date."""
    ex = _camera_exif(software="GIMP 2.10.36")
    ex[ExifTags.Base.DateTime] = "2024:04:30 18:00:00"
    p = read_provenance(_save(_pattern(300, 200), quality=93, exif=ex.tobytes()))
    (sign,) = [s for s in p.signs if s.code == "dates"]
    assert "'GIMP 2.10.36'" in sign.meaning and "a camera writes together" not in sign.meaning


def test_quality_80_from_a_camera_is_not_called_recompression():
    """A camera's quality-80 JPEG (camera EXIF, no editor) was said to 'suggest recompression'."""
    ex = _camera_exif(software="Ver.1.00")
    p = read_provenance(_save(_pattern(300, 200), quality=80, exif=ex.tobytes()))
    (sign,) = [s for s in p.signs if s.code == "recompressed"]
    assert "suggests recompression" not in sign.observation and sign.severity == "info"
    assert "90 or above" in sign.meaning
    edited = read_provenance(_save(_pattern(300, 200), quality=80, exif=_camera_exif().tobytes()))
    (sign,) = [s for s in edited.signs if s.code == "recompressed"]
    assert "suggests recompression" in sign.observation


def test_notebook_views_show_the_file_name_not_its_folders_nor_a_bidi_override(tmp_path) -> None:
    """A notebook showing read_provenance(...) or analyze(...) printed the name raw: a U+202E
    made 'invoice_<RLO>gpj.exe' read as 'invoice_exe.jpg', and the private folder showed."""
    import trufor_lab as tl
    from trufor_lab.inference.load import load_noiseprint

    folder = tmp_path / "private_case_folder"
    folder.mkdir()
    path = folder / "invoice_\u202egpj.exe"
    Image.new("RGB", (64, 64), (90, 120, 150)).save(path, "JPEG")
    p = read_provenance(path)
    views = {
        "provenance": p._repr_html_(),
        "rows": str(p.rows()),
        "result": tl.analyze(load_noiseprint(device="cpu"), path)._repr_html_(),
    }
    for what, shown in views.items():
        assert "\u202e" not in shown and str(folder) not in shown and "invoice_?gpj.exe" in shown, what


def _exif_jpeg(software: str | None = None, dates: dict[int, str] | None = None, gps=None) -> bytes:
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    if software is not None:
        ex[0x0131] = software
    for tag, value in (dates or {}).items():
        (ex if tag == 0x0132 else ex.get_ifd(0x8769))[tag] = value
    if gps is not None:
        g = ex.get_ifd(0x8825)
        g[1], g[2], g[3], g[4] = "N", gps[0], "E", gps[1]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, "JPEG", exif=ex)
    return buf.getvalue()


def _sign(data: bytes, code: str) -> list[str]:
    return [f"{s.severity}: {s.observation}" for s in read_provenance(data).signs if s.code == code]


def test_what_the_metadata_says_is_read_as_it_means() -> None:
    """Dates compared across their EXIF time zones (12:00 +02:00 then 11:00 +00:00 is a re-save
    an hour later, not 'earlier than the capture'); a modify date one second after capture is the
    camera saving its photo; 0° N 0° E (no fix) and 10° 75' 99" are no place; 'preview' inside
    a firmware name and 'DSC-Paintbrush' are no editor; an XMP entity ('&e;') is no software,
    and the DTD declaring it is a problem."""
    zoned = _exif_jpeg(
        dates={0x0132: "2023:05:01 11:00:00", 0x9003: "2023:05:01 12:00:00", 0x9011: "+02:00", 0x9010: "+00:00"}
    )
    (said,) = _sign(zoned, "dates")
    assert said.startswith("notice: modify date differs from capture date (2023:05:01 12:00:00 +02:00 →"), said
    assert ("EXIF", "offset original", "+02:00") in read_provenance(zoned).rows()
    same_second = _exif_jpeg(dates={0x0132: "2023:05:01 12:00:01", 0x9003: "2023:05:01 12:00:00"})
    assert _sign(same_second, "dates") == []
    later = _exif_jpeg(dates={0x0132: "2023:05:01 12:00:05", 0x9003: "2023:05:01 12:00:00"})
    assert _sign(later, "dates")[0].startswith("notice: modify date differs")
    for place in (((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), ((10.0, 75.0, 99.0), (10.0, 0.0, 0.0))):
        p = read_provenance(_exif_jpeg(gps=place))
        assert _sign(_exif_jpeg(gps=place), "gps") == [] and any("no usable position" in r[2] for r in p.rows())
    assert _sign(_exif_jpeg(gps=((45.0, 30.0, 0.0), (9.0, 10.0, 0.0))), "gps")  # a real place still is
    for firmware in ("G998BXXU5CVDD preview build", "DSC-Paintbrush v2"):
        assert _sign(_exif_jpeg(firmware), "software") == [f"info: written by software {firmware!r}"]
    for editor in ("Adobe Photoshop 24.0", "Paint.NET 5.0", "Preview 11.0"):
        assert _sign(_exif_jpeg(editor), "software")[0].startswith("warning: edited with software")
    xmp = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<x:xmpmeta><rdf:Description xmp:CreatorTool="&e;"/></x:xmpmeta>'
    )
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, "JPEG", xmp=xmp)
    p = read_provenance(buf.getvalue())
    assert (
        p.xmp_software == [] and "XMP packet declares a DTD or entities (no real XMP does; not expanded)" in p.problems
    )


def test_a_lab_tiff_is_not_reported_as_damaged():
    """A CIELAB TIFF, which the analysis reads (Pillow converts it to RGB), was reported as
    'image data could not be fully decoded (conversion from LAB to RGB not supported)': Pillow
    has no LAB to grey conversion. A false sign of damage in the report."""
    buf = io.BytesIO()
    Image.fromarray(_pattern(48, 40)).convert("LAB").save(buf, "TIFF")
    p = read_provenance(buf.getvalue())
    assert p.mode == "LAB" and p.problems == [], p.problems


def test_gps_byte_values_are_shown_as_their_numbers() -> None:
    """GPSAltitudeRef is one BYTE (0 above, 1 below sea level): it was read as text, so the GPS
    rows and to_dict(include_gps=True) showed '' for above and '\ufffd' for below sea level."""
    for ref in (0, 1):
        ex = _camera_exif()
        gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSAltitudeRef] = bytes([ref])
        gps[ExifTags.GPS.GPSAltitude] = 12.5
        p = read_provenance(_save(_pattern(64, 48), quality=90, exif=ex.tobytes()))
        assert p.gps["GPSAltitudeRef"] == ref
        assert ("GPS", "GPSAltitudeRef", str(ref)) in p.rows(show_gps=True)
        assert json.loads(json.dumps(p.to_dict(include_gps=True)))["gps"]["GPSAltitudeRef"] == ref
        assert p.gps["GPSLatitudeRef"] == "N"  # text stays text


def test_a_camera_firmware_in_software_is_not_read_as_a_computer_program() -> None:
    """A modify date before the capture date in a file whose Software is the camera's firmware
    ('NIKON D850 Ver.1.10', a Pixel's 'HDR+ 1.0') read 'the modify date is the one 'NIKON D850
    Ver.1.10' wrote when it saved the file: its computer's clock ... differs from the camera's'."""
    for firmware in ("NIKON D850 Ver.1.10", "HDR+ 1.0.541083949zd"):
        ex = _camera_exif(software=firmware)
        ex[ExifTags.Base.DateTime] = "2024:04:30 18:00:00"  # before the capture, 2024:05:01 09:30
        p = read_provenance(_save(_pattern(300, 200), quality=93, exif=ex.tobytes()))
        (sign,) = [s for s in p.signs if s.code == "dates"]
        assert "computer" not in sign.meaning and "firmware" in sign.meaning and repr(firmware) in sign.meaning
        assert "edited with" not in " ".join(s.observation for s in p.signs)


def test_an_editor_named_with_its_version_glued_on_is_an_editor() -> None:
    """'Facetune2' (the app's name) and Corel's 'PaintShop Pro' read 'written by software', not
    'edited with', though Facetune and Corel are in the editor list."""
    for editor in ("Facetune2", "PaintShop Pro 2023", "GIMP2.10"):
        assert _sign(_exif_jpeg(editor), "software")[0].startswith("warning: edited with software"), editor
    for firmware in ("Ver.1.00", "Digital Camera X-T3 Ver3.00", "HDR+ 1.0", "DSC-Paintbrush2 v2"):
        assert _sign(_exif_jpeg(firmware), "software") == [f"info: written by software {firmware!r}"]


def test_a_date_left_blank_as_exif_allows_is_unknown_not_malformed() -> None:
    """EXIF fills an unknown date with blanks (cameras with no clock set write zeros): the report
    listed 'EXIF datetime original is not a valid date' among the problems, as if damaged."""
    for blank in ("    :  :     :  :  ", "0000:00:00 00:00:00"):
        p = read_provenance(_exif_jpeg(dates={0x9003: blank, 0x0132: "2023:05:01 12:00:00"}))
        assert not any("datetime original" in x for x in p.problems), p.problems
        assert p.datetime_original == f"unknown (written as {blank.strip()!r})"
        assert _sign(_exif_jpeg(dates={0x9003: blank, 0x0132: "2023:05:01 12:00:00"}), "dates") == []
    bad = read_provenance(_exif_jpeg(dates={0x9003: "2023:13:45 10:00:00"}))
    assert "EXIF datetime original is not a valid date: '2023:13:45 10:00:00'" in bad.problems


def test_a_gps_block_holding_only_its_version_is_no_problem() -> None:
    """Canon cameras without GPS write a GPS directory holding only GPSVersionID: the report
    listed it under Problems ('GPS block without a usable position') as if damaged. It is a
    neutral fact; a block with coordinates that cannot be read stays a problem."""
    ex = Image.Exif()
    ex[ExifTags.Base.Make], ex[ExifTags.Base.Model] = "Canon", "Canon EOS 5D Mark IV"
    ex.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    p = read_provenance(_save(_pattern(64, 48), quality=95, exif=ex))
    assert p.gps_present and p.gps == {"GPSVersionID": "2.3.0.0"}
    assert p.problems == [] and "gps" not in _codes(p)
    assert ("EXIF", "GPS", "present but empty (only its version number)") in p.rows()
    assert ("GPS", "GPSVersionID", "2.3.0.0") in p.rows(show_gps=True)
    ex.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"  # a position begun, not given
    p = read_provenance(_save(_pattern(64, 48), quality=95, exif=ex))
    assert any("GPS block without a usable position" in x for x in p.problems)
    assert ("EXIF", "GPS", "present, no usable position") in p.rows()


def test_a_time_zone_written_without_its_colon_is_read() -> None:
    """OffsetTime '+0900' (no colon) was not read: the two dates were compared as if in one zone,
    so a file saved at 10:00 +0900 of a photo taken at 02:00 +01:00 (the same instant) read
    'modify date differs from capture date'. A time zone that is none is said once, in one wording."""
    same_instant = {0x9003: "2023:05:01 02:00:00", 0x9011: "+01:00", 0x0132: "2023:05:01 10:00:00", 0x9010: "+0900"}
    p = read_provenance(_exif_jpeg(dates=same_instant))
    assert _sign(_exif_jpeg(dates=same_instant), "dates") == [] and p.problems == [], p.problems
    assert ("EXIF", "offset modified", "+0900") in p.rows()
    later = {**same_instant, 0x0132: "2023:05:01 10:30:00", 0x9011: "-0530"}  # 07:30 UTC, then 01:30 UTC
    (said,) = _sign(_exif_jpeg(dates=later), "dates")
    assert said.startswith("notice: modify date is earlier than the capture date (2023:05:01 10:30:00 +0900"), said
    for nonsense in ("+9:00", "+25:00", "+14:59", "GMT+2", "+09:75", "0900"):
        p = read_provenance(_exif_jpeg(dates={**same_instant, 0x9010: nonsense}))
        assert p.problems == [
            f"EXIF OffsetTime {nonsense!r} is not a time zone (±HH:MM or ±HHMM, at most 14 hours): "
            "the dates are compared without their time zones"
        ], p.problems
        assert _sign(_exif_jpeg(dates={**same_instant, 0x9010: nonsense}), "dates")  # 8 hours apart, unzoned
    blank = read_provenance(_exif_jpeg(dates={**same_instant, 0x9011: "      "}))  # EXIF's 'unknown'
    assert blank.problems == [] and blank.offset_original is None


@pytest.mark.parametrize(
    "editor",
    [
        "DxO PhotoLab 6.5.0 build 158",
        "DxO OpticsPro 11",
        "DxO Optics Pro 9.5",
        "DxO PureRAW 3",
        "ON1 Photo RAW 2023.5",
        "Photos 3.0",  # Apple's Photos (macOS)
        "Photos 8.0",
        "Microsoft Windows Photo Viewer 6.1.7600.16385",
        "Windows Photo Editor 10.0.10011.16384",  # Windows 10's Photos app
        "Windows Live Photo Gallery",
        "Luminar Neo",
        "Capture One 23 Windows",
        "Affinity Photo 2.1.1",
        "Snapseed 2.0",
        "Pixelmator Pro 3.3",
        "darktable 4.4.2",
        "RawTherapee 5.9",
    ],
)
def test_photo_editors_are_named_as_editors(editor: str) -> None:
    """DxO's, ON1's, Apple's and Microsoft's photo programs read 'written by software' (what a
    camera's firmware reads), not 'edited with'."""
    assert _sign(_exif_jpeg(editor), "software")[0].startswith("warning: edited with software"), editor


@pytest.mark.parametrize(
    "firmware",
    ["Ver.1.00", "HDR+ 1.0.541083949zd", "MediaTek Camera Application", "DxO ONE v2.1", "ILCE-7M3 v3.01", "16.5"],
)
def test_camera_firmware_is_not_named_an_editor(firmware: str) -> None:
    assert _sign(_exif_jpeg(firmware), "software") == [f"info: written by software {firmware!r}"]


def _damaged_deflate_tiff() -> bytes:
    """A Deflate TIFF whose compressed strip is garbage: libtiff prints 'ZIPDecode: ...' on file
    descriptor 2 as it decodes."""
    buf = io.BytesIO()
    Image.fromarray(_pattern(32, 32)).save(buf, "TIFF", compression="tiff_adobe_deflate")
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as im:
        start, count = im.tag_v2[273][0], im.tag_v2[279][0]
    data[start : start + count] = bytes(range(256)) * (count // 256) + bytes(count % 256)
    return bytes(data)


def test_read_provenance_keeps_libtiffs_lines_off_the_terminal(tmp_path, capfd) -> None:
    """read_provenance of a TIFF that libtiff cannot decode let libtiff's own line ('ZIPDecode:
    Decoding error ...') reach the terminal of a direct caller (the report and the casebook read
    the image first, which kept it off), and its problem said only 'decoder error -2'."""
    path = _write(tmp_path, "scan.tif", _damaged_deflate_tiff())
    capfd.readouterr()
    p = read_provenance(path)
    out = capfd.readouterr()
    assert (out.out, out.err) == ("", "")
    (problem,) = [x for x in p.problems if x.startswith("image data could not be fully decoded")]
    assert problem.startswith("image data could not be fully decoded (OSError: ZIPDecode: "), problem
    assert "decoder error" not in problem
