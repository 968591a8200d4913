"""Reuse of stored outputs (audit): an output is reused only when everything that changes its
numbers is the same, and a stored file that was changed since it was written is recomputed."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trufor_lab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _img(path: Path, seed=0, size=48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _other_noiseprint(shared_dir: Path, dest: Path) -> Path:
    """The official Noiseprint++ with its first convolution scaled: other weights, same format."""
    obj = torch.load(shared_dir / "weights" / "noiseprint++.th", map_location="cpu", weights_only=True)
    obj["network"]["0.weight"] = obj["network"]["0.weight"] * 1.5
    torch.save(obj, dest)
    return dest


def test_eval_noiseprint_outputs_of_other_noiseprint_weights_are_recomputed(tmp_path, shared_dir, monkeypatch, capsys):
    """``eval --method noiseprint`` recorded no weights: a rerun with other Noiseprint++ weights
    ($TRUFOR_NOISEPRINT_WEIGHTS) reused the first weights' maps (0.91 apart on a pixel) as its
    own, and a variable naming no file at all was never read."""
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    _img(tmp_path / "imgs" / "a.png")
    cmd = ["eval", "--images", str(tmp_path / "imgs"), "--method", "noiseprint", "-o", str(tmp_path / "e"), "-q"]
    assert main(cmd) == 0
    assert "1 computed, 0 reused" in capsys.readouterr().out
    assert main(cmd) == 0
    assert "0 computed, 1 reused" in capsys.readouterr().out
    monkeypatch.setenv("TRUFOR_NOISEPRINT_WEIGHTS", str(_other_noiseprint(shared_dir, tmp_path / "np.th")))
    assert main(cmd) == 0
    got = capsys.readouterr()
    assert "1 computed, 0 reused" in got.out and "other weights" in got.err
    monkeypatch.setenv("TRUFOR_NOISEPRINT_WEIGHTS", str(tmp_path / "missing.th"))
    assert main(cmd) == 2
    assert "missing.th" in capsys.readouterr().err


def test_an_evaluation_never_scores_maps_turned_as_shown_against_stored_masks(recipe_model, tmp_path):
    """An ``analyze_fn`` returning maps turned as viewers show the file (``exif_transpose=True``)
    had them scored against the masks read on the stored grid: a photo turned 180° (same shape)
    got another F1 from the same analysis, unsaid (a 90° turn failed with a size mismatch)."""
    import trufor_lab as tl
    from trufor_lab.lab.datasets import folder_dataset
    from trufor_lab.lab.evaluate import evaluate

    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    img[:32, :48] = 128
    exif = Image.Exif()
    exif[0x0112] = 3  # turned 180°
    (tmp_path / "ds").mkdir()
    Image.fromarray(img).save(tmp_path / "ds" / "f.jpg", exif=exif, quality=95)
    mask = np.zeros((64, 96), np.uint8)
    mask[:32, :48] = 255
    Image.fromarray(mask).save(tmp_path / "ds" / "f_mask.png")
    ds = folder_dataset(tmp_path / "ds", None, "_mask")
    stored = evaluate(recipe_model, ds, tmp_path / "a", progress=False).rows[0]
    assert stored["status"] == "ok"
    shown = functools.partial(tl.analyze, exif_transpose=True)
    row = evaluate(recipe_model, ds, tmp_path / "b", progress=False, analyze_fn=shown).rows[0]
    assert row["status"] == "error" and "turned as viewers show" in row["error"] and "f.jpg" in row["error"]
    assert not (tmp_path / "b" / "f.jpg.npz").exists() and not list((tmp_path / "b").rglob("*.npz"))
