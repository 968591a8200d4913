"""Input and output naming under file names found in the wild: colons (ISO timestamps, camera
and phone tools), backslashes (archives unzipped from Windows) and unreadable folders."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from trufor_lab.common import paths as P
from trufor_lab.common.paths import OutputPathError, expand_inputs, list_images, output_path


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG fake")
    return path


def lock(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unreadable: mode 000, and, for root (whom mode bits do not stop), an
    ``os.scandir`` that refuses it as the system would refuse a user."""
    folder.chmod(0)
    if os.geteuid() == 0:
        real, target = os.scandir, os.path.realpath(folder)

        def scandir(p="."):
            if os.path.realpath(os.fspath(p)) == target:
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(p))
            return real(p)

        monkeypatch.setattr(os, "scandir", scandir)


@pytest.fixture()
def unlock():
    """Give locked folders back their mode so that pytest can clean them up."""
    locked: list[Path] = []
    yield locked
    for f in locked:
        f.chmod(0o755)


@pytest.mark.parametrize("name", ["2024-01-01T10:00:00.jpg", "cam:01/IMG 10:00:00.jpg", "a/b:c.png", "ab:/x.png"])
def test_colons_are_ordinary_characters_on_posix(tmp_path, name, monkeypatch):
    """Any ':' in the first part was refused as a Windows drive: a timestamped file name
    stopped the whole analyze batch with a traceback."""
    monkeypatch.setattr(P, "WINDOWS", False)
    assert output_path(tmp_path, name) == tmp_path.joinpath(*name.split("/")).with_name(name.split("/")[-1] + ".npz")


@pytest.mark.parametrize("name", ["C:/x.png", "C:\\x.png", "c:", "..\\x.png", "\\x.png", "a\\..\\..\\x.png"])
def test_windows_paths_are_still_refused(tmp_path, name, monkeypatch):
    """``\\`` is read as a separator (lists written on Windows), so a drive path or a climb
    written with it leaves the output folder on any system."""
    monkeypatch.setattr(P, "WINDOWS", False)
    with pytest.raises(OutputPathError):
        output_path(tmp_path, name)


@pytest.mark.parametrize("name", ["a/x.png:stream", "a:b.png", "d/c:x.png"])
def test_on_windows_any_colon_is_refused(tmp_path, name, monkeypatch):
    """There a colon names a drive (which resets the joined path) or an alternate data stream."""
    monkeypatch.setattr(P, "WINDOWS", True)
    with pytest.raises(OutputPathError):
        output_path(tmp_path, name)


def test_names_that_differ_only_by_separator_are_refused_naming_both(tmp_path):
    """``a\\b.jpg`` (one file, a backslash in its name) and ``a/b.jpg`` both wrote
    ``out/a/b.jpg.npz``; the clash was looked for on the raw names."""
    one, two = _img(tmp_path / "in" / "a\\b.jpg"), _img(tmp_path / "in" / "a" / "b.jpg")
    _img(tmp_path / "in" / "c.jpg")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert [n for _, n in pairs] == ["c.jpg"]
    assert len(problems) == 2  # one line per file: a count of problem lines counts the files refused
    for line, first in zip(sorted(problems), sorted([str(one), str(two)])):
        assert line.startswith(f"{first}: would write the same output (a/b.jpg) as "), line
        assert str(one) in line and str(two) in line


@pytest.mark.parametrize(
    "names",
    [
        ("Photo.JPG", "photo.jpg"),
        ("Trip/a.png", "trip/a.png"),
        ("caf\u00e9.png", "cafe\u0301.png"),  # composed and decomposed é: one name on macOS
        ("\u00c9T\u00c9.png", "\u00e9t\u00e9.png"),  # ÉTÉ and été
    ],
)
def test_names_that_differ_only_by_case_are_refused_naming_both(tmp_path, names, monkeypatch):
    """Photo.JPG and photo.jpg wrote two outputs that are one file on a case-insensitive disk
    (macOS, Windows): the second replaced the first and the summary said "2 analyzed"."""
    monkeypatch.setattr(P, "CASE_INSENSITIVE_DISKS", True)
    files = [_img(tmp_path / "in" / n) for n in names]
    _img(tmp_path / "in" / "other.png")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert [n for _, n in pairs] == ["other.png"]
    assert len(problems) == 2
    for f in files:
        (line,) = [p for p in problems if p.startswith(f"{f}: ")]
        assert all(str(g) in line for g in files), line
        assert "differs only by letter case or Unicode form" in line
        assert "would share one output on case-insensitive disks" in line


def test_the_disk_is_asked_whether_it_folds_letter_case(tmp_path, monkeypatch):
    """An output folder on a disk that folds case, on Linux (a FAT stick, an SMB share), was
    taken as keeping 'Photo.JPG' and 'photo.jpg' apart; the probe (a hidden file looked up by its
    name in upper case) leaves nothing behind. Such a disk is simulated here by a link from the
    upper-case name to the probe."""
    import tempfile

    monkeypatch.setattr(P, "CASE_INSENSITIVE_DISKS", False)
    assert P.folds_case(tmp_path / "not" / "yet") is False and os.listdir(tmp_path) == []
    real = tempfile.mkstemp

    def mkstemp(dir, prefix):  # noqa: A002 - tempfile's own name
        fd, probe = real(dir=dir, prefix=prefix)
        head, name = os.path.split(probe)
        os.symlink(name, os.path.join(head, name.upper()))
        return fd, probe

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert P.folds_case(tmp_path / "out") is True
    assert [f for f in os.listdir(tmp_path) if f.islower()] == []  # the probe itself removed
    for n in ("Photo.JPG", "photo.jpg"):
        _img(tmp_path / "in" / n)
    pairs, problems = expand_inputs([str(tmp_path / "in")], output=tmp_path / "out")
    assert pairs == [] and len(problems) == 2
    assert all(
        "would be the same file on this disk (Photo.JPG and photo.jpg" in p or "(photo.jpg and Photo.JPG" in p
        for p in problems
    ), problems


def test_a_folding_disk_that_numbers_each_name_apart_is_seen_to_fold(tmp_path, monkeypatch):
    """A disk that folds case but gives each name looked up its own inode number (a FUSE mount
    without stable inode numbers, such as an SMB share opened through gvfs) answers the
    upper-case name with 'another' file: the probe compared inodes and took it as keeping case apart (Photo.JPG and
    photo.jpg written over each other, the second refused after its analysis). Simulated here by a
    second empty file made under the upper-case name."""
    import tempfile

    from trufor_lab.common.files import folds_case

    real = tempfile.mkstemp

    def mkstemp(dir, prefix):  # noqa: A002 - tempfile's own name
        fd, probe = real(dir=dir, prefix=prefix)
        head, name = os.path.split(probe)
        Path(head, name.upper()).touch()
        return fd, probe

    assert folds_case(tmp_path) is False  # this disk keeps case apart
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert folds_case(tmp_path) is True
    assert [f for f in os.listdir(tmp_path) if f.islower()] == []  # the probe itself removed


def test_no_probe_file_is_made_where_every_disk_is_taken_as_folding_case(tmp_path, monkeypatch):
    """macOS and Windows (``CASE_INSENSITIVE_DISKS``): nothing to ask the disk. The guard was lost
    when the probe moved to files.py: eval and distributed-analyze made (and removed) a
    probe file in the output folder there, where clash_key folds case whatever the disk says."""
    import tempfile

    from trufor_lab.common.paths import folds_case
    from trufor_lab.inference.distributed import work_items
    from trufor_lab.lab.datasets import Dataset, Sample
    from trufor_lab.lab.eval_outputs import output_paths

    made = []
    real = tempfile.mkstemp

    def mkstemp(*a, **k):
        made.append(k.get("prefix"))
        return real(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(P, "CASE_INSENSITIVE_DISKS", True)
    out = tmp_path / "out"
    out.mkdir()
    assert folds_case(out) is True
    for n in ("a.png", "b.png"):
        _img(tmp_path / "in" / n)
    expand_inputs([str(tmp_path / "in")], output=out)
    samples = [SimpleNamespace(id=i, image_path=tmp_path / "in" / f"{i}.png") for i in ("a", "b")]
    work_items(samples, output=out)
    work_items([str(tmp_path / "in")], output=out)
    ds = Dataset(
        "set", tmp_path / "in", [Sample(tmp_path / "in" / f"{i}.png", None, 0, "set", f"{i}.png") for i in "ab"]
    )
    output_paths(out, ds)
    assert made == [] and os.listdir(out) == []


def test_names_that_differ_only_by_case_are_two_outputs_on_case_sensitive_disks(tmp_path, monkeypatch):
    """Linux disks keep Photo.JPG and photo.jpg apart: both are analysed, each into its own output."""
    monkeypatch.setattr(P, "CASE_INSENSITIVE_DISKS", False)
    for n in ("Photo.JPG", "photo.jpg"):
        _img(tmp_path / "in" / n)
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert sorted(n for _, n in pairs) == ["Photo.JPG", "photo.jpg"] and problems == []


def test_dataset_ids_that_differ_only_by_case_are_one_output(tmp_path, monkeypatch):
    from trufor_lab.inference.distributed import work_items

    monkeypatch.setattr(P, "CASE_INSENSITIVE_DISKS", True)

    ids = ["Cam/Photo", "cam/photo", "other"]
    samples = [SimpleNamespace(id=i, image_path=tmp_path / f"{k}.png") for k, i in enumerate(ids)]
    items, problems = work_items(samples)
    assert [n for n, _ in items] == ["Cam/Photo", "other"]
    (line,) = problems
    assert line.startswith(f"{tmp_path / '1.png'}: differs only by letter case or Unicode form from "), line
    assert str(tmp_path / "0.png") in line and "case-insensitive disks" in line


def test_dataset_ids_that_differ_only_by_separator_are_one_output(tmp_path):
    from trufor_lab.inference.distributed import work_items

    samples = [SimpleNamespace(id=i, image_path=tmp_path / f"{k}.png") for k, i in enumerate(["a\\b", "a/b", "c"])]
    items, problems = work_items(samples)
    assert [n for n, _ in items] == ["a\\b", "c"]
    (line,) = problems
    assert line.startswith(f"{tmp_path / '1.png'}: same output name as {tmp_path / '0.png'}"), line


def test_an_unreadable_subfolder_is_an_input_problem(tmp_path, monkeypatch, unlock):
    """Its images were silently left out ('1 analyzed, 0 failed', exit 0)."""
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "sub" / "b.png")
    lock(tmp_path / "in" / "sub", monkeypatch)
    unlock.append(tmp_path / "in" / "sub")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert [n for _, n in pairs] == ["a.png"]
    assert problems == [f"{tmp_path / 'in' / 'sub'}: cannot read folder (permission denied); its images are left out"]
    assert [p.name for p in list_images(tmp_path / "in")] == ["a.png"]  # the plain listing stays a list


def test_an_unreadable_top_folder_says_so(tmp_path, monkeypatch, unlock):
    """It was reported as 'folder holds no images'."""
    _img(tmp_path / "in" / "a.png")
    lock(tmp_path / "in", monkeypatch)
    unlock.append(tmp_path / "in")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert pairs == [] and len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'in'}: cannot read folder (permission denied)"), problems


def test_analyze_counts_an_unreadable_subfolder_as_failed(tmp_path, monkeypatch, unlock, recipe_ckpt, capsys):
    """'1 analyzed, 0 failed', exit 0, while the locked folder's images were never looked at."""
    import numpy as np
    from PIL import Image

    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "sub" / "b.png")
    lock(tmp_path / "in" / "sub", monkeypatch)
    unlock.append(tmp_path / "in" / "sub")
    assert main(["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]) == 1
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped (output exists), 1 failed" in cap.out
    (line,) = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert line == f"error: {tmp_path / 'in' / 'sub'}: cannot read folder (permission denied); its images are left out"


def test_training_photos_refuse_an_unreadable_camera_folder(tmp_path, monkeypatch, unlock):
    """rglob skipped it unsaid: a camera left out of the split changed training without a word.
    AppleDouble companions (``._x.jpg``, metadata) made the scan fail as unreadable images."""
    import numpy as np
    from PIL import Image

    from trufor_lab.training.photos import scan_photos

    for k, cam in enumerate(("canon", "nikon")):  # two photos (identical files are one photo)
        (tmp_path / cam).mkdir()
        Image.fromarray(np.full((80, 96, 3), 120 + k, np.uint8)).save(tmp_path / cam / "a.jpg")
    (tmp_path / "canon" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert [p.camera for p in scan_photos(tmp_path, min_side=64, camera_folders=True)] == [
        "folder:canon",
        "folder:nikon",
    ]
    lock(tmp_path / "nikon", monkeypatch)
    unlock.append(tmp_path / "nikon")
    with pytest.raises(ValueError, match="nikon: cannot read folder"):
        scan_photos(tmp_path, min_side=64, camera_folders=True)


def test_links_to_folders_are_followed_once(tmp_path):
    """A photo library on another disk, linked into the input folder, was left out unsaid; a
    link back up (a loop) and a second link to one folder are searched once."""
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "library" / "b.png")
    (tmp_path / "in" / "library").symlink_to(tmp_path / "library")
    (tmp_path / "in" / "again").symlink_to(tmp_path / "library")
    (tmp_path / "in" / "up").symlink_to(tmp_path / "in")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert problems == []
    assert [n for _, n in pairs] == ["a.png", "again/b.png"]
    (tmp_path / "in" / "sub").mkdir()
    _img(tmp_path / "in" / "sub" / "c.png")
    (tmp_path / "in" / "alias").symlink_to(tmp_path / "in" / "sub")  # sorts first, but is a link
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    named = {n: f for f, n in pairs}
    assert "sub/c.png" in named and named["sub/c.png"] == tmp_path / "in" / "sub" / "c.png"
    assert not any(n.startswith("alias/") for n in named) and problems == []


def test_a_broken_link_with_an_image_name_is_a_problem(tmp_path):
    """A broken link named like a photo was dropped without a word ('1 analyzed, 0 failed')."""
    _img(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.jpg").symlink_to(tmp_path / "gone.jpg")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert [n for _, n in pairs] == ["a.png"]
    assert problems == [f"{tmp_path / 'in' / 'b.jpg'}: broken symbolic link (its target does not exist); left out"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_with_an_image_name_in_a_folder_is_a_problem(tmp_path):
    """A named pipe called c.jpg in a folder was dropped without a word ('1 analyzed, 0 failed'),
    while the same pipe given by name, or a link to it, was said to be left out."""
    from trufor_lab.forensics.provenance import read_provenance

    _img(tmp_path / "in" / "a.png")
    os.mkfifo(tmp_path / "in" / "c.jpg")
    pairs, problems = expand_inputs([str(tmp_path / "in")])
    assert [n for _, n in pairs] == ["a.png"]
    assert problems == [
        f"{tmp_path / 'in' / 'c.jpg'}: not a regular file or folder (a device, pipe or socket); left out"
    ]
    # the provenance reader read the pipe whole: it waited for a writer for ever (/dev/zero: ever more memory)
    with pytest.raises(ValueError, match=r"c\.jpg: not a regular file or folder \(a device, pipe or socket\)$"):
        read_provenance(tmp_path / "in" / "c.jpg")
    with pytest.raises(ValueError, match=r"in: is a folder, not an image$"):
        read_provenance(tmp_path / "in")


@pytest.mark.parametrize("pattern", ["in/**/*.png", "in/*/*.png", "in/s*/*.png"])
def test_a_glob_says_which_folders_it_could_not_read(tmp_path, monkeypatch, unlock, pattern):
    """glob.glob skips a folder it cannot read without a word: its images were left out of a
    pattern as silently as they once were out of a folder."""
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "sub" / "b.png")
    _img(tmp_path / "in" / "ok" / "c.png")
    lock(tmp_path / "in" / "sub", monkeypatch)
    unlock.append(tmp_path / "in" / "sub")
    monkeypatch.chdir(tmp_path)
    pairs, problems = expand_inputs([pattern])
    assert "sub/b.png" not in [n for _, n in pairs]
    assert problems == [f"in/sub: cannot read folder (permission denied); its images are left out of {pattern}"]


def test_a_glob_does_not_blame_folders_it_would_not_search(tmp_path, monkeypatch, unlock):
    _img(tmp_path / "in" / "ok" / "c.png")
    _img(tmp_path / "in" / "sub" / "b.png")
    _img(tmp_path / "in" / ".hidden" / "d.png")
    lock(tmp_path / "in" / "sub", monkeypatch)
    unlock.append(tmp_path / "in" / "sub")
    lock(tmp_path / "in" / ".hidden", monkeypatch)
    unlock.append(tmp_path / "in" / ".hidden")
    monkeypatch.chdir(tmp_path)
    for pattern in ("in/ok/*.png", "in/o*/*.png"):
        pairs, problems = expand_inputs([pattern])
        assert [f.name for f, _ in pairs] == ["c.png"] and problems == [], (pattern, problems)
    _, problems = expand_inputs(["in/**/*.png"])  # a wildcard does not enter a dot folder, as in glob
    assert problems == ["in/sub: cannot read folder (permission denied); its images are left out of in/**/*.png"]


def test_a_folder_search_finds_every_format_the_loader_reads(tmp_path):
    """AVIF, TGA, QOI, PCX, SGI, ICO and PSD files in a folder were skipped without a word (the
    folder's summary counted none of them), though each was analysed when named."""
    import numpy as np
    from PIL import Image

    from trufor_lab.common.image_files import FORMATS

    Image.init()
    registered = {e for e, f in Image.registered_extensions().items() if f in FORMATS or f == "MPO"}
    assert registered - P.ALIAS_EXTENSIONS_LEFT_OUT <= P.IMAGE_EXTENSIONS
    rgb = Image.fromarray(np.full((40, 40, 3), 90, np.uint8))
    made = []
    for ext, fmt in ((".tga", "TGA"), (".qoi", "QOI"), (".pcx", "PCX"), (".sgi", "SGI"), (".ico", "ICO")):
        rgb.save(tmp_path / f"x{ext}", format=fmt)
        made.append(tmp_path / f"x{ext}")
    if "AVIF" in Image.SAVE:
        rgb.save(tmp_path / "x.avif", format="AVIF")
        made.append(tmp_path / "x.avif")
    (tmp_path / "dump.rgb").write_bytes(b"\0" * 64)  # a raw dump, not searched for
    assert list_images(tmp_path) == sorted(made)


def test_a_symlink_loop_in_a_folder_does_not_blame_the_folder(tmp_path, monkeypatch):
    """One looping link made any glob over its folder report the whole folder unreadable (and
    the run fail) although every match was analysed; the links themselves went unnamed."""
    _img(tmp_path / "in" / "ok.png")
    (tmp_path / "in" / "l1.png").symlink_to("l2.png")
    (tmp_path / "in" / "l2.png").symlink_to("l1.png")
    monkeypatch.chdir(tmp_path)
    pairs, problems = expand_inputs(["in/ok*.png"])
    assert [n for _, n in pairs] == ["ok.png"] and problems == []
    pairs, problems = expand_inputs(["in/*.png"])
    assert [n for _, n in pairs] == ["ok.png"]
    assert problems == [f"in/{n}: symbolic links form a loop; left out" for n in ("l1.png", "l2.png")]


def test_a_folder_takes_images_saved_without_an_image_suffix_and_counts_the_rest(tmp_path):
    """A fact-checker's downloads ('tweet.jpg_large', an extensionless 'download', an editor's
    'image.png~') were never mentioned: '1 analyzed, 0 skipped, 0 failed'. Files whose first
    bytes are an image's are taken; the others are handed back to be counted. Names starting
    with a dot keep the suffix rule, and a file named directly is taken whatever it holds."""
    src = tmp_path / "in"
    heads = {
        "tweet.jpg_large": b"\xff\xd8\xff\xe0\x00\x10JFIF",
        "download": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "image.png~": b"GIF89a\x01\x00",
        "scan.tif.part": b"MM\x00*\x00\x00\x00\x08",
        "sticker": b"RIFF\x10\x00\x00\x00WEBPVP8 ",
        "old": b"BM" + bytes(12) + (40).to_bytes(4, "little"),
        "notes.txt": b"BMW and other notes, not a bitmap",
        "page.html": b"<html></html>",
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        ".hidden_photo": b"\xff\xd8\xff\xe0",
        "a.jpg": b"\xff\xd8\xff\xe0",
    }
    for name, head in heads.items():
        (src / "sub").mkdir(parents=True, exist_ok=True)
        (src / ("sub" if name == "sticker" else "") / name).write_bytes(head + bytes(40))
    others: list[Path] = []
    pairs, problems = expand_inputs([str(src)], others=others)
    names = ["a.jpg", "download", "image.png~", "old", "scan.tif.part", "sub/sticker", "tweet.jpg_large"]
    assert sorted(n for _, n in pairs) == names and problems == []
    assert sorted(p.name for p in others) == ["notes.txt", "page.html"]
    assert [output_path(tmp_path / "out", "download").name] == ["download.npz"]
    assert [n for _, n in expand_inputs([str(src / "page.html")])[0]] == ["page.html"]  # named: taken as given
    assert [p.name for p in list_images(src)] == ["a.jpg"]  # other listings keep the suffix rule


def test_a_file_without_an_image_suffix_that_cannot_be_read_is_a_problem(tmp_path, monkeypatch):
    """Whether it is an image cannot be told: said, not counted among the files that are not."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "download").write_bytes(b"\xff\xd8\xff\xe0")

    def refused(path):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    monkeypatch.setattr(P, "_first_bytes", refused)
    others: list[Path] = []
    pairs, problems = expand_inputs([str(tmp_path / "in")], others=others)
    assert others == [] and problems[0].startswith(f"{tmp_path / 'in' / 'download'}: cannot read (permission denied)")


def test_every_format_read_here_with_a_signature_is_taken_without_an_image_suffix(tmp_path):
    """Only JPEG, PNG, GIF, WebP, TIFF and BMP were known by their first bytes: an AVIF, JPEG
    2000, PPM or QOI saved as 'download' was left out as 'not an image' though it is read. TGA
    has no signature and stays left out; other files are still not taken."""
    import io

    import numpy as np
    from PIL import Image, features

    from trufor_lab.inference.preprocess import load_image

    src = tmp_path / "in"
    src.mkdir()
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    saved = {"jp2": ("JPEG2000", {}), "j2k": ("JPEG2000", {"no_jp2": True}), "ppm": ("PPM", {}), "qoi": ("QOI", {}),
             "sgi": ("SGI", {}), "pcx": ("PCX", {}), "ico": ("ICO", {}), "tga": ("TGA", {})}  # fmt: skip
    if features.check("avif"):
        saved["avif"] = ("AVIF", {})
    for name, (fmt, opts) in saved.items():
        buf = io.BytesIO()
        rgb.save(buf, fmt, **opts)
        (src / name).write_bytes(buf.getvalue())
        load_image(str(src / name))  # each is read here
    buf = io.BytesIO()
    rgb.convert("L").save(buf, "PPM")
    (src / "pgm").write_bytes(buf.getvalue())
    (src / "notes").write_bytes(b"P1 is the first point of the plan\n")
    (src / "weights").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (src / "zeros").write_bytes(bytes(64))
    # binaries that share PCX's or ICO's few fixed bytes but not the rest of their header
    (src / "pcx_like").write_bytes(
        b"\x0a\x05\x01\x08" + (300).to_bytes(2, "little") + bytes(2) + (20).to_bytes(2, "little") + bytes(70)
    )
    (src / "ico_like").write_bytes(b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x03\x00" + bytes(50))
    others: list[Path] = []
    pairs, problems = expand_inputs([str(src)], others=others)
    taken = sorted(n for n in saved if n != "tga") + ["pgm"]
    assert sorted(n for _, n in pairs) == sorted(taken) and problems == []
    assert sorted(p.name for p in others) == ["ico_like", "notes", "pcx_like", "tga", "weights", "zeros"]


def test_an_input_whose_output_name_is_too_long_fails_before_its_analysis(tmp_path, monkeypatch, recipe_ckpt, capsys):
    """A 250-character input name analysed fully, then failed at the write ("File name too
    long": its output adds '.npz'); now refused first, in one line, and the batch goes on."""
    import numpy as np
    from PIL import Image

    from trufor_lab.cli import main

    long = "y" * 250 + ".png"  # 254 bytes: a file; its output, 258, is not
    assert output_path(tmp_path, "x" * 247 + ".png").name == "x" * 247 + ".png.npz"  # 255: still fine
    with pytest.raises(OutputPathError, match=r"is 258 bytes, more than a file name may have \(255\)"):
        output_path(tmp_path, long)
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    (tmp_path / "in").mkdir()
    for name in (long, "a.png"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "in" / name)
    monkeypatch.setattr("trufor_lab.cli.analyze.analyze", _counting := _Counting())
    assert main(["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]) == 1
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped (output exists), 1 failed" in cap.out and _counting.calls == 1
    (line,) = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert "is 258 bytes, more than a file name may have (255): rename the input" in line


class _Counting:
    """``analyze``, counting its calls."""

    def __init__(self):
        from trufor_lab.inference.analyze import analyze

        self.real, self.calls = analyze, 0

    def __call__(self, *a, **k):
        self.calls += 1
        return self.real(*a, **k)
