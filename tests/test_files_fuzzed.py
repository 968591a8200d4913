"""Damaged files found by mutating valid ones (a bit flipped, a chunk moved, a field changed):
each reader refuses them in one line naming the file, or reads them right; never a picture
that is not the file's, a traceback, or a decoder's lines on the terminal."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from trufor_lab.forensics.provenance import read_provenance
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.lab.datasets import DatasetError, read_mask


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 8
    while at + 8 <= len(data):
        n = struct.unpack(">I", data[at : at + 4])[0]
        out.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + n]))
        at += 12 + n
    return out


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p) & 0xFFFFFFFF) for t, p in chunks
    )
    return b"\x89PNG\r\n\x1a\n" + body


def _palette_png() -> bytes:
    """A palette PNG of a bright square on a mid-grey ground (no index is black)."""
    a = np.full((40, 48, 3), (120, 130, 140), np.uint8)
    a[10:30, 12:36] = (250, 200, 40)
    buf = io.BytesIO()
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("where", ["after the pixels", "missing"])
def test_a_palette_png_without_its_palette_before_the_pixels_is_refused_not_read_black(tmp_path, where):
    """A palette PNG whose PLTE chunk comes after its image data (or not at all), checksums
    right: Pillow reads no palette and every pixel as black. That black picture was analysed,
    read as an empty mask (its image then counted real) and its provenance failed with a bare
    AssertionError; libpng refuses the file."""
    good = _palette_png()
    chunks = _chunks(good)
    plte = next(c for c in chunks if c[0] == b"PLTE")
    rest = [c for c in chunks if c[0] != b"PLTE"]
    moved = rest[:-1] + [plte, rest[-1]] if where == "after the pixels" else rest
    path = tmp_path / "square.png"
    path.write_bytes(_png(moved))
    ok = tmp_path / "ok.png"
    ok.write_bytes(good)
    assert load_image(ok).rgb.min() > 0  # the file as written reads as its colours
    with pytest.raises(ImageError, match=r"square\.png: .*palette image without its palette") as e:
        load_image(path)
    assert "\n" not in str(e.value)
    with pytest.raises(DatasetError, match=r"square\.png: unreadable mask \(palette image without its palette"):
        read_mask(path)
    with pytest.raises(ValueError, match=r"square\.png: .*palette image without its palette"):
        read_provenance(path)


def _mask(fmt: str) -> bytes:
    m = np.zeros((40, 48), np.uint8)
    m[10:30, 12:36] = 255
    buf = io.BytesIO()
    Image.fromarray(m).save(buf, fmt)
    return buf.getvalue()


def _interlace_4(png: bytes) -> bytes:
    """The IHDR's interlace method set to 4 (only 0 and 1 exist), its checksum right."""
    chunks = _chunks(png)
    t, p = chunks[0]
    chunks[0] = (t, p[:12] + b"\x04")
    return _png(chunks)


def _strip_offsets_double(tif: bytes) -> bytes:
    """The StripOffsets tag of a little-endian TIFF typed DOUBLE instead of LONG."""
    data = bytearray(tif)
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * k
        if struct.unpack("<H", data[at : at + 2])[0] == 273:
            data[at + 2 : at + 4] = struct.pack("<H", 12)
    return bytes(data)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_a_mask_that_makes_pillow_raise_a_type_error_is_one_line_and_the_folder_still_reads(tmp_path, suffix):
    """Pillow raises TypeError on a PNG whose interlace byte is 4 and on a TIFF whose strip
    offsets are typed DOUBLE; the mask reader let it through, and `trufor-lab eval` on a folder
    with one such mask stopped with a traceback before any image was analysed."""
    from trufor_lab.lab.datasets import folder_dataset

    damage = _interlace_4 if suffix == "png" else _strip_offsets_double
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        (tmp_path / "images" / f"{name}.png").write_bytes(_palette_png())
    (tmp_path / "masks" / f"a.{suffix}").write_bytes(_mask(suffix.upper() if suffix == "png" else "TIFF"))
    bad = tmp_path / "masks" / f"b.{suffix}"
    bad.write_bytes(damage(_mask("PNG" if suffix == "png" else "TIFF")))
    with pytest.raises(ImageError, match=rf"b\.{suffix}: unreadable image"):  # the image reader said so already
        load_image(bad)
    ds = folder_dataset(tmp_path / "images", tmp_path / "masks")
    a, b = sorted(ds.samples, key=lambda s: s.image_path)
    assert ds.load_mask(a).sum() == 20 * 24
    with pytest.raises(DatasetError, match=rf"b\.{suffix}: unreadable mask \(.+\)$") as e:
        ds.load_mask(b)
    assert "\n" not in str(e.value)


def test_a_tiff_tag_that_pillow_warns_about_while_the_refusal_is_worded_stays_off_the_terminal(tmp_path, capfd):
    """A TIFF whose SamplesPerPixel tag counts 3 values: the reason for refusing it is read from
    its directory, whose tags Pillow decodes when they are asked for; that was after the warnings
    were caught, and Pillow's 'UserWarning: Metadata Warning, tag 277 had too many entries' came
    out on the terminal in two lines naming no file, beside the one-line error."""
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * k
        if struct.unpack("<H", data[at : at + 2])[0] == 277:
            data[at + 4 : at + 8] = struct.pack("<I", 3)
    path = tmp_path / "samples.tif"
    path.write_bytes(bytes(data))
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as escaped:  # what Python would print on the terminal
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match=r"samples\.tif: a TIFF") as e:
            load_image(path)
    assert "\n" not in str(e.value)
    assert [str(w.message) for w in escaped] == []
    assert capfd.readouterr().err == ""


def test_a_mask_with_a_corrupt_exif_block_is_read_without_pillows_warnings_on_the_terminal(tmp_path):
    """A mask PNG whose eXIf chunk declares a tag its bytes do not hold: Pillow warns 'Corrupt
    EXIF data. Expecting to read 12 bytes but only got 0' as the orientation is read, and an
    evaluation printed that in two lines naming no file, twice a mask (its pixels are fine)."""
    from trufor_lab.lab.datasets import folder_dataset

    chunks = _chunks(_mask("PNG"))
    exif = b"II*\x00\x08\x00\x00\x00\x02\x00\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"  # 2 tags, 1 there
    chunks.insert(1, (b"eXIf", exif))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(_palette_png())
    (tmp_path / "masks" / "a.png").write_bytes(_png(chunks))
    with warnings.catch_warnings(record=True) as escaped:  # what Python would print on the terminal
        warnings.simplefilter("always")
        ds = folder_dataset(tmp_path / "images", tmp_path / "masks")
        assert ds.load_mask(ds.samples[0]).sum() == 20 * 24
    assert [str(w.message) for w in escaped] == []


def test_a_tiff_whose_height_outgrows_its_strips_is_refused_not_filled_black(tmp_path):
    """An uncompressed TIFF whose ImageLength says 480 rows (a flipped bit) where its one strip
    holds 48: Pillow decoded the strip and left the other 432 rows black, and that picture of
    invented pixels was analysed without a note."""
    picture = np.full((48, 64, 3), (200, 100, 50), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag == 257:  # ImageLength, SHORT or LONG
            data[at + 8 : at + 12] = struct.pack("<HH", 480, 0) if kind == 3 else struct.pack("<I", 480)
    ok, tall = tmp_path / "ok.tif", tmp_path / "tall.tif"
    ok.write_bytes(buf.getvalue())
    tall.write_bytes(bytes(data))
    assert np.array_equal(load_image(ok).rgb, picture)
    with pytest.raises(
        ImageError, match=r"tall\.tif: a damaged TIFF \(its pixel data covers 3072 of the 64x480 pixels"
    ):
        load_image(tall)


def test_a_palette_png_without_its_palette_is_left_out_of_a_photo_scan(tmp_path):
    """The refusal of a palette PNG without PLTE (a SyntaxError from the header) stopped
    ``scan_photos`` with a traceback: its scan caught a cut file's OSError only."""
    from trufor_lab.training.photo_sets import scan_photos

    a = np.random.default_rng(0).integers(0, 255, (260, 270, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(buf, "PNG")
    (tmp_path / "bad.png").write_bytes(_png([c for c in _chunks(buf.getvalue()) if c[0] != b"PLTE"]))
    Image.fromarray(a).save(tmp_path / "good.png")
    with pytest.warns(UserWarning, match=r"bad\.png: left out \(unreadable image: palette image without its palette"):
        photos = scan_photos(tmp_path)
    assert [p.name for p in photos] == ["good"]


def test_tiff_coverage_reads_pillow_10_tiles_too():
    """``tiff_uncovered`` read ``tile.extents``: Pillow 10 (which pyproject allows) lists a TIFF's
    tiles as plain tuples, so every uncompressed TIFF was an AttributeError traceback there."""
    from trufor_lab.common.image_files import open_image, tiff_uncovered

    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(buf, "TIFF")
    with open_image(io.BytesIO(buf.getvalue())) as im:
        im.tile = [tuple(t) for t in im.tile]  # as Pillow 10's TIFF plugin writes them
        assert tiff_uncovered(im) is None
        im.tile = [(d, (0, 0, 48, 4), o, a) for d, _, o, a in im.tile]
        assert "covers 192 of the 48x40 pixels" in tiff_uncovered(im)


def _planar_tiff(rgb: np.ndarray, **kw) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb.transpose(2, 0, 1), planarconfig="separate", photometric="rgb", **kw)
    return buf.getvalue()


def test_a_tiff_of_separate_planes_missing_one_plane_is_refused_not_read_with_it_black():
    """The strips' coverage was counted over every plane together (their boxes shared): a TIFF of
    separate planes whose StripOffsets listed the red and green planes only was read with a black
    blue channel, unsaid. Valid ones, by strips, tiles or one strip a plane, read exactly."""
    rgb = np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8)
    for kw in ({}, {"rowsperstrip": 7}, {"rowsperstrip": 1000}, {"tile": (16, 16)}):
        assert np.array_equal(load_image(_planar_tiff(rgb, **kw), name="ok.tif").rgb, rgb), kw
    grey = _planar_tiff(rgb[..., :1].repeat(3, 2), rowsperstrip=5)
    assert np.array_equal(load_image(grey, name="grey.tif").rgb[..., 2], rgb[..., 0])
    data = bytearray(_planar_tiff(rgb))
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * i
        if struct.unpack("<H", data[at : at + 2])[0] in (273, 279):  # StripOffsets, StripByteCounts: 3 -> 2
            data[at + 4 : at + 8] = struct.pack("<I", 2)
    with pytest.raises(ImageError, match=r"two\.tif: a damaged TIFF \(plane 3 of 3 covers 0 of the 48x40 pixels"):
        load_image(bytes(data), name="two.tif")


def test_a_callers_opened_palette_png_without_its_palette_is_refused_too(tmp_path):
    """Refused by path, the same file handed over as ``Image.open(path)`` (or opened from its
    bytes) was read as a black picture without a word: the check ran on files this package opens."""
    chunks = _chunks(_palette_png())
    path = tmp_path / "square.png"
    path.write_bytes(_png([c for c in chunks if c[0] != b"PLTE"]))
    for opened in (Image.open(path), Image.open(io.BytesIO(path.read_bytes()))):
        with pytest.raises(ImageError, match=r": unreadable image \(palette image without its palette"):
            load_image(opened)
    good = Image.open(io.BytesIO(_palette_png()))
    good.load()
    assert load_image(good).rgb.min() > 0  # a loaded palette image, and palette images made in memory, read
    assert load_image(Image.new("P", (8, 6), 3)).rgb.shape == (6, 8, 3)
    assert load_image(good.copy().convert("RGB").quantize(4)).rgb.min() > 0
