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


@pytest.fixture()
def with_weights(monkeypatch, recipe_ckpt):
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))


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
    assert set(d.files) == {"map", "conf", "score", "imgsize", "np++"}
    assert d["map"].shape == (48, 56) and d["map"].dtype == np.float32
    assert tuple(d["imgsize"]) == (48, 56) and 0 <= float(d["score"]) <= 1
    assert d["np++"].shape == (48, 56)
    assert "2 analyzed, 0 skipped (output exists), 0 failed" in capsys.readouterr().out


def test_single_input_may_name_the_npz_and_existing_outputs_are_skipped(tmp_path, with_weights, capsys):
    img = _img(tmp_path / "x.png")
    out = tmp_path / "res" / "x_result.npz"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert set(np.load(out).files) == {"map", "conf", "score", "imgsize"}
    mtime = out.stat().st_mtime_ns
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    assert out.stat().st_mtime_ns == mtime
    assert "0 analyzed, 1 skipped" in capsys.readouterr().out
    assert main(["analyze", str(img), "-o", str(out), "-q", "--overwrite"]) == 0
    assert out.stat().st_mtime_ns != mtime


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
    buf = (good.read_bytes())
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
    assert set(d.files) == {"map", "conf", "score", "imgsize"}
    assert d["map"].shape == tuple(d["imgsize"]) and 0 <= float(d["score"]) <= 1


def test_without_checkpoint_and_demo_the_main_job_gives_noiseprint_and_says_why(tmp_path, monkeypatch, capsys,
                                                                                  shared_dir):
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "empty"))
    out = tmp_path / "o"
    assert main(["analyze", str(shared_dir / "images" / "tampered2.png"), "-o", str(out), "-q", "--no-demo"]) == 0
    cap = capsys.readouterr()
    notes = [ln for ln in cap.err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "official TruFor checkpoint" in notes[0] and "weights download" in notes[0]
    d = np.load(out / "tampered2.png.npz")
    assert set(d.files) == {"imgsize", "np++"}


def test_console_script_bad_file_has_no_traceback(tmp_path, recipe_ckpt):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    env = dict(os.environ, TRUFOR_WEIGHTS=str(recipe_ckpt))
    p = subprocess.run([sys.executable, "-m", "trufor_lab.cli", "analyze", str(bad), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert f"error: {bad}: not an image file" in p.stderr
    assert not (tmp_path / "o" / "bad.png.npz").exists()


def test_broken_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    ck = tmp_path / "broken.pth.tar"
    ck.write_bytes(b"garbage")
    img = _img(tmp_path / "i.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "o"), "--weights", str(ck)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ck) in err[0]
