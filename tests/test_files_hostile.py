"""The casebook widget under what users do with files: the same file uploaded again, and errors
for a typed path that already name it."""

from __future__ import annotations

import io
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
