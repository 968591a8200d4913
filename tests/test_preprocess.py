"""The input contract: every PIL mode, arrays, tensors, EXIF orientation, bad files."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from trufor_lab.forensics.provenance import read_provenance
from trufor_lab.inference.preprocess import ImageError, load_image, to_tensor


def _rgb(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(im: Image.Image, path, fmt=None, **kw):
    im.save(path, format=fmt, **kw)
    return path


def test_rgb_png_is_read_exactly(tmp_path):
    a = _rgb()
    r = load_image(_save(Image.fromarray(a), tmp_path / "a.png"))
    assert r.rgb.dtype == np.uint8 and np.array_equal(r.rgb, a)


def test_rgba_drops_alpha_keeping_colours(tmp_path):
    a = _rgb()
    rgba = np.concatenate([a, np.full(a.shape[:2] + (1,), 7, np.uint8)], axis=2)
    r = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert np.array_equal(r.rgb, a) and "alpha channel dropped" in r.notes


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr", "LA", "HSV"])
def test_every_pil_mode_becomes_rgb(mode):
    im = Image.fromarray(_rgb()).convert(mode)
    r = load_image(im)
    assert r.rgb.shape == (20, 30, 3) and r.rgb.dtype == np.uint8
    if mode in ("L", "LA"):
        g = np.asarray(im)[..., 0] if mode == "LA" else np.asarray(im)
        assert np.array_equal(r.rgb[..., 0], g) and np.array_equal(r.rgb[..., 1], g)
    if mode == "1":
        assert set(np.unique(r.rgb)) <= {0, 255}


def test_palette_with_transparency(tmp_path):
    im = Image.fromarray(_rgb()).convert("P")
    im.info["transparency"] = 0
    r = load_image(_save(im, tmp_path / "p.png"))
    assert r.rgb.shape == (20, 30, 3)


def _keyed(tmp_path, kind: str):
    """A file whose transparency is one colour marked see-through (no alpha channel)."""
    a = _rgb()
    if kind == "rgb.png":
        Image.fromarray(a).save(tmp_path / kind, transparency=tuple(int(x) for x in a[0, 0]))
    elif kind == "l.png":
        Image.fromarray(a[..., 0]).save(tmp_path / kind, transparency=int(a[0, 0, 0]))
    elif kind == "grey.gif":  # every grey level in order: Pillow reads it as mode L
        Image.fromarray((np.arange(600) % 256).astype(np.uint8).reshape(20, 30)).save(tmp_path / kind, transparency=5)
    elif kind == "1.png":
        Image.fromarray(a[..., 0] > 127).save(tmp_path / kind, transparency=0)
    else:  # 16-bit grey
        Image.fromarray(a[..., 0].astype(np.uint16) * 257).save(tmp_path / kind, transparency=257)
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["rgb.png", "l.png", "1.png", "i16.png", "grey.gif"])
def test_a_transparent_colour_key_is_said_to_be_ignored(tmp_path, kind):
    """A PNG's tRNS colour key (RGB, grey, 1-bit, 16-bit grey) and a grey GIF's transparent
    index were dropped without a note; only palette images said their transparency was dropped."""
    path = _keyed(tmp_path, kind)
    with Image.open(path) as im:
        assert "transparency" in im.info and im.mode in ("RGB", "L", "1", "I;16"), (im.mode, im.info)
    got = load_image(path)
    assert got.notes[-1] == "transparent colour key ignored (its pixels analysed as stored)", got.notes
    with Image.open(path) as im:
        assert np.array_equal(got.rgb, np.asarray(im.convert("RGB"))) or kind == "i16.png"


def test_16_bit_is_scaled_to_8_bits(tmp_path):
    v = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    im = Image.fromarray(v)  # mode I;16
    r = load_image(_save(im, tmp_path / "g16.png"))
    assert r.rgb[0, :, 0].tolist() == [0, 1, 255, 128]
    assert load_image(v).rgb[0, :, 1].tolist() == [0, 1, 255, 128]


def test_float_mode_is_rounded_like_pil_and_a_few_highlights_clipped_say_so():
    a = np.full((20, 20), 100.0, np.float32)
    a[0, :3] = [-0.4, 12.4, 255.4]  # within rounding of 0..255
    a[1, :2] = 300.0  # 0.5 % above: clipped highlights
    a[2, 0] = -5.0  # and 0.25 % below (a resampling overshoot)
    r = load_image(Image.fromarray(a, "F"))
    assert r.rgb[0, :3, 0].tolist() == [0, 12, 255] and r.rgb[1, :2, 0].tolist() == [255, 255]
    assert r.rgb[2, 0, 0] == 0
    assert r.notes == ("float values rounded to 8 bits, 0.8% clipped to 0..255",)
    pic = np.linspace(0, 255, 64 * 64, dtype=np.float32).reshape(64, 64)  # a 0..255 float picture
    r = load_image(Image.fromarray(pic, "F"))
    assert np.array_equal(r.rgb[..., 0], np.rint(pic).astype(np.uint8))
    assert r.notes == ("float values rounded to 8 bits",)


@pytest.mark.parametrize(
    "values, said",
    [
        (np.linspace(-np.pi, np.pi, 64 * 64), r"float values -3\.142\.\.3\.142, 42\.0% outside 0\.\.255"),
        (np.r_[np.full(4000, 100.0), np.full(96, 300.0)], r"float values 100\.\.300, 2\.3% outside 0\.\.255"),
        (np.r_[np.full(4000, 100.0), np.full(96, -5.0)], r"float values -5\.\.100, 2\.3% outside 0\.\.255"),
    ],
)
def test_float_data_that_is_not_a_picture_is_refused_like_integers_beyond_16_bits(tmp_path, values, said):
    """A float TIFF of -pi..pi (a phase map) was analysed as a 4-level grey picture, '45.7%
    clipped to 0..255' in a note, while integer data outside 0..65535 was refused: more than 1 %
    outside 0..255 (above or below) is refused now."""
    path = tmp_path / "phase.tif"
    Image.fromarray(values.reshape(64, 64).astype(np.float32), "F").save(path)
    with pytest.raises(ImageError, match=rf"^{re.escape(str(path))}: {said} \(a measurement, not a photo\)$"):
        load_image(path)


def test_a_normalised_float_picture_with_overshoots_is_not_read_as_0_255(tmp_path):
    """A 0..1 float TIFF dipping below zero was taken as a 0..255 picture (every value 0 or 1: a
    black picture, analysed, nothing said): it is read as 0..1, a few overshoots clipped and said,
    and refused when many values lie outside 0..1."""
    v = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    v[0, :20] = -0.02  # 0.5 % of the values: a resampling overshoot
    Image.fromarray(v, "F").save(tmp_path / "over.tif")
    r = load_image(tmp_path / "over.tif")
    assert r.rgb.max() == 255 and r.rgb[0, :20].max() == 0
    assert r.notes == ("float values in 0..1 scaled to 8 bits, 0.5% clipped to 0..1",)
    Image.fromarray(np.tile(np.linspace(-0.3, 1.0, 64, dtype=np.float32), (16, 1)), "F").save(tmp_path / "neg.tif")
    with pytest.raises(ImageError, match=r"neg\.tif: float values -0\.3\.\.1, 23\.4% outside 0\.\.1 \(a measurement"):
        load_image(tmp_path / "neg.tif")


def test_16_bit_colour_of_12_bit_depth_is_said_to_be_nearly_black(tmp_path):
    """12-bit data in a 16-bit colour PNG became a picture of top bytes 0..15 (nearly black) with
    only 'reduced to 8 bits' said, while the same data as 16-bit grey was said to be nearly black."""
    import zlib

    rgb = (np.arange(32 * 32 * 3, dtype=np.uint32).reshape(32, 32, 3) % 4096).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (32).to_bytes(4, "big") * 2 + bytes([16, 2, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    (tmp_path / "rgb12.png").write_bytes(png)
    r = load_image(tmp_path / "rgb12.png")
    assert r.rgb.max() < 16
    assert any("nearly black as 16-bit colour" in n for n in r.notes), r.notes


def test_float_image_in_0_1_is_scaled_like_a_float_array_and_nan_refused(tmp_path):
    """A normalised float TIFF was rounded to 0/1 and analysed as a black picture (a note said so,
    hidden by -q); the same values as an array were scaled. Both are scaled now; NaN has no 8-bit value."""
    v = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(v, "F").save(tmp_path / "norm.tif")
    r = load_image(tmp_path / "norm.tif")
    assert r.rgb.max() == 255 and np.array_equal(r.rgb, load_image(v).rgb)
    assert r.notes == ("float values in 0..1 scaled to 8 bits",)
    a = np.full((40, 40), 7.0, np.float32)
    a[3, 4] = np.nan
    p = tmp_path / "nan.tif"
    Image.fromarray(a, "F").save(p)
    with pytest.raises(ImageError, match=r"nan\.tif: float image holds NaN or Inf values$"):
        load_image(p)


def test_animated_gif_file_takes_its_first_frame_and_a_pil_image_its_current_one(tmp_path):
    """A PIL image is the frame it is on (``ImageSequence`` hands out each frame so): it was
    rewound to frame 1 and moved under the caller; a file's first frame is taken, and said."""
    from PIL import ImageSequence

    frames = [Image.fromarray(np.full((10, 10, 3), c, np.uint8)) for c in (10, 200)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50)
    r = load_image(p)
    assert abs(int(r.rgb.mean()) - 10) <= 2 and "first of 2 frames" in r.notes
    with Image.open(p) as im:
        got = [(int(load_image(f).rgb.mean()), load_image(f).notes[0], f.tell()) for f in ImageSequence.Iterator(im)]
    assert [(abs(m - c) <= 2, n, t) for (m, n, t), c in zip(got, (10, 200))] == [
        (True, "first of 2 frames", 0),
        (True, "frame 2 of 2", 1),
    ]


def test_exif_orientation_is_reported_and_applied_only_on_request(tmp_path):
    a = _rgb(20, 30)
    ex = Image.Exif()
    ex[0x0112] = 6  # rotate 90 CW to display
    p = _save(Image.fromarray(a), tmp_path / "o.png", exif=ex.tobytes())
    stored = load_image(p)
    assert stored.exif_orientation == 6 and stored.rgb.shape == (20, 30, 3)
    assert np.array_equal(stored.rgb, a)
    assert stored.notes == (
        "EXIF orientation 6 not applied: analysed as stored (viewers show it turned 90° clockwise)",
    )
    shown = load_image(p, exif_transpose=True)
    assert shown.rgb.shape == (30, 20, 3) and shown.notes == ("EXIF orientation 6 applied",)
    assert np.array_equal(shown.rgb, np.rot90(a, k=-1))


def test_arrays_and_tensors():
    a = _rgb()
    assert np.array_equal(load_image(a).rgb, a)
    assert np.array_equal(load_image(a[..., 0]).rgb[..., 2], a[..., 0])
    assert np.array_equal(load_image(a.astype(np.float32) / 255).rgb, a)
    assert np.array_equal(load_image(torch.from_numpy(a).permute(2, 0, 1)).rgb, a)
    with pytest.raises(ImageError, match="float images"):
        load_image(a.astype(np.float32))
    with pytest.raises(ImageError, match="uint8 tensors"):
        load_image(torch.rand(3, 8, 8))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))


def test_to_tensor_is_rgb_over_256():
    a = np.array([[[0, 128, 255]]], dtype=np.uint8)
    t = to_tensor(a)
    assert t.shape == (1, 3, 1, 1) and t.flatten().tolist() == [0.0, 0.5, 255 / 256]


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "folder", "bomb", "zero"])
def test_bad_files_give_one_line_naming_the_file(tmp_path, case):
    p = tmp_path / f"{case}.png"
    kw = {}
    if case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("hello, I am not an image")
    elif case == "truncated":
        buf = io.BytesIO()
        Image.fromarray(_rgb(64, 64)).save(buf, "PNG")
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif case == "folder":
        p.mkdir()
    elif case == "bomb":
        Image.fromarray(_rgb(64, 64)).save(p)
        kw = {"max_pixels": 1000}
    elif case == "zero":
        p = tmp_path / "zero.npy"
        arr = np.zeros((0, 5, 3), np.uint8)
        with pytest.raises(ImageError) as e:
            load_image(arr)
        assert "no pixels" in str(e.value)
        return
    with pytest.raises(ImageError) as e:
        load_image(p, **kw)
    msg = str(e.value)
    assert msg.startswith(str(p) + ":") and "\n" not in msg


def test_real_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    """A tiny PNG whose header claims 100k x 100k pixels."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    p = tmp_path / "bomb.png"
    p.write_bytes(png)
    with pytest.raises(ImageError, match="bomb|too many|refused"):
        load_image(p)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow says so while reading it
def test_a_tiff_whose_next_ifd_leads_nowhere_is_analysed_with_a_note(tmp_path):
    """Pillow raises TypeError ('Missing dimensions') from n_frames on such a file, whose first
    image reads fine (viewers show it, provenance reads it): it was refused as unreadable; now
    that image is analysed and a note says the frame count was not."""
    import struct

    a = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "TIFF")
    t = buf.getvalue()
    off = struct.unpack("<I", t[4:8])[0]
    nxt = off + 2 + 12 * struct.unpack("<H", t[off : off + 2])[0]
    p = tmp_path / "next.tif"
    p.write_bytes(t[:nxt] + struct.pack("<I", 0x7FFFFFF0) + t[nxt + 4 :])
    got = load_image(p)
    assert np.array_equal(got.rgb, a)
    assert any(n.startswith("frame count unreadable (a damaged chain of TIFF directories)") for n in got.notes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_not_applied_behind_the_notes_back(tmp_path, orientation):
    """Pillow turns TIFFs on loading: a TIFF with orientation 6 was analysed turned (maps no
    longer aligned with the file) while the note said 'not applied'."""
    a = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    im = Image.fromarray(a)
    ex = im.getexif()
    ex[0x0112] = orientation
    for ext in ("png", "tif"):
        im.save(tmp_path / f"o.{ext}", exif=ex)
        stored = load_image(tmp_path / f"o.{ext}")
        assert np.array_equal(stored.rgb, a) and stored.exif_orientation == orientation
        turned = load_image(tmp_path / f"o.{ext}", exif_transpose=True)
        assert np.array_equal(turned.rgb, np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png"))))
        if orientation > 1:
            assert stored.notes[0].startswith(
                f"EXIF orientation {orientation} not applied: analysed as stored (viewers show it "
            )
            assert turned.notes == (f"EXIF orientation {orientation} applied",)


def test_what_the_decoder_changes_is_said_or_refused(tmp_path):
    """An invalid orientation was reported as applied; a PNG with a corrupted chunk decoded with
    changed pixels; 16-bit colour lost its low byte silently; premultiplied colours were divided
    by alpha; Pillow's 89 MP limit overrode max_pixels, with no numbers in the message."""
    import struct
    import zlib

    a = np.zeros((8, 8, 3), np.uint8)
    im = Image.fromarray(a)
    ex = im.getexif()
    ex[0x0112] = 9
    im.save(tmp_path / "o9.png", exif=ex)
    r = load_image(tmp_path / "o9.png", exif_transpose=True)
    assert r.notes == ("invalid EXIF orientation 9 ignored",) and r.exif_orientation is None
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    b = bytearray((tmp_path / "c.png").read_bytes())
    b[b.find(b"IDAT") + 40] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(b))
    for src in (tmp_path / "bad.png", bytes(b)):
        with pytest.raises(ImageError, match="broken PNG file"):
            load_image(src)

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + np.full((4, 3), 40000, ">u2").tobytes() for _ in range(4))
    ihdr = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)  # 4x4, 16-bit RGB
    (tmp_path / "d16.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    assert load_image(tmp_path / "d16.png").notes == ("16-bit colour reduced to 8 bits (top byte)",)
    with Image.open(tmp_path / "d16.png") as loaded:  # loaded by the caller: the same pixels were read unsaid
        loaded.load()
        assert load_image(loaded).notes == ("16-bit colour reduced to 8 bits (top byte)",)
    pm = load_image(Image.new("RGBa", (4, 4), (40, 80, 120, 128)))
    assert tuple(pm.rgb[0, 0]) == (40, 80, 120) and "premultiplied colours kept as stored" in pm.notes[0]
    with pytest.raises(ImageError, match="refused: 1024 pixels is more than max_pixels=100"):
        load_image(tmp_path / "c.png", max_pixels=100)
    for bad in (np.full((4, 4, 3), 300, np.int64), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8)):
        with pytest.raises(ValueError, match="RGB uint8"):
            to_tensor(bad)


def test_array_inputs_say_what_was_done_and_are_copied():
    """Arrays got no notes (alpha dropped, 16-bit scaled); a uint8 array was kept by reference,
    so a caller reusing its buffer changed the Result's image; CMYK conversions went unnoted."""
    a = np.full((8, 8, 4), 7, np.uint8)
    r = load_image(a)
    assert r.notes == ("alpha channel dropped",)
    b = np.full((8, 8, 3), 9, np.uint8)
    r = load_image(b)
    b[:] = 0
    assert r.rgb[0, 0, 0] == 9 and r.notes == ()
    assert load_image(np.full((8, 8), 40000, np.uint16)).notes == ("16-bit values scaled to 8 bits",)
    # an 8-bit picture in a uint16 array: scaled to nearly black, said as for a 16-bit PIL image
    # (the array said only "scaled"); the same pixels and notes either way
    eight = np.arange(64, dtype=np.uint16).reshape(8, 8) * 4
    as_array, as_pil = load_image(eight), load_image(Image.fromarray(eight))
    assert (
        as_array.notes[1]
        == "every value within 0..252 of 65535: nearly black as 16-bit (an 8-bit picture saved as 16-bit? convert it to 8-bit first)"
    )
    assert np.array_equal(as_array.rgb, as_pil.rgb) and as_array.notes == as_pil.notes
    assert load_image(np.full((8, 8, 3), 0.5)).notes == ("float values in 0..1 scaled to 8 bits",)
    assert load_image(Image.new("CMYK", (8, 8), (0, 0, 0, 0))).notes == ("converted from CMYK by Pillow",)


def test_in_memory_pil_images_load(shared_dir):
    """An image made in memory (Image.new, a crop, a resize) has no tile list: reading it for the
    16-bit check raised AttributeError under Pillow 13, so tl.analyze(model, im.crop(...)) failed."""
    from PIL import Image

    from trufor_lab.inference.preprocess import load_image

    with Image.open(shared_dir / "images" / "pristine1.jpg") as base:
        made = [Image.new("RGB", (40, 30), (10, 20, 30)), base.crop((5, 6, 69, 70)), base.resize((50, 40))]
        expected = [(30, 40, 3), (64, 64, 3), (40, 50, 3)]
        for im, shape in zip(made, expected):
            assert load_image(im).rgb.shape == shape
        crop = load_image(base.crop((5, 6, 69, 70))).rgb
        assert np.array_equal(crop, np.asarray(base.convert("RGB"))[6:70, 5:69])


def test_a_32_bit_integer_image_beyond_16_bits_is_refused():
    """Mode 'I' values beyond 0..65535 were clipped to white (or black) silently."""
    from PIL import Image

    from trufor_lab.inference.preprocess import ImageError, load_image

    im = Image.fromarray(np.arange(64 * 64, dtype=np.int32).reshape(64, 64) * 100, mode="I")
    with pytest.raises(ImageError, match="outside 0..65535"):
        load_image(im)
    ok = Image.fromarray((np.arange(64 * 64, dtype=np.int32).reshape(64, 64) * 10), mode="I")
    assert load_image(ok).notes == ("integer values scaled as 16-bit to 8 bits",)


def test_integer_tiffs_of_other_kinds_are_read_as_they_mean_or_refused(tmp_path):
    """A 32-bit TIFF holding 0..255 became nearly black under a '16-bit' note; a signed 8-bit
    TIFF wrapped -74 to 182 silently; a 16-bit WhiteIsZero TIFF was not inverted (8-bit ones are)."""
    a = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.int32)
    Image.fromarray(a, mode="I").save(tmp_path / "i32.tif")
    got = load_image(tmp_path / "i32.tif")
    assert np.array_equal(got.rgb[..., 0], a) and got.notes == ("32-bit integer values within 0..255 taken as 8-bit",)

    from PIL import TiffImagePlugin

    signed = TiffImagePlugin.ImageFileDirectory_v2()
    signed[339] = 2  # SampleFormat: signed
    Image.fromarray(a.astype(np.uint8)).save(tmp_path / "s8.tif", tiffinfo=signed)
    with pytest.raises(ImageError, match=r"s8\.tif: signed 8-bit samples"):
        load_image(tmp_path / "s8.tif")

    w16 = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)
    wiz = TiffImagePlugin.ImageFileDirectory_v2()
    wiz[262] = 0  # PhotometricInterpretation: WhiteIsZero
    Image.fromarray(w16).save(tmp_path / "w16.tif", tiffinfo=wiz)
    got = load_image(tmp_path / "w16.tif")
    assert np.array_equal(got.rgb[..., 0], 255 - np.clip(np.rint(w16 / 257.0), 0, 255).astype(np.uint8))
    assert "WhiteIsZero: inverted" in got.notes
    # a dark 16-bit PGM (Pillow's mode I too) is scaled as 16-bit, whatever this frame's range
    dark = (np.arange(32 * 32).reshape(32, 32) % 200).astype(">u2")
    (tmp_path / "dark.pgm").write_bytes(b"P5\n32 32\n65535\n" + dark.tobytes())
    got = load_image(tmp_path / "dark.pgm")
    assert got.rgb.max() == 1 and not any("32-bit" in n for n in got.notes), got.notes


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_uncompressed_tiff_with_an_orientation_is_read_as_stored_not_scrambled(tmp_path, mode, orientation):
    """Pillow memory-maps an uncompressed file opened by path with the turned size: a grey,
    palette, RGBA or 16-bit TIFF with orientation 5-8 was analysed as scrambled pixels."""
    a = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32)
    im = Image.fromarray(a) if mode == "I;16" else Image.fromarray((a % 251).astype(np.uint8)).convert(mode)
    ex = im.getexif()
    ex[0x0112] = orientation
    im.save(tmp_path / "o.tif", exif=ex)
    got = load_image(tmp_path / "o.tif")
    assert got.rgb.shape == (24, 32, 3) and got.exif_orientation == orientation
    assert np.array_equal(got.rgb, load_image(im).rgb)  # the same pixels as the image saved
    im.save(tmp_path / "o.png", exif=ex)  # Pillow's PNG loader never turns: the reference
    assert np.array_equal(
        load_image(tmp_path / "o.tif", exif_transpose=True).rgb, load_image(tmp_path / "o.png", exif_transpose=True).rgb
    )
    # opened and loaded by the caller: Pillow turned it and dropped the tag; it was analysed on
    # the turned grid with no orientation and no note (another score); its file still says
    with Image.open(tmp_path / "o.tif") as opened:
        opened.load()
        mine = load_image(opened)
    assert np.array_equal(mine.rgb, got.rgb) and mine.exif_orientation == orientation and mine.notes == got.notes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_hostile_files_are_refused_or_noted_never_decoded_quietly_wrong(tmp_path):
    """A PNG whose chunk checksums are valid but whose pixel data is not zlib was analysed as a
    black image (getexif decoded it and swallowed the error); a PostScript file named .jpg went
    to Ghostscript; a 12-bit JPEG was 'not an image file'; a truncated PIL image raised a bare
    OSError; corrupt EXIF printed multi-line Python warnings that named no file."""
    import struct
    import warnings

    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
    garbage = _png_chunk(b"IDAT", bytes(range(256)) * 4)
    (tmp_path / "bad_idat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + garbage + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageError, match=r"bad_idat\.png: unreadable image \("):
        load_image(tmp_path / "bad_idat.png")

    (tmp_path / "photo.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(
        ImageError, match=r"photo\.jpg: a PostScript/EPS file, not read \(decoding it would run Ghostscript\)$"
    ):
        load_image(tmp_path / "photo.jpg")

    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # sample precision: 12 bits
    (tmp_path / "deep.jpg").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"deep\.jpg: a JPEG that cannot be decoded here \(damaged, or 12-bit"):
        load_image(tmp_path / "deep.jpg")

    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:-300])
    with pytest.raises(ImageError, match=r"cut\.png: unreadable image"):
        load_image(Image.open(tmp_path / "cut.png"))  # a PIL image the caller opened

    ex = Image.Exif()
    ex[0x010E] = "a description long enough to live outside the IFD entry " * 3
    exif = ex.tobytes()[:-60]  # the value's bytes cut short
    Image.fromarray(_rgb()).save(tmp_path / "exif.jpg", exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = load_image(tmp_path / "exif.jpg")
    assert "decoder warning: Tag data larger than file. Skipping tag 270" in got.notes, got.notes


def test_a_text_bomb_after_the_pixels_is_noted_and_the_pixels_kept(tmp_path):
    """A zTXt chunk after IDAT that inflates beyond Pillow's limit: the image is whole, the
    chunk is metadata (refusing the file, or a traceback, lost the analysis)."""
    import zlib

    buf = io.BytesIO()
    a = _rgb(32, 32)
    Image.fromarray(a).save(buf, "PNG")
    data = buf.getvalue()
    end = data.rindex(b"IEND") - 4
    bomb = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 << 20)))
    (tmp_path / "bomb.png").write_bytes(data[:end] + bomb + data[end:])
    got = load_image(tmp_path / "bomb.png")
    assert np.array_equal(got.rgb, a)
    assert len(got.notes) == 1 and got.notes[0].startswith("a PNG chunk after the image data could not be read (")


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_a_text_bomb_before_the_pixels_does_not_keep_them_from_analysis(tmp_path, kind):
    """A compressed text chunk before IDAT that inflates beyond Pillow's limit made the whole
    file unreadable: a forger could make a picture un-analysable with a metadata bomb."""
    import zlib

    buf = io.BytesIO()
    a = _rgb(32, 40)
    ex = Image.Exif()
    ex[0x0112] = 3  # other chunks (eXIf) are kept
    Image.fromarray(a).save(buf, "PNG", exif=ex)
    data = buf.getvalue()
    start = data.index(b"IDAT") - 4
    head = b"Comment\x00\x00" if kind == b"zTXt" else b"XML:com.adobe.xmp\x00\x01\x00\x00\x00"
    bomb = _png_chunk(kind, head + zlib.compress(b"A" * (8 << 20)))
    (tmp_path / "bomb.png").write_bytes(data[:start] + bomb + data[start:])
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        Image.open(tmp_path / "bomb.png")  # what Pillow does with it
    for src in (tmp_path / "bomb.png", (tmp_path / "bomb.png").read_bytes()):
        got = load_image(src)
        assert np.array_equal(got.rgb, a) and got.exif_orientation == 3
        assert got.notes[-1] == "PNG text metadata ignored: it inflates beyond the safe limit"


def test_a_png_cut_just_before_its_closing_chunk_is_read_with_a_note(tmp_path):
    """A PNG that lacks only IEND (every pixel there; browsers show it) was refused as
    truncated; one cut inside a chunk, or missing whole data chunks, is still refused."""
    buf = io.BytesIO()
    a = _rgb(24, 40)
    Image.fromarray(a).save(buf, "PNG")
    data = buf.getvalue()
    assert data[-8:-4] == b"IEND"
    (tmp_path / "no_end.png").write_bytes(data[:-12])
    for src in (tmp_path / "no_end.png", data[:-12]):
        got = load_image(src)
        assert np.array_equal(got.rgb, a)
        assert got.notes == ("PNG ends without its closing IEND chunk (cut after the pixel data, which is complete)",)
    (tmp_path / "cut_in_end.png").write_bytes(data[:-6])
    with pytest.raises(ImageError, match=r"cut_in_end\.png: unreadable image"):
        load_image(tmp_path / "cut_in_end.png")
    idat = data.index(b"IDAT") - 4
    (tmp_path / "no_data.png").write_bytes(data[:idat])  # header only: nothing to show
    with pytest.raises(ImageError, match=r"no_data\.png: a PNG whose header or image data cannot be read"):
        load_image(tmp_path / "no_data.png")


def test_png_pixel_data_that_ends_early_is_refused_not_padded_black(tmp_path):
    """Image data that inflates to half the rows, every checksum valid: Pillow left the missing
    rows black and the image was analysed so. Interlaced (Adam7) sizes count right."""
    import struct
    import zlib

    from trufor_lab.common.image_files import png_rows_missing

    def png(w, h, raw, interlace=0):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, interlace)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b"")
        )

    w, h = 16, 16
    row = b"\x00" + bytes(range(w * 3))
    (tmp_path / "half.png").write_bytes(png(w, h, row * (h // 2)))
    with pytest.raises(
        ImageError, match=r"half\.png: unreadable image \(pixel data ends early: 392 bytes of rows missing\)"
    ):
        load_image(tmp_path / "half.png")
    assert load_image(png(w, h, row * h)).rgb.shape == (16, 16, 3)
    # Adam7 on 16x16: seven reduced images, each row with its filter byte
    sizes = [(2, 2), (2, 2), (4, 2), (4, 4), (8, 4), (8, 8), (16, 8)]  # (width, rows) of each pass
    full = sum(r * (1 + 3 * pw) for pw, r in sizes)
    interlaced = png(w, h, bytes(full), interlace=1)
    assert png_rows_missing(interlaced) == 0 and load_image(interlaced).rgb.shape == (16, 16, 3)
    assert png_rows_missing(png(w, h, bytes(full - 1), interlace=1)) == 1


def _tiff(path, data, **kw):
    import tifffile

    tifffile.imwrite(path, data, **kw)
    return path


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"rowsperstrip": 4},
        {"tile": (16, 32)},
        {"byteorder": ">"},
        {"extrasamples": [2]},
        {"photometric": "separated"},
    ],
    ids=["one-strip", "strips", "tiles", "big-endian", "rgba", "cmyk"],
)
def test_an_uncompressed_16_bit_planar_tiff_is_read_as_stored(tmp_path, layout):
    """Pillow reads each 16-bit plane of an uncompressed PlanarConfiguration=2 TIFF as 8-bit: the
    picture had no relation to the file, and no '16-bit' note was given."""
    a = np.random.default_rng(1).integers(0, 65536, (37, 61, 4)).astype(np.uint16)
    kw = {"photometric": "rgb", **layout}
    a = a if kw["photometric"] == "separated" or "extrasamples" in kw else a[..., :3]
    if kw.get("byteorder") == ">":
        a = a.astype(">u2")
    got = load_image(_tiff(tmp_path / "p.tif", a.transpose(2, 0, 1), planarconfig="separate", **kw))
    same = load_image(_tiff(tmp_path / "c.tif", a, **kw))  # the same samples pixel by pixel
    assert np.array_equal(got.rgb, same.rgb)
    if kw["photometric"] == "rgb":
        assert np.array_equal(got.rgb, (a[..., :3] >> 8).astype(np.uint8))
    assert "16-bit colour reduced to 8 bits (top byte)" in got.notes and got.notes == same.notes


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_a_16_bit_planar_tiff_with_an_orientation_is_stored_and_shown_like_a_contiguous_one(tmp_path, orientation):
    a = np.random.default_rng(2).integers(0, 65536, (3, 24, 32)).astype(np.uint16)
    tag = [(274, 3, 1, orientation, True)]  # EXIF orientation
    planar = _tiff(tmp_path / "p.tif", a, photometric="rgb", planarconfig="separate", extratags=tag)
    contiguous = _tiff(tmp_path / "c.tif", a.transpose(1, 2, 0), photometric="rgb", extratags=tag)
    for turn in (False, True):
        got, ref = load_image(planar, exif_transpose=turn), load_image(contiguous, exif_transpose=turn)
        assert np.array_equal(got.rgb, ref.rgb) and got.notes == ref.notes and got.turned == ref.turned


def test_a_16_bit_planar_tiff_that_cannot_be_read_exactly_is_refused_in_one_line(tmp_path):
    a = np.random.default_rng(3).integers(0, 65536, (3, 24, 32)).astype(np.uint16)
    p = _tiff(tmp_path / "p.tif", a, photometric="rgb", planarconfig="separate")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(p.read_bytes()[:-200])  # the blue plane ends early (Pillow read half of each plane)
    with pytest.raises(ImageError, match=r"^.*cut\.tif: 16-bit planar TIFF that cannot be decoded .*truncated\)$"):
        load_image(cut)
    im = Image.open(p)
    im.load()  # Pillow has decoded (misread) the planes and closed the file
    with pytest.raises(ImageError, match=r"p\.tif: 16-bit planar TIFF that cannot be decoded reliably here \(its"):
        load_image(im)
    im.close()


def test_unsupported_tiffs_are_refused_saying_what_they_hold(tmp_path):
    """Pillow reads uint32 as int32: the refusal quoted values the file does not hold; a float
    colour TIFF was 'not an image file'."""
    u32 = (np.linspace(0, 1, 48)[None, :].repeat(40, 0) * 4e9).astype(np.uint32)
    with pytest.raises(ImageError, match=r"u32\.tif: integer values 0\.\.4e\+09, outside 0\.\.65535"):
        load_image(_tiff(tmp_path / "u32.tif", u32))
    for dtype, bits in ((np.float32, 32), (np.float16, 16), (np.float64, 64)):
        p = _tiff(tmp_path / f"f{bits}.tif", np.zeros((40, 48, 3), dtype), photometric="rgb")
        with pytest.raises(ImageError) as e:
            load_image(p)
        assert str(e.value) == (
            f"{p}: a TIFF with a sample format not supported here ({bits}-bit float, 3 samples per pixel)"
        )


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_deflate"])
@pytest.mark.parametrize("cut", [16, 200, "half"])
def test_a_cut_tiff_is_called_truncated_in_one_line(tmp_path, compression, cut, recwarn):
    """A compressed TIFF cut short was called "a TIFF with a sample format not supported here
    (1-bit unsigned ...)", under two lines of Pillow's raw warnings."""
    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.tif"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(whole, compression=compression)
    data = whole.read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(data[: -(len(data) // 2 if cut == "half" else cut)])
    with pytest.raises(ImageError) as e:
        load_image(bad)
    assert str(e.value) == f"{bad}: unreadable image (file is truncated)"
    assert not [w for w in recwarn if "PIL" in str(w.filename)]
    assert load_image(whole).rgb.shape == (64, 64, 3)


def _layered_psd(path, merged: np.ndarray, layers: int) -> None:
    """A minimal Photoshop file: RGB 8-bit, ``layers`` flat grey layers, then ``merged`` (raw)."""
    import struct

    h, w = merged.shape[:2]
    records, planes = b"", b""
    for i in range(layers):
        records += struct.pack(">iiiiH", 0, 0, h, w, 3)
        records += b"".join(struct.pack(">hI", ch, 2 + h * w) for ch in range(3))
        name = bytes([2]) + f"L{i}".encode()
        name += b"\0" * (-len(name) % 4)
        extra = struct.pack(">II", 0, 0) + name
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        planes += b"".join(struct.pack(">H", 0) + bytes([60 * (i + 1)]) * (h * w) for _ in range(3))
    info = struct.pack(">h", layers) + records + planes
    info += b"\0" * (len(info) % 2)
    block = struct.pack(">I", len(info)) + info
    head = b"8BPS" + struct.pack(">H", 1) + bytes(6) + struct.pack(">HIIHH", 3, h, w, 8, 3) + bytes(8)
    pixels = b"".join(merged[..., ch].tobytes() for ch in range(3))
    path.write_bytes(head + struct.pack(">I", len(block)) + block + struct.pack(">H", 0) + pixels)


def _tiff12(v: np.ndarray) -> bytes:
    """A 12-bit grey TIFF (BitsPerSample 12, samples packed most significant bit first) of ``v``."""
    h, w = v.shape
    rows = []
    for r in v:
        bits = "".join(format(int(x), "012b") for x in r)
        bits += "0" * (-len(bits) % 8)
        rows.append(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    data = b"".join(rows)
    tags = [(256, w), (257, h), (258, 12), (259, 1), (262, 1), (273, 0), (277, 1), (278, h), (279, len(data))]
    at = 8 + 2 + 12 * len(tags) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, value in tags:
        out += struct.pack("<HHII", tag, 4, 1, at if tag == 273 else value)
    return out + struct.pack("<I", 0) + data


def test_a_12_bit_tiff_is_scaled_by_its_own_depth_and_a_narrow_16_bit_one_is_said(tmp_path):
    """A 12-bit TIFF (0..4095, Pillow's mode I;16) was scaled as 16-bit: a nearly black picture
    (0..16) analysed under the note "16-bit values scaled"; a 16-bit TIFF of values 291..694
    became three grey levels without a word (the warning needed every value within 0..255)."""
    v = np.tile(np.linspace(0, 4095, 64).round().astype(np.uint16), (16, 1))
    path = tmp_path / "g12.tif"
    path.write_bytes(_tiff12(v))
    got = load_image(path)
    assert np.array_equal(got.rgb[..., 0], np.rint(v * (255 / 4095)).astype(np.uint8))
    assert got.rgb.max() == 255 and got.notes == ("12-bit values scaled to 8 bits",)
    narrow = tmp_path / "narrow.tif"
    Image.fromarray(np.linspace(291, 694, 64 * 64).astype(np.uint16).reshape(64, 64)).save(narrow)
    got = load_image(narrow)
    assert got.rgb.max() == 3 and got.notes[0] == "16-bit values scaled to 8 bits"
    assert got.notes[1].startswith("every value within 0..694 of 65535: nearly black as 16-bit"), got.notes
    wide = tmp_path / "wide.tif"
    Image.fromarray(np.linspace(0, 4096, 64 * 64).astype(np.uint16).reshape(64, 64)).save(wide)
    assert load_image(wide).notes == ("16-bit values scaled to 8 bits",)  # a sixteenth of the range used


@pytest.mark.parametrize("extra", [struct.pack(">II", 0, 0), None])
def test_a_png_without_image_data_is_called_damaged(tmp_path, extra):
    """An APNG whose acTL counts no frames (no IDAT) was 'unreadable image (list index out of
    range)': Pillow's verify() indexes the first of no tiles."""
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 16, 8, 6, 0, 0, 0))
    actl = _png_chunk(b"acTL", extra) if extra is not None else b""
    path = tmp_path / "anim.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + actl + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: damaged PNG (no image data: cannot load this image)"


def test_deep_and_layered_files_are_said_for_what_they_are(tmp_path):
    """A 16-bit PPM was reduced to 8 bits without a note; an 8-bit picture saved as 16-bit
    (values 0..255 of 65535) was analysed nearly black under a generic note; a two-layer PSD
    was called "frame 2 of 2" though its merged image is what is analysed."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 48, 3), np.uint8)
    ppm = tmp_path / "deep.ppm"
    ppm.write_bytes(b"P6\n48 40\n65535\n" + (rgb.astype(">u2") * 257).tobytes())
    got = load_image(ppm)
    assert np.array_equal(got.rgb, rgb) and "16-bit colour reduced to 8 bits" in got.notes
    # other maxima: Pillow scales the samples by them (not "top byte", as a maximum of 1000 was
    # called; a maximum of 100 was scaled unsaid)
    for top, mode, bits in ((1000, "P6", 8), (100, "P6", 8), (1000, "P5", 16)):
        depth = ">u2" if top > 255 else "u1"
        planes = rgb if mode == "P6" else rgb[..., 0]
        body = np.rint(planes.astype(np.float64) * top / 255).astype(depth).tobytes()
        (tmp_path / "odd.ppm").write_bytes(f"{mode}\n48 40\n{top}\n".encode() + body)
        got = load_image(tmp_path / "odd.ppm")
        assert f"samples of maximum {top} scaled to {bits} bits" in got.notes, got.notes
        assert np.abs(got.rgb[..., 0].astype(int) - rgb[..., 0]).max() <= (1 if top > 255 else 2)
    low = tmp_path / "low.png"
    Image.fromarray(rgb[..., 0].astype(np.uint16)).save(low)
    got = load_image(low)
    assert got.rgb.max() <= 1 and any("nearly black as 16-bit" in n for n in got.notes), got.notes
    full = tmp_path / "full.png"
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(full)
    assert not any("nearly black" in n for n in load_image(full).notes)
    psd = tmp_path / "layers.psd"
    _layered_psd(psd, rgb, layers=2)
    got = load_image(psd)
    assert np.array_equal(got.rgb, rgb)
    assert got.notes[0] == "the merged image of a 2-layer PSD (layers not analysed one by one)", got.notes
    assert not any("frame" in n for n in got.notes)


def test_a_file_that_cannot_be_opened_is_one_line_naming_it(tmp_path, monkeypatch):
    """A file without read permission: the PNG-mending retry read it again outside any handler
    (PermissionError traceback from `trufor-lab report`); now one line, the reason in words."""
    import builtins

    p = tmp_path / "locked.png"
    Image.fromarray(_rgb(16, 16)).save(p)
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(ImageError, match=r"locked\.png: cannot read \(Permission denied\)$"):
        load_image(p)


def _photo_jpeg(shared_dir, size=200, quality=90) -> bytes:
    a = np.asarray(Image.open(shared_dir / "images" / "pristine1.jpg").convert("RGB"))[:size, :size]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_a_jpeg_whose_data_stops_early_is_refused_not_filled_with_grey(shared_dir, tmp_path):
    """libjpeg fills a scan that ends early (a cut file closed with its end marker, a header that
    declares more pixels than the data holds) with mid-grey and only warns, which Pillow drops:
    the grey was analysed, and flagged by the map, with no note."""
    good = _photo_jpeg(shared_dir)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    with pytest.raises(
        ImageError, match=r"cut\.jpg: unreadable image \(its data stops early: from row \d+, column \d+"
    ):
        load_image(cut)
    with pytest.raises(ImageError, match=r"<bytes>: unreadable image \(its data stops early"):
        load_image(cut.read_bytes())
    # a 16x16 picture whose header says 8000x8000: refused before 64 MP of grey are decoded
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG")
    d = bytearray(buf.getvalue())
    s = d.index(b"\xff\xc0")
    d[s + 5 : s + 9] = (8000).to_bytes(2, "big") * 2
    (tmp_path / "big.jpg").write_bytes(bytes(d))
    with pytest.raises(ImageError, match=r"big\.jpg: unreadable image \(its header declares 8000x8000 pixels"):
        load_image(tmp_path / "big.jpg")
    assert not any("mid-grey" in n for n in load_image(good).notes)  # a whole photo: nothing said


def test_load_truncated_images_set_by_a_notebook_does_not_let_a_cut_file_through(shared_dir, tmp_path):
    """With Pillow's LOAD_TRUNCATED_IMAGES = True (common in training notebooks) a cut JPEG was
    analysed with its missing half filled in, unsaid. The flag is the caller's: restored after."""
    from PIL import ImageFile

    good = _photo_jpeg(shared_dir)
    (tmp_path / "half.jpg").write_bytes(good[: len(good) // 2])
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageError, match=r"half\.jpg: unreadable image \(file is truncated\)"):
            load_image(tmp_path / "half.jpg")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def test_a_picture_with_its_own_grey_background_is_read_and_a_cut_behind_a_trailer_refused(shared_dir, tmp_path):
    """Exact mid-grey at the end of a drawing is the picture's own (refused for a while as a cut:
    a grey background after a dark square). A cut whose file has bytes after its end marker
    (a camera's trailer) was only noted: the probe now goes before the image's own end marker.
    A stray byte between two segments (libjpeg skips it) is skipped by the walk too (it made
    the cut undecidable: only noted)."""
    x = np.full((64, 64, 3), 128, np.uint8)
    x[16:48, 16:48] = 40
    Image.fromarray(x).save(tmp_path / "drawing.jpg", quality=95)
    li = load_image(tmp_path / "drawing.jpg")
    assert li.rgb.shape == (64, 64, 3) and not any("mid-grey" in n for n in li.notes), li.notes
    good = _photo_jpeg(shared_dir)
    assert load_image(good + b"a camera's trailer").notes == load_image(good).notes
    cut = good[: len(good) // 2] + b"\xff\xd9"
    with pytest.raises(ImageError, match=r"<bytes>: unreadable image \(its data stops early"):
        load_image(cut + b"a camera's trailer")
    dqt = cut.index(b"\xff\xdb")
    with pytest.raises(ImageError, match=r"<bytes>: unreadable image \(its data stops early"):
        load_image(cut[:dqt] + b"\x00" + cut[dqt:])
    assert load_image(good[:dqt] + b"\x00" + good[dqt:]).notes == load_image(good).notes


def test_a_progressive_jpeg_cut_short_is_refused_or_noted(shared_dir, tmp_path):
    """A progressive JPEG cut and closed with its end marker decoded silently: blurred or
    colourless after the cut (its last scan's missing blocks), or wholly without the detail of
    scans that never came. Cut inside a scan: refused; between two scans: read, with a note
    naming what was not sent; complete files of every kind: read as before, nothing said."""
    a = np.asarray(Image.open(shared_dir / "images" / "pristine1.jpg").convert("RGB"))[:200, :240]

    def prog(img: Image.Image, **kw: object) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", progressive=True, **kw)
        return buf.getvalue()

    whole = prog(Image.fromarray(a), quality=90)
    for complete in (
        whole,
        whole + b"a camera's trailer",
        prog(Image.fromarray(a), quality=95, subsampling=0, optimize=True),
        prog(Image.fromarray(a[..., 1]), quality=80),
        prog(Image.fromarray(np.full((64, 64, 3), 128, np.uint8))),
    ):
        assert not any("progressive" in n for n in load_image(complete).notes)
    (tmp_path / "cut.jpg").write_bytes(whole[: int(len(whole) * 0.8)] + b"\xff\xd9")
    for src in (tmp_path / "cut.jpg", (tmp_path / "cut.jpg").read_bytes()):
        with pytest.raises(
            ImageError, match=r"(cut\.jpg|<bytes>): unreadable image \(its data stops early: a progressive"
        ):
            load_image(src)
    last_scan = whole.rindex(b"\xff\xda")
    li = load_image(whole[:last_scan] + b"\xff\xd9")
    assert any(
        "progressive scans stop before the picture's full detail (frequencies not fully sent: luma 63/64)" in n
        for n in li.notes
    ), li.notes


def test_a_jpeg_cut_just_before_a_restart_marker_is_refused(shared_dir):
    """Cut exactly before a restart marker (as photo-recovery tools salvage files) and closed,
    the probe's bytes were read as junk before the next marker, so the file looked complete:
    its grey fill (baseline) or missing detail (progressive) was analysed, unsaid. The last
    scan's restart markers are now counted against its blocks; complete files with restart
    markers of every kind read as before."""
    import re

    im = Image.open(shared_dir / "images" / "pristine1.jpg").convert("RGB").resize((320, 240))
    for progressive in (False, True):
        for rst in ({"restart_marker_rows": 1}, {"restart_marker_blocks": 7}):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=90, progressive=progressive, **rst)
            d = buf.getvalue()
            assert load_image(d).notes == ()
            last = d.rindex(b"\xff\xda")
            marks = [m.start() for m in re.finditer(rb"\xff[\xd0-\xd7]", d) if m.start() > last]
            with pytest.raises(ImageError, match=r"<bytes>: unreadable image \(its data stops early"):
                load_image(d[: marks[len(marks) // 2]] + b"\xff\xd9")


def test_a_turned_tiff_opened_by_the_caller_is_read_on_its_stored_grid(tmp_path):
    """Image.open(path) of an uncompressed grey TIFF with EXIF orientation 6, passed as a PIL image:
    Pillow mapped it at the turned size and its pixels came out scrambled (neither stored nor
    turned), noted 'analysed as stored'."""
    a = np.random.default_rng(2).integers(0, 256, (64, 96), dtype=np.uint8)
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "g6.tif", exif=ex)
    by_path = load_image(tmp_path / "g6.tif")
    with Image.open(tmp_path / "g6.tif") as im:
        by_pil = load_image(im)
    np.testing.assert_array_equal(by_pil.rgb, by_path.rgb)
    np.testing.assert_array_equal(by_pil.rgb[..., 0], a)
    assert by_pil.exif_orientation == 6 and by_pil.notes == by_path.notes


def test_bytes_get_the_reason_the_same_file_gets(tmp_path, shared_dir):
    """A cut TIFF given as bytes (a casebook upload) was 'not an image file': the reason was read
    by reopening the *name*, which is no file (or, worse, another file of that name)."""
    a = np.asarray(Image.open(shared_dir / "images" / "pristine1.jpg").convert("RGB"))[:120, :160].copy()
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "TIFF", compression="tiff_lzw")
    cut = buf.getvalue()[: int(len(buf.getvalue()) * 0.6)]
    (tmp_path / "cut.tif").write_bytes(cut)
    (tmp_path / "upload.tif").write_bytes(b"unrelated")  # a file of the name given: not read
    with pytest.raises(ImageError) as by_path:
        load_image(tmp_path / "cut.tif")
    for kw in ({}, {"name": str(tmp_path / "upload.tif")}):
        with pytest.raises(ImageError) as by_bytes:
            load_image(cut, **kw)
        assert (
            str(by_bytes.value).split(": ", 1)[1]
            == str(by_path.value).split(": ", 1)[1]
            == ("unreadable image (file is truncated)")
        )


def test_a_tiff_of_tens_of_thousands_of_frames_is_counted_in_a_moment():
    """Pillow's n_frames grows with the square of the frames: 40 000 minimal frames (2 MB) took
    19 s on every read, a 9 MB file minutes. The directories are walked from the file, capped."""
    import struct
    import time

    from trufor_lab.common.image_files import MAX_TIFF_FRAMES, frame_count
    from trufor_lab.forensics.provenance import read_provenance

    def ifd(entries, nxt):
        body = b"".join(struct.pack("<HHII", t, ty, 1, v) for t, ty, v in entries)
        return struct.pack("<H", len(entries)) + body + struct.pack("<I", nxt)

    full = [
        (256, 3, 64),
        (257, 3, 64),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),
        (277, 3, 1),
        (278, 4, 64),
        (279, 4, 4096),
    ]
    small = [(256, 3, 1), (257, 3, 1), (273, 4, 8), (279, 4, 1)]
    d = bytearray(b"II*\0" + struct.pack("<I", 8 + 4096)) + bytearray(b"\x80" * 4096)
    pos = len(d) + len(ifd(full, 0))
    d += ifd(full, pos)
    n = 40_000
    for k in range(n):
        d += ifd(small, pos + 54 if k < n - 1 else 0)
        pos += 54
    t = time.perf_counter()
    li = load_image(bytes(d))
    p = read_provenance(bytes(d))
    assert time.perf_counter() - t < 10  # was over 30 s for the two reads
    assert li.rgb.shape == (64, 64, 3) and li.notes == (f"first of more than {MAX_TIFF_FRAMES} frames",)
    assert p.frames == MAX_TIFF_FRAMES + 1
    frames = [Image.fromarray(np.full((8, 8), i, np.uint8)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert frame_count(im) == 3 and im.tell() == 0


def test_a_cut_jpeg_opened_by_the_caller_is_refused_and_bytes_paths_are_paths(shared_dir, tmp_path):
    """The cut-JPEG checks ran for paths and bytes only: Image.open(path) of the same file was read
    with its grey fill, unsaid. A TIFF opened with a bytes path was then 'not an image file'."""
    good = _photo_jpeg(shared_dir)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    with Image.open(cut) as im, pytest.raises(ImageError, match=r"cut\.jpg: unreadable image \(its data stops early"):
        load_image(im)
    # opened from bytes (an upload, a download in memory): read from them, checked the same way
    with Image.open(io.BytesIO(cut.read_bytes())) as im:
        with pytest.raises(ImageError, match=r"<JpegImageFile>: unreadable image \(its data stops early"):
            load_image(im)
    # a PNG from bytes whose pixel data ends early (Pillow leaves the rows black)
    w, h = 16, 16
    raw = (b"\x00" + bytes(range(w * 3))) * (h // 2)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    half = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
    with Image.open(io.BytesIO(half + _png_chunk(b"IEND", b""))) as im:
        with pytest.raises(ImageError, match=r"unreadable image \(pixel data ends early"):
            load_image(im)
    # what the caller asked Pillow for is kept: a JPEG drafted at half size is not read whole
    with Image.open(io.BytesIO(good)) as im:
        im.draft("RGB", (100, 100))
        assert load_image(im).rgb.shape == (100, 100, 3)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "t.tif")
    with Image.open(os.fsencode(tmp_path / "t.tif")) as im:
        li = load_image(im)
    assert li.rgb.shape == (40, 40, 3) and li.name == str(tmp_path / "t.tif")


def test_load_truncated_images_does_not_let_a_cut_mask_or_provenance_through(tmp_path):
    """The pin covered load_image only: a cut PNG mask read with its lower half empty (F1 wrong,
    unsaid) and provenance lost its 'could not be fully decoded' problem."""
    from PIL import ImageFile

    from trufor_lab.forensics.provenance import read_provenance
    from trufor_lab.lab.datasets import DatasetError, read_mask

    m = np.zeros((64, 64), np.uint8)
    m[20:60, 20:40] = 255
    buf = io.BytesIO()
    Image.fromarray(m).save(buf, "PNG")
    (tmp_path / "mask.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(DatasetError, match="truncated"):
            read_mask(tmp_path / "mask.png")
        a = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
        jb = io.BytesIO()
        Image.fromarray(a).save(jb, "JPEG", quality=90)
        p = read_provenance(jb.getvalue()[: len(jb.getvalue()) // 2])
        assert any("could not be fully decoded" in x for x in p.problems), p.problems
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def test_an_icon_is_read_as_an_icon_not_as_a_tga(tmp_path):
    """An .ico was opened as a TGA (tried first, it has no signature) and refused as unreadable."""
    a = _rgb(160, 160)  # noisy: its stored size then reads as a TGA pixel depth of 1
    path = _save(Image.fromarray(a), tmp_path / "a.ico", sizes=[(160, 160)])
    assert path.stat().st_size > 65536
    r = load_image(path)
    assert r.rgb.shape == a.shape and np.array_equal(r.rgb, a)
    assert read_provenance(path).format == "ICO"


def test_an_icon_of_several_sizes_says_which_one_is_analysed(tmp_path):
    """An .ico holding 16x16, 32x32 and 64x64 was analysed at 64x64 without a word (a multi-page
    file says "first of 3 frames"); the note names the size read and the others."""
    a = _rgb(64, 64)
    path = _save(Image.fromarray(a), tmp_path / "a.ico", sizes=[(16, 16), (32, 32), (64, 64)])
    r = load_image(path)
    assert np.array_equal(r.rgb, a)
    assert r.notes == ("the 64x64 image of the 3 in the icon (64x64, 32x32, 16x16): the others not analysed",)
    with Image.open(path) as im:  # a caller's choice of size is what is read, and said
        im.size = (32, 32)
        r = load_image(im)
    assert r.rgb.shape == (32, 32, 3) and r.notes[0].startswith("the 32x32 image of the 3 in the icon")
    one = _save(Image.fromarray(a), tmp_path / "one.ico", sizes=[(64, 64)])
    assert load_image(one).notes == ()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_xmp_orientation_is_not_taken_for_an_exif_one(tmp_path, fmt):
    """Pillow's getexif fills in XMP's tiff:Orientation when a file has no EXIF: the picture was
    noted (and shown) turned 90°, while browsers follow EXIF only and show it as stored."""
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    a = _rgb()
    path = _save(Image.fromarray(a), tmp_path / f"a.{fmt.lower()}", fmt, xmp=xmp, quality=95)
    r = load_image(path, exif_transpose=True)
    assert r.exif_orientation is None and r.rgb.shape == a.shape
    assert not any("turned" in n or "orientation" in n for n in r.notes)


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    brands = major + b"\0\0\0\0" + b"".join(compatible)
    box = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands
    return box + b"\0\0\0\x10meta" + bytes(200)


@pytest.mark.parametrize(
    "brands", [(b"heic", b"mif1", b"heic"), (b"mif1", b"mif1", b"heix"), (b"msf1", b"msf1", b"hevc")]
)
def test_a_heic_photo_is_named_with_what_reading_it_needs(tmp_path, brands):
    """An iPhone's HEIC photo was 'not an image file (unrecognised format, ...)', in analysis and
    in provenance, which left the user without a next step."""
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(_ftyp(*brands))
    with pytest.raises(ImageError) as e:
        load_image(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "HEIC/HEIF" in msg and "pillow-heif" in msg and "\n" not in msg
    with pytest.raises(ValueError) as e2:
        read_provenance(path)
    assert msg.split(": ", 1)[1] in str(e2.value)


@pytest.mark.parametrize(
    "fmt, mode, named",
    [("XBM", "1", "XBM (X11 Bitmap)"), ("DDS", "RGB", "DDS (DirectDraw Surface)"), ("MSP", "1", "MSP (Windows Paint)")],
)
def test_an_image_in_a_format_not_read_here_is_named(tmp_path, fmt, mode, named):
    """A DDS texture, an X bitmap, a Sun raster ... (formats Pillow opens, not read here) were
    'not an image file (unrecognised format, or one not read here)': no hint what to convert."""
    path = tmp_path / "picture.bin"
    Image.fromarray(_rgb(16, 16)).convert(mode).save(path, format=fmt)
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: an image in a format not read here: {named}; convert it to PNG"


def test_a_video_in_the_same_container_is_not_called_a_heic_photo(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(_ftyp(b"isom", b"isom", b"mp41"))
    with pytest.raises(ImageError, match="not an image file"):
        load_image(path)


def _tiff_with(path, tags: dict[int, tuple[int, object]], a: np.ndarray):
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, (kind, value) in tags.items():
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    Image.fromarray(a).save(path, format="TIFF", tiffinfo=ifd)
    return path


def test_a_dng_is_read_as_its_preview_and_says_so(tmp_path):
    """A DNG raw file was analysed as its small embedded preview, as if it were the photo."""
    a = _rgb(24, 32)
    path = _tiff_with(tmp_path / "a.dng", {254: (4, 1), 0xC612: (1, b"\x01\x04\x00\x00")}, a)
    r = load_image(path)
    assert np.array_equal(r.rgb, a)
    assert any("raw (DNG)" in n and "preview (32x24)" in n for n in r.notes)


def test_a_tiff_marked_reduced_resolution_says_so_and_a_plain_one_does_not(tmp_path):
    a = _rgb(24, 32)
    r = load_image(_tiff_with(tmp_path / "a.tif", {254: (4, 1)}, a))
    assert any("reduced-resolution" in n for n in r.notes)
    plain = load_image(_tiff_with(tmp_path / "b.tif", {254: (4, 0)}, a))
    assert not any("reduced" in n or "DNG" in n for n in plain.notes)


def _planar_tiff(rows_per_strip: int, w: int = 4, h: int = 6, rows: int = 2) -> bytes:
    """An 8-bit RGB TIFF stored plane by plane in strips of ``rows`` rows, its RowsPerStrip tag
    set to ``rows_per_strip``."""
    n = 3 * -(-h // rows)
    strip = bytes(range(w * rows))
    ifd_at = 8 + len(strip) * n
    offsets_at = ifd_at + 2 + 12 * 11 + 4
    counts_at, bits_at = offsets_at + 4 * n, offsets_at + 8 * n
    entries = [
        (256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, n, offsets_at), (277, 3, 1, 3), (278, 4, 1, rows_per_strip), (279, 4, n, counts_at),
        (284, 3, 1, 2), (339, 3, 1, 1),
    ]  # fmt: skip
    out = b"II*\x00" + struct.pack("<I", ifd_at) + strip * n + struct.pack("<H", len(entries))
    out += b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    out += struct.pack(f"<{n}I", *(8 + k * len(strip) for k in range(n)))
    return out + struct.pack(f"<{n}I", *([len(strip)] * n)) + struct.pack("<3H", 8, 8, 8)


def test_a_damaged_tiff_of_plain_rgb_is_called_damaged_not_an_unsupported_format(tmp_path):
    """A TIFF whose RowsPerStrip overflows was refused as 'a TIFF with a sample format not
    supported here (8-bit unsigned, 3 samples per pixel)': plain RGB, which is read everywhere."""
    assert load_image(_planar_tiff(2)).rgb.shape == (6, 4, 3)  # the same file, well formed, reads
    path = tmp_path / "a.tif"
    path.write_bytes(_planar_tiff(2**31 + 1))
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: a damaged TIFF (its RowsPerStrip 2147483649 is out of range)"


def test_a_tiff_in_a_compression_pillow_cannot_decode_names_it(tmp_path):
    """A WebP-compressed TIFF was 'unreadable image (decoder error -2)'."""
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    at = data.find(struct.pack("<HHIH", 259, 3, 1, 1))
    assert at > 0
    data[at + 8 : at + 10] = struct.pack("<H", 50001)  # Compression: WebP (the data stays raw)
    path = tmp_path / "a.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: a TIFF compressed with WebP, which this Pillow/libtiff cannot decode"
    # a compression Pillow does not know at all: it refuses to open the file ('a damaged TIFF
    # (its layout cannot be read: SyntaxError: 34712)' was said of a JPEG 2000 TIFF)
    for code, words in ((34712, "JPEG 2000"), (60000, "compression scheme 60000")):
        data[at + 8 : at + 10] = struct.pack("<H", code)
        path.write_bytes(bytes(data))
        with pytest.raises(ImageError) as e:
            load_image(path)
        assert str(e.value) == f"{path}: a TIFF compressed with {words}, which this Pillow/libtiff cannot decode"
