"""`trufor-lab analyze`: official npz format and naming, resumability, bad input handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trufor_lab.cli import main
from trufor_lab.inference.stored import RECORD_KEYS


def _img(path: Path, seed=0, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def test_folder_input_writes_official_npz_with_relative_names(tmp_path, with_weights, capsys):
    src = tmp_path / "in"
    _img(src / "a.png")
    _img(src / "sub" / "b.jpg", seed=1)
    out = tmp_path / "out"
    assert main(["analyze", str(src), "-o", str(out), "--save-noiseprint", "-q"]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.npz"))
    assert files == ["a.png.npz", "sub/b.jpg.npz"]
    d = np.load(out / "a.png.npz")
    assert set(d.files) == {
        "map",
        "conf",
        "score",
        "imgsize",
        "np++",
        "trufor_lab_input_sha256",
        "trufor_lab_input_path_sha256",
        "trufor_lab_weights_sha256",
        "trufor_lab_computed",
        "trufor_lab_summary",
        "trufor_lab_arrays_sha256",
        "trufor_lab_numerics",
    }  # official keys + what it was made from, and how (and what it said)
    assert str(d["trufor_lab_computed"]) == "exact float32"
    assert d["map"].shape == (48, 56) and d["map"].dtype == np.float32
    assert tuple(d["imgsize"]) == (48, 56) and 0 <= float(d["score"]) <= 1
    assert d["np++"].shape == (48, 56)
    assert "2 analyzed, 0 skipped (output exists), 0 failed" in capsys.readouterr().out


def test_single_input_may_name_the_npz_and_existing_outputs_are_skipped(tmp_path, with_weights, capsys):
    img = _img(tmp_path / "x.png")
    out = tmp_path / "res" / "x_result.npz"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert {"map", "conf", "score", "imgsize"} <= set(np.load(out).files)
    mtime = out.stat().st_mtime_ns
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert out.stat().st_mtime_ns == mtime
    assert "0 analyzed, 1 skipped" in capsys.readouterr().out
    assert main(["analyze", str(img), "-o", str(out), "-q", "--overwrite"]) == 0
    assert out.stat().st_mtime_ns != mtime


def test_a_reused_output_says_again_what_it_said(tmp_path, with_weights, capsys):
    """On a rerun, a reused output printed nothing: the orientation note (and the score) showed
    only on the first run."""
    from PIL import Image

    img = tmp_path / "portrait.jpg"
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(img, exif=ex)
    out = tmp_path / "res"
    assert main(["analyze", str(img), "-o", str(out)]) == 0
    first = [ln for ln in capsys.readouterr().out.splitlines() if "portrait.jpg" in ln]
    assert len(first) == 1 and "score" in first[0] and "EXIF orientation 6 not applied" in first[0]
    assert main(["analyze", str(img), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    again = cap.out.splitlines()
    assert first[0] + " (output exists)" in again and "0 analyzed, 1 skipped (output exists), 0 failed" in again
    assert "these results were made with custom weights" in cap.err  # no model loaded: the caveat still
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert "portrait.jpg" not in capsys.readouterr().out
    copy = tmp_path / "copy.jpg"  # the same bytes: the output is reused, under the name asked for
    copy.write_bytes(img.read_bytes())
    assert main(["analyze", str(copy), "-o", str(out / "portrait.jpg.npz")]) == 0
    said = capsys.readouterr().out.splitlines()[0]
    assert said == first[0].replace(str(img), str(copy)) + " (output exists)"


def test_glob_input_keeps_paths_relative_to_the_pattern_base(tmp_path, with_weights):
    _img(tmp_path / "g" / "one.png")
    _img(tmp_path / "g" / "deep" / "two.png", seed=3)
    out = tmp_path / "o"
    assert main(["analyze", str(tmp_path / "g" / "**" / "*.png"), "-o", str(out), "-q"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.npz")) == ["deep/two.png.npz", "one.png.npz"]


def test_bad_inputs_fail_alone_with_one_line_each(tmp_path, with_weights, capsys):
    src = tmp_path / "in"
    good = _img(src / "good.png")
    (src / "empty.png").write_bytes(b"")
    (src / "notes.jpg").write_text("not an image")
    buf = good.read_bytes()
    (src / "truncated.png").write_bytes(buf[: len(buf) // 3])
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(src / "tiny.png")
    out = tmp_path / "out"
    rc = main(["analyze", str(src), str(tmp_path / "missing.png"), "-o", str(out), "-q"])
    cap = capsys.readouterr()
    assert rc == 1
    assert sorted(p.name for p in out.rglob("*")) == ["good.png.npz"]
    err_lines = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 5
    for name in ("empty.png", "notes.jpg", "truncated.png", "tiny.png", "missing.png"):
        assert sum(name in ln for ln in err_lines) == 1, name
    assert "Traceback" not in cap.err
    assert "1 analyzed, 0 skipped (output exists), 5 failed" in cap.out


def test_an_image_the_weights_overflow_on_is_named_once(tmp_path, with_weights, monkeypatch, capsys):
    """The line "error: a.png: analysis failed (a.png: the network's output is not finite ...)" named it twice."""
    import trufor_lab.cli.analyze as cli_analyze
    from trufor_lab.inference.result import NonFiniteOutput

    real = cli_analyze.analyze

    def overflowing(model, path, **kw):
        result = real(model, path, **kw)
        if Path(path).name == "a.png":  # what make_result raises on NaN or Inf
            raise NonFiniteOutput(f"{path}: the network's output is not finite (NaN or Inf in logits); ...")
        return result

    monkeypatch.setattr(cli_analyze, "analyze", overflowing)
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "b.png", seed=1)
    rc = main(["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"])
    cap = capsys.readouterr()
    [line] = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert rc == 1 and line.count("a.png") == 1 and "not finite" in line, line
    assert (tmp_path / "out" / "b.png.npz").exists() and not (tmp_path / "out" / "a.png.npz").exists()


def test_without_checkpoint_the_main_job_uses_the_demo_model_and_says_so(tmp_path, monkeypatch, capsys, shared_dir):
    """The README's main command on a fresh machine: the shipped demo model gives a map and a
    score, and one note says these are demo weights and how to get the official ones."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "empty"))
    out = tmp_path / "o"
    assert main(["analyze", str(shared_dir / "images" / "tampered2.png"), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    notes = [ln for ln in cap.err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "Demo weights" in notes[0] and "weights download" in notes[0]
    assert "tampered2.png: score" in cap.out
    d = np.load(out / "tampered2.png.npz")
    assert set(d.files) - set(RECORD_KEYS) == {
        "map",
        "conf",
        "score",
        "imgsize",
    }
    assert d["map"].shape == tuple(d["imgsize"]) and 0 <= float(d["score"]) <= 1


def test_without_checkpoint_and_demo_the_main_job_gives_noiseprint_and_says_why(
    tmp_path, monkeypatch, capsys, shared_dir
):
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "empty"))
    out = tmp_path / "o"
    assert main(["analyze", str(shared_dir / "images" / "tampered2.png"), "-o", str(out), "-q", "--no-demo"]) == 0
    cap = capsys.readouterr()
    notes = [ln for ln in cap.err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "official TruFor checkpoint" in notes[0] and "weights download" in notes[0]
    d = np.load(out / "tampered2.png.npz")
    made = set(RECORD_KEYS)
    assert set(d.files) - made == {"imgsize", "np++"}
    # the rerun reuses them, and said they were made with demo weights (it looked up the demo)
    assert main(["analyze", str(shared_dir / "images" / "tampered2.png"), "-o", str(out), "-q", "--no-demo"]) == 0
    assert "demo" not in capsys.readouterr().err


@pytest.mark.parametrize("module", ["trufor_lab", "trufor_lab.cli"])  # `python -m trufor_lab` had no __main__
def test_console_script_bad_file_has_no_traceback(tmp_path, recipe_ckpt, module):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    env = dict(os.environ, TRUFOR_WEIGHTS=str(recipe_ckpt))
    p = subprocess.run(
        [sys.executable, "-m", module, "analyze", str(bad), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert f"error: {bad}: not an image file" in p.stderr
    assert not (tmp_path / "o" / "bad.png.npz").exists()


def test_a_file_name_that_is_not_utf8_does_not_stop_the_batch(tmp_path, recipe_ckpt):
    """Under a strict UTF-8 terminal the summary line of such a file raised UnicodeEncodeError
    (a traceback, the rest of the batch lost); a terminal escape in a name went out raw."""
    src = tmp_path / "in"
    _img(src / "a.png")
    odd = os.fsencode(src) + b"/b\xe9\x1b[31m.png"
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(os.fsdecode(odd))
    env = dict(os.environ, TRUFOR_WEIGHTS=str(recipe_ckpt), PYTHONIOENCODING="utf-8:strict")
    p = subprocess.run(
        [sys.executable, "-m", "trufor_lab.cli", "analyze", str(src), "-o", str(tmp_path / "o")],
        capture_output=True,
        env=env,
        timeout=300,
    )
    out = p.stdout.decode("utf-8")
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr[-800:]
    assert "2 analyzed" in out and "b\\udce9\\x1b[31m.png: score" in out and "\x1b" not in out


def test_broken_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    ck = tmp_path / "broken.pth.tar"
    ck.write_bytes(b"garbage")
    img = _img(tmp_path / "i.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "--weights", str(ck)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ck) in err[0]
    assert err[0].endswith("a text file, not a PyTorch checkpoint (a download that returned a web page?)"), err
    ck.write_bytes(bytes(range(200, 256)))  # was "KeyError: 101"-like: torch's own words on foreign bytes
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "--weights", str(ck)]) == 2
    assert "not a PyTorch checkpoint (it starts with bytes c8 c9 ca cb" in capsys.readouterr().err


def test_two_folders_with_the_same_file_name_give_two_outputs(tmp_path, with_weights, capsys):
    """a/x.png and b/x.png: named from their common root, both analyzed, neither 'skipped'."""
    a, b = _img(tmp_path / "a" / "x.png", seed=1), _img(tmp_path / "b" / "x.png", seed=2)
    out = tmp_path / "out"
    assert main(["analyze", str(a), str(b), "-o", str(out), "-q"]) == 0
    assert "2 analyzed, 0 skipped (output exists), 0 failed" in capsys.readouterr().out
    ma, mb = np.load(out / "a" / "x.png.npz")["map"], np.load(out / "b" / "x.png.npz")["map"]
    assert not np.array_equal(ma, mb)


def test_links_to_files_outside_the_common_root_keep_their_names_as_given(tmp_path, with_weights, capsys):
    """Links from two folders to files outside their common root fell back to the bare file name
    (resolved paths): the two would have written one output and both were refused. They are
    named as given (a/x.png, b/x.png), each analysed into its own output."""
    t1, t2 = _img(tmp_path / "t1" / "x.png", seed=1), _img(tmp_path / "t2" / "x.png", seed=2)
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir(parents=True)
    os.symlink(t1, tmp_path / "in" / "a" / "x.png")
    os.symlink(t2, tmp_path / "in" / "b" / "x.png")
    out = tmp_path / "out"
    rc = main(
        ["analyze", str(tmp_path / "in" / "a" / "x.png"), str(tmp_path / "in" / "b" / "x.png"), "-o", str(out), "-q"]
    )
    assert rc == 0 and "2 analyzed" in capsys.readouterr().out
    ma, mb = np.load(out / "a" / "x.png.npz")["map"], np.load(out / "b" / "x.png.npz")["map"]
    assert not np.array_equal(ma, mb)


def test_an_output_is_skipped_only_when_made_from_the_same_input_and_weights(
    tmp_path, with_weights, capsys, monkeypatch, recipe_ckpt
):
    img = _img(tmp_path / "in" / "x.png", seed=1)
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    d = np.load(out / "x.png.npz")
    assert {"trufor_lab_input_sha256", "trufor_lab_weights_sha256"} <= set(d.files)
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    assert "0 analyzed, 1 skipped" in capsys.readouterr().out
    first = np.load(out / "x.png.npz")["map"]
    _img(img, seed=2)  # a different image under the same name: recomputed, with a note
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in cap.out and "made from a different input file; recomputing" in cap.err
    assert not np.array_equal(first, np.load(out / "x.png.npz")["map"])
    import torch

    from trufor_lab.model import read_checkpoint

    obj = read_checkpoint(recipe_ckpt)  # other weights: one tensor nudged
    sd = obj["state_dict"] if "state_dict" in obj else obj
    k = next(k for k, v in sd.items() if v.is_floating_point() and not k.startswith("dncnn."))
    sd[k] = sd[k] + 1e-3
    torch.save(obj, tmp_path / "other.pt")
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(tmp_path / "other.pt"))
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in cap.out and "made with other weights" in cap.err
    np.savez(out / "x.png.npz", map=first)  # an output of an earlier version: no record of its input
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    assert "1 analyzed" in cap.out and "does not record its input" in cap.err


def test_cli_plugins_tolerate_only_a_missing_bench(monkeypatch):
    import importlib

    from trufor_lab import cli

    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name="bench")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert cli._plugins() == []

    def broken(name):
        raise ModuleNotFoundError("No module named 'numpyy'", name="numpyy")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        cli._plugins()


def test_weights_download_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["weights", "download", "--dir", str(blocker / "sub"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    rc = main(["weights", "download", "--dir", str(blocker), "-q"])  # was 'cannot write (File exists)'
    assert (
        rc == 1
        and capsys.readouterr().err.strip()
        == f"error: --dir {blocker} is an existing file, not a folder; give a folder"
    )


def test_weights_actions_that_take_no_file_refuse_one(capsys):
    """`weights info extra` printed the info as if asked plainly (a mistyped `install`?)."""
    for action in ("info", "download"):
        assert main(["weights", action, "TruFor_weights.zip"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == "error: TruFor_weights.zip: only `install` takes a file", line


def test_the_summary_line_says_how_each_input_was_read(tmp_path, with_weights, capsys):
    """An RGBA PNG, an animated GIF, a 16-bit PNG: the analysis changed them before it ran,
    and the printed line says so (it did not before: only the Result's notes knew)."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (48, 56, 4), dtype=np.uint8)).save(src / "alpha.png")
    frames = [Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(rng.integers(0, 65535, (48, 56)).astype(np.uint16)).save(src / "deep.png")
    _img(src / "plain.png")
    assert main(["analyze", str(src), "-o", str(tmp_path / "out")]) == 0
    lines = {ln.split(":")[0].rsplit("/", 1)[-1]: ln for ln in capsys.readouterr().out.splitlines() if ": score" in ln}
    assert lines["alpha.png"].endswith("[alpha channel dropped]")
    assert lines["anim.gif"].endswith("[first of 3 frames]")
    assert lines["deep.png"].endswith("[16-bit values scaled to 8 bits]")
    assert not lines["plain.png"].endswith("]")


def test_output_names_upper_case_npz_and_existing_files(tmp_path, with_weights, capsys):
    """``-o X.NPZ`` made a folder called X.NPZ; ``-o notes.txt`` (an existing file) failed once
    per image after loading the model."""
    img = _img(tmp_path / "a.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "R.NPZ"), "-q"]) == 0
    assert (tmp_path / "R.NPZ").is_file() and "map" in np.load(tmp_path / "R.NPZ").files
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(["analyze", str(img), "-o", str(notes), "-q"])
    assert "is an existing file, not a folder" in str(e.value) and "\n" not in str(e.value)
    assert notes.read_text() == "mine"


def test_a_folder_run_takes_downloads_named_oddly_and_counts_the_files_left_out(tmp_path, with_weights, capsys):
    """'tweet.jpg_large' and an extensionless 'download' in a folder were skipped without a word:
    '0 analyzed, 0 skipped, 0 failed' (or 'folder holds no images'), exit 0. They are analysed
    now, and the files that are not images are counted; an output folder inside the input one
    is not counted against it on a rerun."""
    src = tmp_path / "in"
    _img(src / "tweet.jpg", seed=1).rename(src / "tweet.jpg_large")
    _img(src / "download.png", seed=2).rename(src / "download")
    (src / "notes.txt").write_text("where these came from")
    runs = [(tmp_path / "out", "2 analyzed, 0"), (src / "out", "2 analyzed, 0"), (src / "out", "0 analyzed, 2")]
    for out, counts in runs:
        assert main(["analyze", str(src), "-o", str(out), "-q"]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["download.npz", "tweet.jpg_large.npz"]
        said = capsys.readouterr().out.strip().splitlines()[-1]
        assert said == (
            f"{counts} skipped (output exists), 0 failed; 1 other file left out (notes.txt): not recognised as images"
        ), said


def test_the_files_left_out_of_a_folder_are_named(tmp_path, with_weights, capsys):
    """'3 other files left out: not recognised as images' named none of them: the user had to
    hunt for them. The first two are named (escaped: a name may hold a terminal escape), the
    rest counted."""
    src = tmp_path / "in"
    _img(src / "a.png")
    (src / "notes.txt").write_text("where these came from")
    out = tmp_path / "out"
    assert main(["analyze", str(src), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said.endswith("; 1 other file left out (notes.txt): not recognised as images"), said
    (src / "data.csv").write_text("1,2")
    (src / "sub").mkdir()
    (src / "sub" / "z\x1b[2Jlog.txt").write_text("escape in the name")
    assert main(["analyze", str(src), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said == (
        "0 analyzed, 1 skipped (output exists), 0 failed; "
        "3 other files left out (data.csv, notes.txt, and 1 more): not recognised as images"
    ), said
    (src / "data.csv").unlink()
    (src / "notes.txt").unlink()
    assert main(["analyze", str(src), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said.endswith("; 1 other file left out (z\\x1b[2Jlog.txt): not recognised as images"), said


def test_an_existing_npz_that_is_not_an_output_is_not_overwritten(tmp_path, with_weights, capsys):
    img = _img(tmp_path / "a.png")
    mine = tmp_path / "results.npz"
    np.savez(mine, weights=np.arange(3))
    assert main(["analyze", str(img), "-o", str(mine), "-q"]) == 1
    assert "exists and is not an analysis output" in capsys.readouterr().err
    assert list(np.load(mine).files) == ["weights"]
    assert main(["analyze", str(img), "-o", str(mine), "-q", "--overwrite"]) == 0
    assert "map" in np.load(mine).files
    # a file numpy cannot read was taken for a damaged output and recomputed over
    for theirs in (b"important notes", np.lib.format.magic(1, 0) + b"a .npy renamed"):
        mine.write_bytes(theirs)
        assert main(["analyze", str(img), "-o", str(mine), "-q"]) == 1
        assert "exists and is not an analysis output" in capsys.readouterr().err
        assert mine.read_bytes() == theirs
    # an output of ours cut short (a copy that stopped: no zip directory) is recomputed, as a
    # damaged one is; someone's zip cut short is not ours
    assert main(["analyze", str(img), "-o", str(mine), "-q", "--overwrite"]) == 0
    whole = mine.read_bytes()
    mine.write_bytes(whole[: len(whole) // 2])
    assert main(["analyze", str(img), "-o", str(mine), "-q"]) == 0
    assert mine.read_bytes() == whole
    np.savez(mine, weights=np.arange(3000))
    theirs = mine.read_bytes()[:500]
    mine.write_bytes(theirs)
    assert main(["analyze", str(img), "-o", str(mine), "-q"]) == 1 and mine.read_bytes() == theirs


def test_a_rerun_in_another_precision_recomputes(tmp_path, with_weights, capsys):
    """A float32 output was skipped as 'exists' by a float64 run (only input and weights were
    checked), and an output of an earlier version, which records no precision, likewise."""
    img = _img(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(img), "-o", str(out), "-q", "--precision", "float64"]) == 0
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in cap.out and "computed as exact float32 (now exact float64)" in cap.err
    assert str(np.load(out / "a.png.npz")["trufor_lab_computed"]) == "exact float64"
    assert main(["analyze", str(img), "-o", str(out), "-q", "--precision", "float64"]) == 0
    assert "0 analyzed, 1 skipped" in capsys.readouterr().out
    d = dict(np.load(out / "a.png.npz"))
    del d["trufor_lab_computed"]
    np.savez(out / "a.png.npz", **d)
    assert main(["analyze", str(img), "-o", str(out), "-q", "--precision", "float64"]) == 0
    assert "does not record how it was computed (now exact float64)" in capsys.readouterr().err


def test_a_rerun_asking_for_the_noiseprint_map_recomputes(tmp_path, with_weights, capsys):
    """An output without ``np++`` was skipped as 'exists' even with --save-noiseprint."""
    img = _img(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert "np++" not in np.load(out / "a.png.npz").files
    assert main(["analyze", str(img), "-o", str(out), "-q", "--save-noiseprint"]) == 0
    assert "np++" in np.load(out / "a.png.npz").files
    assert "lacks np++" in capsys.readouterr().err


def test_train_all_phases_and_bad_settings_are_one_line(tmp_path, capsys):
    """``--phase all`` always crashed; bad sizes, devices and checkpoints were tracebacks, and
    ``--steps 0`` wrote an untrained checkpoint with exit 0."""
    base = ["train", "--model", "b0", "--crop", "32", "--batch-size", "2", "--steps", "1", "-q"]
    assert main([*base, "--phase", "all", "-o", str(tmp_path / "all")]) == 0
    assert {p.parent.name for p in (tmp_path / "all").rglob("last.pt")} == {"localization", "confidence", "detection"}
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    for extra, why in (
        (["--crop", "30"], "multiple of 8"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--device", "foo"], "foo"),
        (["--init", str(junk)], "junk.pt"),
        (["--images", str(tmp_path / "nowhere")], "nowhere: no such folder"),  # was "no images found"
        (["--seed", "-1"], "--seed must be a whole number from 0"),  # "expected non-negative integer", a log left
        (["--batch-size", "1"], "--batch-size 1 needs crop >= 64"),  # the command's option, not batch_size
    ):
        assert main([*base, *extra, "-o", str(tmp_path / "bad")]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and why in err[0], (extra, err)
        assert not (tmp_path / "bad").exists(), extra  # a failed run left an empty folder behind
    taken = tmp_path / "notes.txt"  # '-o' an existing file: '[Errno 17] File exists: ...'
    taken.write_text("mine")
    assert main([*base, "-o", str(taken)]) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: --output {taken} is an existing file, not a folder; give a folder"
    )
    assert taken.read_text() == "mine"
    # a run with other settings in the same folder: the command's own option names
    assert main([*base, "--lr", "5e-4", "-o", str(tmp_path / "all" / "localization")]) == 2
    err = capsys.readouterr().err
    assert "use another -o, or --restart" in err and "resume=False" not in err


def test_train_interrupted_before_writing_anything_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """A Ctrl-C during the Noiseprint++ precompute of a new run (minutes, before any checkpoint)
    left an empty run folder (and an empty cache/ inside it for --phase all); a folder that was
    there before is kept as it was."""
    import trufor_lab.training.loop as L

    def ctrl_c(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(L, "_noiseprint", ctrl_c)
    base = ["train", "--model", "b0", "--crop", "32", "--batch-size", "2", "--steps", "1", "--precompute", "2", "-q"]
    for phase in ("localization", "all"):
        assert main([*base, "--phase", phase, "-o", str(tmp_path / phase)]) == 130
        assert capsys.readouterr().err.strip() == "error: interrupted"
        assert not (tmp_path / phase).exists(), phase
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main([*base, "--phase", "all", "-o", str(mine)]) == 130
    assert mine.is_dir() and not any(mine.iterdir())


def test_train_starts_from_a_checkpoint_of_its_own_architecture(tmp_path, capsys):
    """--model defaulted to b0, so `train --init weights/trufor_demo.pt` (another size) always
    failed, and the error's advice ('leave model=None') had no command-line spelling."""
    from trufor_lab.inference.weights import find_demo

    base = ["train", "--phase", "confidence", "--init", str(find_demo()), "--steps", "1", "--crop", "64"]
    assert main([*base, "--batch-size", "1", "-q", "-o", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "last.pt").is_file()
    assert main([*base, "--batch-size", "1", "-q", "--model", "b0", "-o", str(tmp_path / "b0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "its architecture differs from --model (leave --model out to take its own)"
    )


def test_distributed_and_casebook_refuse_bad_settings_in_one_line(tmp_path, capsys):
    assert main(["distributed-analyze", "--dataset", "NOPE", "--root", str(tmp_path), "-o", str(tmp_path / "d")]) == 2
    assert main(["casebook", "--port", "70000", "--no-browser"]) == 2
    assert main(["casebook", "--weights", str(tmp_path / "none.pt"), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(ln.startswith("error:") for ln in err), err
    assert "NOPE" in err[0] and "70000" in err[1] and "none.pt" in err[2]


def test_a_colon_in_a_file_name_is_an_ordinary_character(tmp_path, with_weights, capsys):
    """An ISO timestamp name ('2024-01-01T10:00:00.jpg') stopped the whole batch with an
    OutputPathError traceback, and distributed-analyze skipped it as 'not a relative name';
    a name that would leave the output folder ('..\\evil.png', unzipped from Windows) fails alone."""
    src = tmp_path / "in"
    _img(src / "2024-01-01T10:00:00.jpg")
    _img(src / "a.png", seed=1)
    evil = _img(src / "..\\evil.png", seed=2)
    for cmd, out in (("analyze", tmp_path / "out"), ("distributed-analyze", tmp_path / "dist")):
        assert main([cmd, str(src), "-o", str(out), "-q"]) == 1, cmd
        cap = capsys.readouterr()
        assert sorted(p.name for p in out.rglob("*.npz")) == ["2024-01-01T10:00:00.jpg.npz", "a.png.npz"], cmd
        (line,) = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
        assert str(evil) in line and "not a relative name inside the output folder" in line, cmd
        failed = "1 failed" if cmd == "analyze" else "1 failed on 1 rank(s)"  # input problems count as failed
        assert f"2 analyzed, 0 skipped (output exists), {failed}" in cap.out, cmd
    assert not list(tmp_path.glob("*.npz"))


def test_a_backslash_name_beside_its_folder_twin_is_refused_naming_both(tmp_path, with_weights, capsys):
    """'a\\b.jpg' (one file) and 'a/b.jpg' both wrote out/a/b.jpg.npz ('2 analyzed'), each run
    overwriting the other's. Then the two refused files were one problem line and counted as one
    failed ('1 analyzed, 0 skipped, 1 failed' for 3 inputs), and distributed_summary.json left
    them out of 'failed' and 'images' while its terminal line counted one: each file is one line
    and one failed now, and the line and the JSON agree."""
    import json

    src = tmp_path / "in"
    one, two = _img(src / "a\\b.jpg"), _img(src / "a" / "b.jpg", seed=1)
    _img(src / "good.png", seed=2)
    for cmd, out in (("analyze", tmp_path / "out"), ("distributed-analyze", tmp_path / "dist")):
        assert main([cmd, str(src), "-o", str(out), "-q"]) == 1, cmd
        cap = capsys.readouterr()
        assert sorted(p.name for p in out.rglob("*.npz")) == ["good.png.npz"], cmd
        lines = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 2, (cmd, lines)
        for f, line in zip((one, two), sorted(lines, key=lambda ln: str(one) not in ln.split(": ")[1])):
            assert line.startswith(f"error: {f}: would write the same output (a/b.jpg) as "), (cmd, line)
            assert str(one) in line and str(two) in line, (cmd, line)
        failed = "2 failed" if cmd == "analyze" else "2 failed on 1 rank(s)"
        assert f"1 analyzed, 0 skipped (output exists), {failed}" in cap.out, (cmd, cap.out)
    summary = json.loads((tmp_path / "dist" / "distributed_summary.json").read_text())
    assert {k: summary[k] for k in ("images", "written", "skipped", "failed")} == {
        "images": 3,
        "written": 1,
        "skipped": 0,
        "failed": 2,
    }
    assert len(summary["problems"]) == 2


def test_names_that_differ_only_by_case_write_nothing_over_each_other(tmp_path, with_weights, capsys, monkeypatch):
    """'Photo.JPG' and 'photo.jpg' wrote two outputs ('2 analyzed') that are one file on macOS
    and Windows disks: the second replaced the first. Both are refused, each named."""
    from trufor_lab.common import paths

    monkeypatch.setattr(paths, "CASE_INSENSITIVE_DISKS", True)
    src = tmp_path / "in"
    upper, lower = _img(src / "Photo.JPG"), _img(src / "photo.jpg", seed=1)
    for cmd, out in (("analyze", tmp_path / "out"), ("distributed-analyze", tmp_path / "dist")):
        assert main([cmd, str(src), "-o", str(out), "-q"]) == 1, cmd
        cap = capsys.readouterr()
        assert not list(out.rglob("*.npz")), cmd
        lines = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 2, (cmd, lines)
        for f in (upper, lower):
            (line,) = [ln for ln in lines if ln.startswith(f"error: {f}: ")]
            assert str(upper) in line and str(lower) in line and "differs only by letter case" in line
            assert "case-insensitive disks" in line
        assert "0 analyzed, 0 skipped (output exists), 2 failed" in cap.out, (cmd, cap.out)


def test_names_that_differ_only_by_case_on_an_output_disk_that_folds_case_are_refused_in_words(
    tmp_path, with_weights, capsys, monkeypatch
):
    """On Linux, an output folder on a disk that folds letter case (a FAT stick, an SMB share):
    'Photo.JPG' was analysed and written, then 'photo.jpg' refused after its analysis as
    'written meanwhile by another run'. Both are refused before any work, each line naming both
    and the reason. (This disk keeps case apart: the probe's answer is simulated.)"""
    from trufor_lab.common import paths
    from trufor_lab.inference import distributed
    from trufor_lab.lab import eval_outputs

    monkeypatch.setattr(paths, "CASE_INSENSITIVE_DISKS", False)
    asked = []

    def folds_case(folder):
        asked.append(Path(folder).name)
        return True

    for module in (paths, distributed, eval_outputs):  # where each command asks (a module without it: an error)
        monkeypatch.setattr(module, "folds_case", folds_case)
    src = tmp_path / "in"
    upper, lower = _img(src / "Photo.JPG"), _img(src / "photo.jpg", seed=1)
    for cmd, out in (("analyze", "out"), ("distributed-analyze", "dist"), ("eval", "ev")):
        args = ["eval", "set", "--images", str(src)] if cmd == "eval" else [cmd, str(src)]
        assert main([*args, "-o", str(tmp_path / out), "-q"]) == 1, cmd
        cap = capsys.readouterr()
        assert not list(tmp_path.glob(f"{out}/**/*.npz")), cmd
        lines = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 2, (cmd, lines)
        for f in (upper, lower):
            (line,) = [ln for ln in lines if ln.startswith(f"error: {f}: ")]
            assert str(upper) in line and str(lower) in line, line
            assert "would be the same file on this disk" in line and "differ only in letter case" in line, line
            assert "meanwhile" not in line
        assert asked.pop() == out, cmd  # the output folder's disk was asked


def test_output_names_near_the_file_system_limit_are_written(tmp_path, with_weights, capsys):
    """A legal 248-byte output name failed with 'File name too long' after the model had run:
    the temporary name beside it added about 14 bytes."""
    img = _img(tmp_path / "in" / ("x" * 240 + ".png"))
    out = tmp_path / "out"
    assert main(["analyze", str(img.parent), "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    (npz,) = out.iterdir()
    assert npz.name == img.name + ".npz" and len(npz.name) == 248
    assert np.load(npz)["map"].shape == (48, 56)
    assert "1 analyzed, 0 skipped (output exists), 0 failed" in capsys.readouterr().out


def _no_model(monkeypatch):
    """A refusal is said before the (slow) model load: loading fails the test."""

    def load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.cli.report.load", load)


def test_report_refuses_an_existing_file_that_is_not_a_report(tmp_path, with_weights, monkeypatch, capsys):
    """'report IMG -o earlier_post.jpg' (a typo for --compare) replaced another evidence image
    with the HTML report, silently; '-o photo.jpg/r.html' said only '[Errno 17] File exists'."""
    _no_model(monkeypatch)
    img = _img(tmp_path / "viral.png")
    other = _img(tmp_path / "earlier_post.jpg", seed=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("case notes")
    (tmp_path / "Old.JPEG").write_bytes(other.read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for out, why in (
        (other, "exists and is not a report (not .html, .htm or .pdf); not overwritten"),
        (tmp_path / "Old.JPEG", "exists and is not a report"),
        (notes, "exists and is not a report"),
        (other / "r.html", f"cannot write the report: {other} is a file, not a folder"),
        (notes / "x" / "r.html", f"{notes} is a file, not a folder"),
    ):
        assert main(["report", str(img), "-o", str(out), "-q"]) == 1, out
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {out}: ") and why in err[0], (out, err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_report_named_without_a_suffix_is_replaced_by_a_rerun(tmp_path, monkeypatch, capsys):
    """'-o rep' wrote a report the first time and refused to replace it the second ('exists and
    is not a report'): a report is recognised by what it holds, not only by its name."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    img = _img(tmp_path / "viral.png")
    out = tmp_path / "rep"
    for _ in range(2):
        assert main(["report", str(img), "-o", str(out), "-q", "--no-demo", "--device", "cpu"]) == 0, (
            capsys.readouterr()
        )
        assert out.read_text().startswith("<!DOCTYPE html>")
    out.write_text("<!DOCTYPE html><p>someone's page</p>")  # HTML, but not a report of ours
    assert main(["report", str(img), "-o", str(out), "-q", "--no-demo", "--device", "cpu"]) == 1
    assert "exists and is not a report" in capsys.readouterr().err
    assert out.read_text() == "<!DOCTYPE html><p>someone's page</p>"


def test_report_named_pdf_in_capitals_keeps_the_html_beside_it(tmp_path, monkeypatch, capsys):
    """'-o Case.PDF --pdf' wrote the HTML into Case.PDF (the check for '-o case.pdf' compared
    suffixes with their case) and the PDF into Case.pdf: one file on macOS and Windows."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    img = _img(tmp_path / "in" / "viral.png")
    out = tmp_path / "case" / "Case.PDF"
    assert main(["report", str(img), "-o", str(out), "--pdf", "-q", "--no-demo", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["Case.PDF", "Case.html"]
    assert out.read_bytes()[:5] == b"%PDF-"
    assert "viral.png" in (out.parent / "Case.html").read_text(encoding="utf-8")


def test_report_errors_keep_a_file_name_with_a_newline_whole(tmp_path, with_weights, monkeypatch, capsys):
    """A newline in the image's name cut the error to 'error: .../evil' (a path that does not
    exist) and dropped the reason."""
    _no_model(monkeypatch)
    good = _img(tmp_path / "good.png")
    evil = tmp_path / "evil\nname.jpg"
    evil.write_bytes(b"garbage")
    for args in ([str(evil)], [str(good), "--compare", str(evil)]):
        assert main(["report", *args, "-o", str(tmp_path / "r.html")]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {tmp_path}/evil\\nname.jpg: not an image file"), line
    assert not (tmp_path / "r.html").exists()


def test_file_names_in_error_and_note_lines_are_escaped(tmp_path, with_weights, capsys):
    """A newline in a failing file's name split its error over two lines; a terminal escape in
    a name went to the terminal raw, in error lines and in the 'recomputing' note."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "nl\nbad.tif").write_text("not an image")
    (src / "\x1b]0;pwned\x07\x1b[2J.png").write_text("not an image")
    _img(src / "x\x1b[2J.png")
    out = tmp_path / "out"
    assert main(["analyze", str(src), "-o", str(out), "-q"]) == 1
    assert main(["analyze", str(src), "-o", str(out), "-q", "--precision", "float64"]) == 1
    cap = capsys.readouterr()
    assert "\x1b" not in cap.err + cap.out and "\x07" not in cap.err
    lines = cap.err.splitlines()
    assert sum(ln.startswith("error: ") and "nl\\nbad.tif: not an image" in ln for ln in lines) == 2, lines
    assert sum(ln.startswith("error: ") and "\\x1b]0;pwned\\x07\\x1b[2J.png: not an image" in ln for ln in lines) == 2
    assert not any(ln.startswith("bad.tif") for ln in lines), lines
    (note,) = [ln for ln in lines if "recomputing" in ln]
    assert note.startswith("note: ") and "x\\x1b[2J.png.npz: existing output computed as exact float32" in note


def test_an_empty_or_file_output_and_a_closed_pipe_are_one_line(tmp_path, recipe_ckpt, capsys, monkeypatch):
    """``-o ""`` (an unset $OUT) wrote into the current folder; ``eval -o FILE`` analysed every
    image and then failed each one; ``analyze ... | head -1`` ended in a BrokenPipeError
    traceback."""
    img = _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png", seed=1)
    monkeypatch.chdir(tmp_path)
    for cmd in (["analyze", str(img)], ["eval", "--images", str(tmp_path / "imgs")]):
        assert main([*cmd, "-o", ""]) == 2
        assert "--output is empty" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob("imgs/*.npz"))
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["eval", "--images", str(tmp_path / "imgs"), "-o", str(afile), "--weights", str(recipe_ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "is an existing file, not a folder" in err and afile.read_text() == "mine"
    env = dict(os.environ, TRUFOR_WEIGHTS=str(recipe_ckpt))
    script = (
        "import sys; from trufor_lab.cli import main; sys.stdout.close = lambda: None; "
        "import os; r, w = os.pipe(); os.close(r); os.dup2(w, 1); sys.exit(main(sys.argv[1:]))"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, "analyze", str(tmp_path / "imgs"), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in p.stderr and p.returncode == 141, (p.returncode, p.stderr)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_every_command_refuses_an_unusable_device_before_any_work(tmp_path, capsys):
    """``--device cuda`` without a GPU was PyTorch's "Found no NVIDIA driver" text, after each
    image (distributed-analyze: exit 1, a summary of failures; eval: only when the first image
    needed the model); ``cuda:7`` and ``gpu`` likewise. Now one line, exit 2, nothing written."""
    src = tmp_path / "in"
    img = _img(src / "a.png")
    for device, why in (("cuda", "no CUDA GPU"), ("cuda:7", "no CUDA GPU"), ("gpu", "not a device name")):
        out = tmp_path / "out"
        for argv in (
            ["analyze", str(img), "-o", str(out)],
            ["distributed-analyze", str(img), "-o", str(out)],
            ["eval", "--images", str(src), "-o", str(out)],
            ["report", str(img), "-o", str(out / "r.html")],
        ):
            assert main([*argv, "-q", "--device", device]) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert err[-1].startswith("error:") and why in err[-1] and "NVIDIA" not in "".join(err), (argv, err)
            assert not out.exists(), argv


def test_an_unusable_device_is_refused_even_when_every_output_is_reused(tmp_path, with_weights, capsys):
    """``--device banana`` (or ``cuda`` without a GPU) was refused only when an image needed the
    model: on a rerun whose outputs all existed, analyze and eval took it and exited 0."""
    src = tmp_path / "in"
    img = _img(src / "a.png")
    for argv in (
        ["analyze", str(img), "-o", str(tmp_path / "a")],
        ["eval", "--images", str(src), "-o", str(tmp_path / "e")],
    ):
        assert main([*argv, "-q"]) == 0
        capsys.readouterr()
        assert main([*argv, "-q", "--device", "banana"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == "error: device 'banana' is not a device name (use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto')"
        assert main([*argv, "-q", "--device", "cpu"]) == 0  # a device it can use: reused as before


def test_an_output_folder_without_write_permission_is_refused_before_any_image(tmp_path, monkeypatch, capsys):
    """An output folder the user may not write in was found out image by image, each analysed
    and then failing its write (distributed-analyze, eval; analyze alike)."""
    src = tmp_path / "in"
    img = _img(src / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != locked and real_access(p, mode, **k))

    def no_model(*_a, **_k):
        raise AssertionError("the model was loaded")

    for where in ("trufor_lab.cli.analyze.load", "trufor_lab.inference.distributed.load", "trufor_lab.cli.eval.load"):
        monkeypatch.setattr(where, no_model)
    for argv in (
        ["analyze", str(img), "-o", str(locked / "out")],
        ["analyze", str(img), "-o", str(locked / "a.npz")],
        ["distributed-analyze", str(img), "-o", str(locked / "out")],
        ["eval", "--images", str(src), "-o", str(locked)],
    ):
        if argv[0] == "analyze":  # analyze says its settings problems through SystemExit
            with pytest.raises(SystemExit) as e:
                main([*argv, "-q"])
            err = [str(e.value)]
        else:
            assert main([*argv, "-q"]) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"no permission to write in {locked}" in err[0], (argv, err)
    assert not any(locked.iterdir())
    # where os.access says yes (root, always) but nothing can be made (/proc): said before any
    # work too (root analysed every image, then failed each write with "Permission denied")
    from trufor_lab.common.files import unwritable_reason

    monkeypatch.setattr(os, "access", real_access)
    if os.path.isdir("/proc/self"):  # /proc: no file can be made there, by anyone
        assert unwritable_reason("/proc/out") is not None
        with pytest.raises(SystemExit) as e:
            main(["analyze", str(img), "-o", "/proc/out", "-q"])
        assert "/proc" in str(e.value) and "\n" not in str(e.value)
    assert unwritable_reason(tmp_path / "fine") is None and not list(tmp_path.glob(".trufor_lab-probe-*"))


def test_an_output_under_an_existing_file_is_refused_before_any_image(tmp_path, monkeypatch):
    """`-o photo.jpg/out.npz` (a file as the folder) passed the early check and failed at the
    write, after the analysis."""

    def no_model(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.cli.analyze.load", no_model)
    img = _img(tmp_path / "a.png")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not a folder")
    with pytest.raises(SystemExit) as e:
        main(["analyze", str(img), "-o", str(photo / "out.npz"), "-q"])
    assert f"{photo} is a file, not a folder" in str(e.value)


def test_train_from_the_official_checkpoint_takes_its_mit_b2_size(tmp_path, recipe_ckpt, capsys):
    """The official trufor.pth.tar has no 'config' entry: `train --init` built MiT-B0 for it and
    failed with 312 unexpected keys and 526 shape mismatches, while tl.load reads it as MiT-B2."""
    import torch

    from trufor_lab.model import MIT_B2
    from trufor_lab.training.phases import build_model

    assert build_model(init=recipe_ckpt).cfg == MIT_B2
    out = tmp_path / "ft"
    base = ["train", "--phase", "detection", "--init", str(recipe_ckpt), "--steps", "1", "--crop", "64"]
    assert main([*base, "--batch-size", "1", "-q", "-o", str(out)]) == 0, capsys.readouterr().err
    assert torch.load(out / "last.pt", weights_only=True)["config"]["embed_dims"] == MIT_B2.embed_dims


def test_an_empty_input_and_a_glob_of_folders(tmp_path, with_weights, capsys, monkeypatch):
    """``analyze "$UNSET"`` analysed every image under the current folder (Path("") is "."); a
    quoted glob matching folders (``'gl/*'``, what Windows shells always pass) left their images
    out, unsaid."""
    _img(tmp_path / "gl" / "top.png")
    _img(tmp_path / "gl" / "2023" / "a.png", seed=1)
    _img(tmp_path / "gl" / "2024" / "b.png", seed=2)
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", "", "-o", "oempty", "-q"]) == 1
    err = capsys.readouterr().err
    assert "empty input (an unset variable?)" in err and not Path("oempty").exists()
    assert main(["analyze", "gl/*", "-o", "o1", "-q"]) == 0
    found = sorted(p.relative_to("o1").as_posix() for p in Path("o1").rglob("*.npz"))
    assert found == ["2023/a.png.npz", "2024/b.png.npz", "top.png.npz"], found
    assert main(["analyze", "gl/20*", "-o", "o2", "-q"]) == 0 and len(list(Path("o2").rglob("*.npz"))) == 2


def test_another_file_of_the_same_name_does_not_replace_an_output(tmp_path, with_weights, capsys):
    """``analyze c1/a -o S`` then ``analyze c2/a -o S`` (both hold x.png) replaced c1's result
    with c2's ('made from a different input file; recomputing'). Another file is refused; the
    same file edited is recomputed; --overwrite replaces."""
    _img(tmp_path / "c1" / "a" / "x.png")
    _img(tmp_path / "c2" / "a" / "x.png", seed=5)
    out = tmp_path / "S"
    assert main(["analyze", str(tmp_path / "c1" / "a"), "-o", str(out), "-q"]) == 0
    first = (out / "x.png.npz").read_bytes()
    assert main(["analyze", str(tmp_path / "c2" / "a"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "holds the analysis of another input file" in err and "--overwrite" in err
    assert (out / "x.png.npz").read_bytes() == first
    _img(tmp_path / "c1" / "a" / "x.png", seed=9)  # the same file, edited: recomputed
    assert main(["analyze", str(tmp_path / "c1" / "a"), "-o", str(out), "-q"]) == 0
    assert "recomputing" in capsys.readouterr().err and (out / "x.png.npz").read_bytes() != first
    assert main(["analyze", str(tmp_path / "c2" / "a"), "-o", str(out), "-q", "--overwrite"]) == 0
    # an output file named by the caller (a script looping with -o cur.npz) is theirs to reuse
    cur = tmp_path / "cur.npz"
    for f in (tmp_path / "c1" / "a" / "x.png", tmp_path / "c2" / "a" / "x.png"):
        assert main(["analyze", str(f), "-o", str(cur), "-q"]) == 0


def test_an_output_blocked_by_a_file_or_named_as_a_folder(tmp_path, with_weights, capsys):
    """A file where an output subfolder goes failed after the analysis ('cannot write output
    (File exists)'); ``-o d.npz`` naming an existing folder was 'not an analysis output' and
    then failed at the write."""
    _img(tmp_path / "in1" / "x.png")
    (tmp_path / "ob").mkdir()
    (tmp_path / "ob" / "in1").write_text("a file")
    _img(tmp_path / "in2" / "y.png", seed=1)
    assert main(["analyze", str(tmp_path / "in1"), str(tmp_path / "in2"), "-o", str(tmp_path / "ob"), "-q"]) == 1
    out = capsys.readouterr()
    assert "in1 is a file, not a folder" in out.err and "1 analyzed, 0 skipped (output exists), 1 failed" in out.out
    (tmp_path / "d.npz").mkdir()
    assert main(["analyze", str(tmp_path / "in1" / "x.png"), "-o", str(tmp_path / "d.npz"), "-q"]) == 0
    assert (tmp_path / "d.npz" / "x.png.npz").is_file()


def test_options_that_would_be_ignored_are_refused(tmp_path, with_weights, capsys, monkeypatch):
    """Accepted and ignored, exit 0: ``eval --method ela --weights/--device/--precision``, a list
    file's ``--fake-list``/``--list-dir``, ``report --compare ""``, ``distributed-analyze INPUT
    --root R``; ``python -m trufor_lab.cli.distributed -o ""`` wrote into the current folder."""
    from trufor_lab.cli import distributed

    img = _img(tmp_path / "imgs" / "a.png")
    for opt in (["--weights", "nope.pth"], ["--device", "cuda:7"], ["--precision", "float64"]):
        assert (
            main(["eval", "--images", str(tmp_path / "imgs"), "--method", "ela", "-o", str(tmp_path / "e"), *opt]) == 2
        )
        assert "runs no network" in capsys.readouterr().err
    assert (
        main(
            ["eval", "--images", str(tmp_path / "imgs"), "--method", "noiseprint", "-o", str(tmp_path / "e")]
            + ["--weights", "x.pth"]
        )
        == 2
    )
    assert "runs the default Noiseprint++ weights" in capsys.readouterr().err
    (tmp_path / "fake.txt").write_text("imgs/a.png\n")
    cmd = ["eval", str(tmp_path / "fake.txt"), "--root", str(tmp_path), "-o", str(tmp_path / "e2")]
    assert main([*cmd, "--fake-list", str(tmp_path / "nope.txt")]) == 1
    assert "fake_list not taken" in capsys.readouterr().err
    assert main(["report", str(img), "--compare", "", "-o", str(tmp_path / "r.html")]) == 1
    assert "--compare is empty" in capsys.readouterr().err and not (tmp_path / "r.html").exists()
    assert main(["distributed-analyze", str(img), "--root", str(tmp_path), "-o", str(tmp_path / "d")]) == 2
    assert "--root goes with --dataset" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "imgs")
    assert distributed.main([str(img), "-o", "", "--device", "cpu"]) == 2
    assert "--output is empty" in capsys.readouterr().err and os.listdir(".") == ["a.png"]
    from trufor_lab.cli import train as train_cli

    assert train_cli.main(["--images", ".", "-o", "", "--steps", "1"]) == 2
    assert "--output is empty" in capsys.readouterr().err and os.listdir(".") == ["a.png"]


def test_notebook_times_of_another_folder_do_not_replace_the_shipped_ones(tmp_path, capsys):
    """``notebooks --time --dir OTHER`` replaced the shipped notebooks' block in bench/RESULTS.md
    with OTHER's, labelled as the default command."""
    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "01_ok.ipynb").write_text("{}")
    assert main(["notebooks", "--dir", str(tmp_path / "nbs"), "--time"]) == 2
    assert "give --results FILE" in capsys.readouterr().err
    from trufor_lab.cli.notebooks import Timing, results_block

    block = results_block([Timing("01_ok", 1.0, True, cpu_seconds=1.0)], "CPU x", folder=str(tmp_path / "nbs"))
    assert block.splitlines()[0].endswith(f"({tmp_path / 'nbs'})") and f"--dir {tmp_path / 'nbs'}" in block


def test_python_m_trufor_lab_never_imports_a_users_bench_module(tmp_path):
    """`python -m trufor_lab` put the current folder first on sys.path and imported `bench.cli`
    from it for the bench subcommand: a bench.py (or bench/) of the user's own ran."""
    import subprocess
    import sys

    (tmp_path / "bench.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    pkg = tmp_path / "other"
    (pkg / "bench").mkdir(parents=True)
    (pkg / "bench" / "__init__.py").write_text(f"open({str(tmp_path / 'ran_pkg')!r}, 'w').close()\n")
    for cwd in (tmp_path, pkg):
        done = subprocess.run(
            [sys.executable, "-m", "trufor_lab", "weights", "info"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "ran_pkg").exists()
    from trufor_lab.cli import build_parser

    assert "bench" in build_parser()._subparsers._group_actions[0].choices  # the checkout's own still is


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "soon"])
def test_timeouts_are_finite_positive_seconds(value, capsys):
    """distributed-analyze --timeout inf was a traceback (OverflowError), 0 or -1 twenty lines of
    C++ frames and a wrong 'cannot listen'; notebooks --timeout 0 turned the cell limit off."""
    from trufor_lab.cli import main

    for argv in (
        ["distributed-analyze", "x.png", "-o", "out", "--timeout", value],
        ["distributed-analyze", "x.png", "-o", "out", "--gather-timeout", value],
        ["notebooks", "--timeout", value],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "timeout: " in err and ("number of seconds" in err), err


def test_eval_of_a_folder_refuses_the_options_of_a_benchmark(tmp_path, capsys):
    """`eval --images DIR --list-dir X --mask-root Y` ran with exit 0, both options ignored."""
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    for extra in (["--list-dir", str(tmp_path)], ["--mask-root", str(tmp_path)]):
        assert main(["eval", "--images", str(tmp_path / "imgs"), "-o", str(tmp_path / "out"), *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--images takes no {extra[0]}" in err[0], err


def test_a_terminated_command_removes_the_file_it_was_writing(tmp_path):
    """`timeout` (SIGTERM) killed a command mid-write: a 114 MB `.last.pt.*.tmp` stayed beside the
    checkpoint. A termination is handled as Ctrl-C is now: the temporary file is removed, one line."""
    import subprocess
    import sys

    script = tmp_path / "term.py"
    script.write_text(
        "import argparse, os, signal, sys, time\n"
        "from trufor_lab.cli.messages import run_command\n"
        "from trufor_lab.common.files import atomic_write_path\n"
        "def write(tmp):\n"
        "    open(tmp, 'w').write('partial')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "def func(args):\n"
        f"    atomic_write_path({str(tmp_path / 'out' / 'last.pt')!r}, write)\n"
        "    return 0\n"
        "sys.exit(run_command(argparse.Namespace(func=func)))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr.strip() == "error: interrupted", (done.returncode, done.stderr)
    assert list((tmp_path / "out").iterdir()) == []


def test_weights_options_of_another_action_are_refused(capsys):
    """`weights info --dir X` reported the per-user cache as if --dir were not there, and
    `install --skip-noiseprint` ignored it."""
    for argv, said in (
        (["weights", "info", "--dir", "/tmp/elsewhere"], "--dir: not an option of `weights info`"),
        (["weights", "info", "--skip-noiseprint"], "--skip-noiseprint: not an option of `weights info`"),
        (["weights", "install", "x.zip", "--skip-noiseprint"], "--skip-noiseprint: not an option of `weights install`"),
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == f"error: {said}"


def test_names_in_eval_notes_and_the_weights_banner_reach_the_terminal_escaped(tmp_path, recipe_ckpt, capsys):
    """An image named with a terminal escape went raw into eval's note lines (the dataset's
    notes, written by the evaluation: ``ESC[2K`` and a carriage return wiped the line), and a
    checkpoint's file name raw into the weights banner of analyze."""
    d = tmp_path / "set"
    name = "a\x1b[2K\rFAKE\x07"
    _img(d / "images" / f"{name}.png")
    (d / "masks").mkdir()
    Image.fromarray(np.zeros((48, 56), np.uint8)).save(d / "masks" / f"{name}.png")  # authentic: a note says so
    rc = main(
        ["eval", "--images", str(d / "images"), "--masks", str(d / "masks"), "--method", "ela"]
        + ["-o", str(tmp_path / "o"), "-q"]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    notes = [ln for ln in cap.err.splitlines() if "mask marks no forged pixel" in ln]
    assert notes and "a\\x1b[2K\\rFAKE\\x07.png" in notes[0], cap.err
    ckpt = tmp_path / "w\x1b]0;pwned\x07.pt"
    ckpt.write_bytes(recipe_ckpt.read_bytes())
    assert main(["analyze", str(d / "images"), "--weights", str(ckpt), "-o", str(tmp_path / "p"), "-q"]) == 0
    cap2 = capsys.readouterr()
    assert "w\\x1b]0;pwned\\x07.pt" in cap2.err, cap2.err
    for text in (cap.err, cap.out, cap2.err, cap2.out):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text, text


def test_a_bad_checkpoint_named_by_trufor_weights_says_where_it_was_named(tmp_path, monkeypatch, recipe_ckpt, capsys):
    """A bad file set in $TRUFOR_WEIGHTS was named by its path alone ('mine.pth: a text file, not a
    PyTorch checkpoint'): a user who had set the variable and forgot could not tell why that file
    was read. The line says the variable named it; a file given with --weights says nothing of it;
    the banner of a usable file the variable named says so too."""
    img = _img(tmp_path / "a.png")
    bad = tmp_path / "mine.pth"
    bad.write_text("not a checkpoint")
    reason = "a text file, not a PyTorch checkpoint (a download that returned a web page?)"
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(bad))
    for argv in (
        ["analyze", str(img), "-o", str(tmp_path / "o")],
        ["report", str(img), "-o", str(tmp_path / "r.html")],
    ):
        assert main([*argv, "-q"]) == 2, argv
        assert capsys.readouterr().err.splitlines() == [f"error: {bad} (named by $TRUFOR_WEIGHTS): {reason}"], argv
    import trufor_lab as tl
    from trufor_lab.model import CheckpointError

    with pytest.raises(CheckpointError, match=r"\(named by \$TRUFOR_WEIGHTS\): a text file"):
        tl.load(device="cpu")
    monkeypatch.delenv("TRUFOR_WEIGHTS")
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "-q", "--weights", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {bad}: {reason}"]

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))  # usable, unverified: the banner names its origin
    assert main(["analyze", str(img), "-o", str(tmp_path / "ok"), "-q"]) == 0
    err = capsys.readouterr().err
    assert (
        "(trufor_recipe.pth.tar, sha256 " in err and ") named by $TRUFOR_WEIGHTS: not verified as the official" in err
    )
    assert main(["analyze", str(img), "-o", str(tmp_path / "ok"), "-q"]) == 0  # reused: the caveat says it too
    assert "made with custom weights (trufor_recipe.pth.tar) named by $TRUFOR_WEIGHTS: " in capsys.readouterr().err
    monkeypatch.delenv("TRUFOR_WEIGHTS")
    assert main(["analyze", str(img), "-o", str(tmp_path / "ok2"), "-q", "--weights", str(recipe_ckpt)]) == 0
    err = capsys.readouterr().err
    assert "(trufor_recipe.pth.tar, sha256 " in err and "TRUFOR_WEIGHTS" not in err.replace(
        "$TRUFOR_WEIGHTS may name", ""
    )


def test_the_demo_model_named_by_trufor_weights_is_said_so(tmp_path, monkeypatch, capsys):
    """$TRUFOR_WEIGHTS set to the demo model (the path `weights info` showed) and forgotten: after
    the official checkpoint was installed, every run still said only 'Demo weights (...)', with
    nothing telling why the demo model answered. The note of reused outputs said 'named by
    $TRUFOR_WEIGHTS'; the banner of a fresh run now says it too (and not for --weights)."""
    from trufor_lab.inference.weights import find_demo

    img = _img(tmp_path / "a.png")
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(find_demo()))
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "-q"]) == 0
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "Demo weights" in ln]
    assert line.startswith(
        "note: Demo weights (small model trained by trufor_lab, not the official TruFor) named by "
        "$TRUFOR_WEIGHTS; for real analyses "
    ), line
    monkeypatch.delenv("TRUFOR_WEIGHTS")
    assert main(["analyze", str(img), "-o", str(tmp_path / "p"), "-q", "--weights", str(find_demo())]) == 0
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "Demo weights" in ln]
    assert "named by" not in line, line


def _subcommands() -> dict:
    from trufor_lab.cli import build_parser

    subs = build_parser()._subparsers._group_actions[0].choices
    assert "bench" in subs  # the checkout's own subcommand is checked too
    return subs


def test_every_device_option_lists_the_names_the_device_check_takes(tmp_path, with_weights, capsys):
    """--device's help varied by command ('cpu, cuda, cuda:1 ...', 'cpu or cuda', 'cpu, cuda or
    cuda:N') and named neither 'auto' nor 'mps', which the error of a wrong name suggests. Every
    command that checks the name with resolve_device says the same list, from one helper, and each
    name in it is one the check takes (refused only for want of the hardware here)."""
    from trufor_lab.cli.messages import device_help
    from trufor_lab.common.device import DEVICE_NAMES, resolve_device

    helps = {
        name: next(a.help for a in p._actions if "--device" in a.option_strings)
        for name, p in _subcommands().items()
        if name != "bench" and any("--device" in a.option_strings for a in p._actions)
    }
    assert set(helps) == {"analyze", "eval", "report", "distributed-analyze", "train", "casebook"}, helps
    listed = "cpu, cuda, cuda:N, mps or auto (default: auto, a CUDA GPU when there is one, else the CPU"
    assert all(h.startswith(device_help()[:-1]) and h.startswith(listed) for h in helps.values()), helps
    for name in DEVICE_NAMES:
        try:
            resolve_device(name.replace(":N", ":0"))
        except ValueError as e:
            assert "not a device name" not in str(e), e  # a name it knows, not usable on this machine
    with pytest.raises(ValueError, match="use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"):
        resolve_device("banana")
    img = _img(tmp_path / "a.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "-q", "--device", "auto"]) == 0
    # a name PyTorch knows but this toolkit does not run on: 'meta' loaded a model of no values, said
    # 'Weights changed in memory after loading', then failed every image with a PyTorch error
    capsys.readouterr()
    assert main(["analyze", str(img), "-o", str(tmp_path / "m"), "-q", "--device", "meta"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "error: device 'meta': trufor_lab runs on 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'", line
    assert not (tmp_path / "m").exists()


def test_every_subcommand_help_has_a_description():
    """`trufor-lab report --help` and `trufor-lab bench --help` (and distributed-analyze, train)
    printed usage and options with no line saying what the command does."""
    missing = [name for name, p in _subcommands().items() if not (p.description or "").strip()]
    assert missing == []
