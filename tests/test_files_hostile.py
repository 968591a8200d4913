"""The casebook widget under what users do with files: the same file uploaded again, and errors
for a typed path that already name it."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from trufor_lab.casebook.casebook import Casebook


@pytest.fixture(scope="module")
def np_model(shared_dir):
    """Noiseprint++ alone (what load() gives without a TruFor checkpoint): fast."""
    from trufor_lab.inference.load import load_noiseprint

    return load_noiseprint(shared_dir / "weights" / "noiseprint++.th", device="cpu")


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _entry(name: str, data: bytes) -> dict:
    stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)  # the same file: every field the same
    return {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": stamp}


def test_the_same_file_uploaded_again_is_analyzed_again(np_model, tmp_path):
    """After a typed path showed another image, uploading the first file again did nothing: the
    upload's value had not changed, so no event fired, and the tabs kept the typed image."""
    cb = Casebook(np_model, classic=False)
    data = _png(0)
    cb.upload.value = (_entry("x.png", data),)
    assert cb.error is None and cb.result.name == "x.png"
    assert not cb.upload.value  # emptied once handled
    other = tmp_path / "typed.png"
    other.write_bytes(_png(1))
    cb.path_text.value = str(other)
    cb._on_path()
    assert cb.error is None and cb.result.name == "typed.png"
    cb.upload.value = (_entry("x.png", data),)
    assert cb.error is None and cb.result.name == "x.png" and "x.png" in cb.tab_html[0].value
    cb.upload.value = (_entry("bad.png", b"not an image"),)  # a failed upload is emptied too
    assert cb.error.startswith("bad.png: ") and not cb.upload.value and cb.result.name == "x.png"


def test_an_error_for_a_typed_path_names_the_file_once(np_model, tmp_path):
    """The error read 'bad.png: /path/to/bad.png: not an image file ...': the name was put
    before a message that already started with the path."""
    cb = Casebook(np_model, classic=False)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cb.path_text.value = str(bad)
    cb._on_path()
    assert cb.error.startswith(f"{bad}: not an image file"), cb.error
    good = tmp_path / "good.png"
    good.write_bytes(_png(0))
    cb.analyze_path(good)
    cb.compare_text.value = str(bad)
    cb._on_compare()  # the other version's path, from the Compare tab
    assert cb.error.startswith(f"{bad}: not an image file"), cb.error
    cb.upload.value = (_entry("up.png", b"not an image"),)  # an upload has no path: its name, once
    assert cb.error.startswith("up.png: not an image file"), cb.error


def test_library_errors_are_one_line_whatever_the_file_name(tmp_path):
    """A newline or terminal escape in a file name reached ImageError / CheckpointError raw: a
    notebook showed a two-line message (the CLI escaped it, the library did not)."""
    from trufor_lab.inference.load import load_trufor
    from trufor_lab.inference.preprocess import ImageError, load_image
    from trufor_lab.model import CheckpointError

    bad = tmp_path / "viral\nphoto\x1b[2J.png"
    bad.write_bytes(b"not an image, not a checkpoint")
    for fn, kind in ((load_image, ImageError), (load_trufor, CheckpointError)):
        with pytest.raises(kind) as e:
            fn(bad)
        text = str(e.value)
        assert "\n" not in text and "\x1b" not in text, text
        assert "viral\\nphoto\\x1b[2J.png" in text, text


def test_pillows_own_log_lines_stay_off_the_terminal(tmp_path):
    """A TIFF declaring 2048 samples a pixel printed Pillow's 'More samples per pixel than can
    be decoded: 2048' (a log line naming no file) before the one-line error."""
    import io
    import struct

    from trufor_lab.forensics.provenance import read_provenance
    from trufor_lab.inference.preprocess import ImageError, load_image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack("<H", data[entry : entry + 2])[0] == 277:  # SamplesPerPixel
            struct.pack_into("<H", data, entry + 8, 2048)
    path = tmp_path / "spp.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="2048 samples per pixel"):
        load_image(path)
    with pytest.raises(ValueError, match="spp.tif"):
        read_provenance(path)
    # pytest's log capture hides the line here: a program that configured no logging
    code = (
        "import sys\n"
        "from trufor_lab.inference.preprocess import load_image\n"
        "from trufor_lab.forensics.provenance import read_provenance\n"
        "for read in (load_image, read_provenance):\n"
        "    try:\n"
        "        read(sys.argv[1])\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.count("spp.tif") == 2


def _damaged_deflate_tiff(path):
    """A Deflate-compressed TIFF whose compressed strip is garbage: libtiff prints its own error
    ('ZIPDecode: Decoding error ...') on file descriptor 2, naming Pillow's 'tempfile.tif'."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)).save(
        buf, "TIFF", compression="tiff_adobe_deflate"
    )
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as im:
        start, count = im.tag_v2[273][0], im.tag_v2[279][0]
    data[start : start + count] = bytes(range(256)) * (count // 256) + bytes(count % 256)
    path.write_bytes(bytes(data))
    return path


def test_libtiffs_own_lines_stay_off_the_terminal_and_its_reason_is_the_error(tmp_path):
    """libtiff wrote 'tempfile.tif: ...' lines (a file that does not exist) on the terminal
    before the one-line error, which said only 'decoder error -2'."""
    path = _damaged_deflate_tiff(tmp_path / "scan.tif")
    code = (
        "import sys\n"
        "from trufor_lab.inference.preprocess import load_image\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.startswith(f"{path}: unreadable image (ZIPDecode: "), p.stdout
    assert "decoder error" not in p.stdout and p.stdout.count("\n") == 1


def test_the_terminal_is_given_back_whatever_happens_while_a_decoder_is_heard():
    """File descriptor 2 is pointed back where it was on leaving, an exception included, and
    nested captures each keep what was written while they ran."""
    import os

    from trufor_lab.common.native_stderr import native_stderr_kept

    before = os.fstat(2)
    with pytest.raises(KeyError):
        with native_stderr_kept() as outer:
            os.write(2, b"tempfile.tif: one\n")
            with native_stderr_kept() as inner:
                os.write(2, b"two\n")
            raise KeyError
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert outer == ["tempfile.tif: one", "two"] and inner == ["two"]


def test_a_decoders_line_is_never_given_to_another_threads_file():
    """Two threads decoding at once share file descriptor 2: a line written while both listen
    cannot be told apart, so neither takes it (a damaged Deflate TIFF was said to lack WebP
    support, another thread's words); the terminal is given back when the last one leaves."""
    import os
    import threading

    from trufor_lab.common.native_stderr import native_stderr_kept

    before, inside, written, got = os.fstat(2), threading.Event(), threading.Event(), {}

    def other():
        with native_stderr_kept() as lines:
            inside.set()
            written.wait(10)
        got["other"] = lines

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with native_stderr_kept() as lines:
        os.write(2, b"tempfile.tif: WEBP compression support is not configured.\n")
    written.set()
    t.join(10)
    with native_stderr_kept() as alone:
        os.write(2, b"mine\n")
    after = os.fstat(2)
    assert lines == [] and got["other"] == [] and alone == ["mine"]
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_an_interrupt_while_the_capture_is_read_back_still_gives_the_terminal_back(monkeypatch):
    """A Ctrl-C arriving while a capture's text was read back left file descriptor 2 pointed at
    the temporary file for the rest of the process, and every later capture joined the stale
    one: the terminal never saw another error line."""
    import os

    from trufor_lab.common import native_stderr

    def interrupted(*args):
        raise KeyboardInterrupt

    before = os.fstat(2)
    monkeypatch.setattr(native_stderr, "_read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with native_stderr.native_stderr_kept():
            os.write(2, b"tempfile.tif: one\n")
    monkeypatch.undo()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    with native_stderr.native_stderr_kept() as lines:
        os.write(2, b"mine\n")
    assert lines == ["mine"]


def _png_with_exif_chunk(n_tags: int) -> bytes:
    """A 64x64 PNG whose eXIf chunk holds ``n_tags`` tags, each claiming 256 MB of data."""
    import struct
    import zlib

    entries = b"".join(struct.pack("<HHII", 0x1000 + i, 1, 0x10000000, 8) for i in range(n_tags))
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", n_tags) + entries + struct.pack("<I", 0)
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    return data[:33] + chunk + data[33:]  # after IHDR


def test_a_file_that_makes_its_decoder_warn_thousands_of_times_says_so_in_a_few_lines(tmp_path):
    """60 000 broken EXIF tags in a 730 KB PNG: a note per warning, compared with every note
    before it (3.5 minutes for a 64x64 picture), and a problem row each in the report (29 MB of
    HTML; its PDF never finished). Each kind is said once now, with how many more there were."""
    from trufor_lab.forensics.provenance import read_provenance
    from trufor_lab.inference.preprocess import load_image

    path = tmp_path / "flood.png"
    path.write_bytes(_png_with_exif_chunk(3000))
    notes = load_image(path).notes
    assert len(notes) <= 8 and any("(and 2999 more like it)" in n for n in notes), notes
    problems = read_provenance(path).problems
    assert len(problems) <= 40 and any("(and 2999 more like it)" in p for p in problems), problems
    # one file's many kinds of warnings: the first 39 kinds, then one line counting the rest
    from trufor_lab.common.errors import grouped

    lines = [f"kind {chr(65 + k // 26)}{chr(65 + k % 26)} item {i}" for k in range(60) for i in range(3)]
    assert grouped(lines, 40)[-1] == "… and 63 more of 21 other kinds, not listed"
    assert grouped(lines, 40)[0] == "kind AA item 0 (and 2 more like it)" and len(grouped(lines, 40)) == 40


def _scan_bomb(repeats: int) -> bytes:
    """A 64x64 progressive JPEG whose last scans (from the last table before them) come again
    ``repeats`` times: what makes a 300 KB file of a large picture decode for minutes."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=50)
    data = buf.getvalue()
    assert data.endswith(b"\xff\xd9")
    tail = data[data.rindex(b"\xff\xc4") : -2]  # a Huffman table, a scan header, its coded data
    return data[:-2] + tail * repeats + b"\xff\xd9"


def test_a_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded(tmp_path):
    """A 376 KB progressive JPEG of 6000x6000 pixels and 2000 scans (each a few bytes: end-of-band
    runs code a whole band) took 15 s to read and 5 s more for its provenance; a 2 MB one minutes,
    in every tab of the casebook. libjpeg cannot be told to stop, so the scans are counted first."""
    from trufor_lab.cli import main
    from trufor_lab.forensics.provenance import read_provenance
    from trufor_lab.inference.preprocess import ImageError, load_image

    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(_scan_bomb(600))
    for src in (bomb, bomb.read_bytes(), Image.open(bomb)):
        with pytest.raises(ImageError) as e:
            load_image(src)
        assert "scans" in str(e.value) and "\n" not in str(e.value), str(e.value)
    prov = read_provenance(bomb)
    assert any("not decoded" in p and "scans" in p for p in prov.problems), prov.problems
    # a progressive file of the usual ten scans, and one of a few hundred, still read
    assert load_image(_scan_bomb(0)).rgb.shape == (64, 64, 3)
    assert load_image(_scan_bomb(200)).rgb.shape == (64, 64, 3)
    with pytest.raises(ImageError, match=r"^.*bomb\.jpg: refused: a JPEG of \d+ scans"):
        load_image(bomb)
    good = tmp_path / "good.png"
    good.write_bytes(_png(3))
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path), "-o", str(out), "-q"]) == 1
    assert (out / "good.png.npz").exists() and not (out / "bomb.jpg.npz").exists()


def test_a_png_of_many_text_chunks_is_parsed_by_pillow_once(tmp_path, monkeypatch):
    """400 000 text chunks before the pixels (8 MB): 2 s for each parse of Pillow's, and the
    reader parsed the file twice (a second open, for Pillow's checksum check): 3.9 s a read, four
    reads in the casebook. The checksums are checked on the bytes now, as Pillow would."""
    import struct
    import zlib

    from PIL import PngImagePlugin

    from trufor_lab.inference.preprocess import ImageError, load_image

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = _png(4)
    idat, iend = data.index(b"IDAT") - 4, data.index(b"IEND") - 4
    texts = b"".join(chunk(b"tEXt", b"k%d\x00v" % i) for i in range(2000))
    path = tmp_path / "texts.png"
    path.write_bytes(data[:idat] + texts + data[idat:])
    expected = np.asarray(Image.open(io.BytesIO(data)))
    opened = []
    real = PngImagePlugin.PngImageFile._open
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", lambda im: opened.append(1) or real(im))
    assert np.array_equal(load_image(path).rgb, expected)
    assert len(opened) == 1
    monkeypatch.undo()
    # what Pillow's check refused is still refused: a damaged chunk after the pixels, one cut short
    bad = bytearray(data[:iend] + chunk(b"tEXt", b"late\x00note") + data[iend:])
    bad[iend + 10] ^= 1
    cases = {"bad header checksum in b'tEXt'": bytes(bad), "incomplete checksum in b'IDAT'": data[: iend - 2]}
    cases["file is truncated"] = data[: iend - 30]
    for why, damaged in cases.items():
        with pytest.raises(ImageError, match=re.escape(why)):
            load_image(damaged)
