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


@pytest.mark.parametrize("drop", [("conf",), ("score",), ("conf", "score"), ("imgsize",)])
def test_an_output_whose_arrays_were_removed_is_recomputed_not_skipped(
    tmp_path, recipe_ckpt, monkeypatch, capsys, drop
):
    """An output stripped of its confidence, score or size but keeping its records was skipped as
    done by ``analyze`` and ``distributed-analyze``: the folder lacked the official arrays (one
    without a map is someone else's file, refused in one line)."""
    from types import SimpleNamespace

    from trufor_lab.inference.distributed import distributed_analyze

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    img = _img(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    npz = out / "a.png.npz"
    full = dict(np.load(npz))

    def strip():
        np.savez(npz, **{k: v for k, v in full.items() if k not in drop})

    strip()
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    got = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in got.out and f"lacks {drop[0]}" in got.err
    assert set(full) == set(np.load(npz).files)
    strip()
    s = distributed_analyze([SimpleNamespace(id="a.png", image_path=img)], out, device="cpu")
    assert s["written"] == 1 and s["skipped"] == 0 and f"lacks {drop[0]}" in s["recomputed"][0][1]


def test_a_noiseprint_only_output_whose_size_was_removed_is_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    img = _img(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["analyze", str(img), "-o", str(out), "-q", "--no-demo"]) == 0
    npz = out / "a.png.npz"
    d = dict(np.load(npz))
    assert "np++" in d and "map" not in d
    np.savez(npz, **{k: v for k, v in d.items() if k != "imgsize"})
    assert main(["analyze", str(img), "-o", str(out), "-q", "--no-demo"]) == 0
    got = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in got.out and "lacks imgsize" in got.err


def test_an_output_edited_in_place_or_of_other_numerics_is_recomputed(tmp_path, recipe_ckpt, monkeypatch, capsys):
    """A map changed in place with its records kept (smoothed, thresholded to 0/1 floats, another
    image's map of the same size) was reused as the model's; and nothing said which trufor_lab
    computed an output, so a version that reads images or computes otherwise reused the older
    version's numbers."""
    from trufor_lab.inference import stored as R

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    img = _img(tmp_path / "a.png")
    out = tmp_path / "out"
    cmd = ["analyze", str(img), "-o", str(out), "-q"]
    assert main(cmd) == 0
    npz = out / "a.png.npz"
    written = dict(np.load(npz))
    assert main(cmd) == 0 and "0 analyzed, 1 skipped" in capsys.readouterr().out  # unchanged: reused
    for edit in (
        {"map": (written["map"] > 0.5).astype(np.float32)},
        {"conf": np.clip(written["conf"] * 0.9, 0, 1).astype(np.float32)},
        {"score": np.float64(0.99)},
        {R.SUMMARY_KEY: np.str_("score 0.990, map max 1.000")},  # said again on reuse
    ):
        np.savez(npz, **{**written, **edit})
        assert main(cmd) == 0
        got = capsys.readouterr()
        assert "1 analyzed, 0 skipped" in got.out and "arrays were changed after it was written" in got.err
        assert np.array_equal(np.load(npz)["map"], written["map"])
    # maps turned as viewers show the file, the mark saying so removed: not taken for the stored grid's
    assert R.reuse_problem(npz, str(written[R.INPUT_SHA256_KEY]), None) is None
    marked = {**written, R.SHOWN_KEY: np.int64(3)}
    np.savez(npz, **R.sealed({k: v for k, v in marked.items() if k not in (R.ARRAYS_SHA256_KEY, R.NUMERICS_KEY)}))
    assert "turned as viewers show" in R.reuse_problem(npz, str(written[R.INPUT_SHA256_KEY]), None)
    np.savez(npz, **{k: v for k, v in np.load(npz).items() if k != R.SHOWN_KEY})
    assert "arrays were changed" in R.reuse_problem(npz, str(written[R.INPUT_SHA256_KEY]), None)
    # written by an earlier trufor_lab (no record of its numerics), or by one whose numerics differ
    np.savez(npz, **{k: v for k, v in written.items() if k not in (R.NUMERICS_KEY, R.ARRAYS_SHA256_KEY)})
    assert main(cmd) == 0
    got = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in got.out and "computed by an earlier trufor_lab" in got.err
    monkeypatch.setattr(R, "NUMERICS", R.NUMERICS + 1)
    assert main(cmd) == 0
    got = capsys.readouterr()
    assert "1 analyzed, 0 skipped" in got.out and f"numerics {R.NUMERICS - 1} (now numerics {R.NUMERICS})" in got.err
    assert main(cmd) == 0 and "0 analyzed, 1 skipped" in capsys.readouterr().out


def test_a_result_written_and_read_back_keeps_its_arrays_exactly(recipe_model, small_image, tmp_path):
    """save_npz -> np.load: every official array as the result holds it (float32 maps, the score as
    a float64, the size), the records beside them, a Noiseprint++-only result without a score."""
    import trufor_lab as tl
    from trufor_lab.inference import stored as R

    r = tl.analyze(recipe_model, small_image[:40, :48])
    r.save_npz(tmp_path / "r.npz", save_noiseprint=True, input_sha256="0" * 64, computed="exact float32")
    with np.load(tmp_path / "r.npz", allow_pickle=False) as d:
        for key, want in r.official_dict(save_noiseprint=True).items():
            assert d[key].dtype == np.asarray(want).dtype and np.array_equal(d[key], want), key
        assert float(d["score"]) == r.score and tuple(d["imgsize"]) == r.size
        assert str(d[R.ARRAYS_SHA256_KEY]) == R.arrays_digest(d) and int(d[R.NUMERICS_KEY]) == R.NUMERICS
    assert R.reuse_problem(tmp_path / "r.npz", "0" * 64, r.weights.sha256, R.output_arrays(True, True)) is None
    npo = tl.analyze(tl.load_noiseprint(device="cpu"), small_image[:40, :48])
    npo.save_npz(tmp_path / "n.npz")
    with np.load(tmp_path / "n.npz", allow_pickle=False) as d:
        assert "score" not in d.files and "map" not in d.files and np.array_equal(d["np++"], npo.noiseprint)


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda M: M.fast(amp_dtype=None, keep_float32=("attention",)), "keep_float32.*amp_dtype"),
        (lambda M: M.fast(amp_dtype=None, amp_on_cpu=True), "amp_on_cpu.*amp_dtype"),
        (lambda M: M.exact(lean=True, compile=True), "compile.*lean=True"),
        (lambda M: M.fast(lean=True, compile=True), "compile.*lean=True"),
    ],
)
def test_mode_options_that_cannot_act_together_are_refused(make, why):
    """Accepted and ignored: parts kept float32 (or bfloat16 on the CPU) with no autocast to keep
    them out of; compiling the whole-image encoder when the lean forward was asked for."""
    from trufor_lab.inference.modes import InferenceMode

    with pytest.raises(ValueError, match=why):
        make(InferenceMode)


def test_analyze_refuses_a_lean_that_is_not_a_bool(recipe_model, small_image):
    """``lean="no"`` ran the lean forward (a truthy string), ``lean=0`` the automatic choice."""
    import trufor_lab as tl

    for bad in ("no", 0, 1.0):
        with pytest.raises(ValueError, match="lean: True, False or None"):
            tl.analyze(recipe_model, small_image[:40, :48], lean=bad)


@pytest.mark.parametrize("command", ["analyze", "report"])
def test_no_demo_with_named_weights_is_refused(tmp_path, recipe_ckpt, capsys, command):
    """``--no-demo`` chooses what answers when no TruFor checkpoint is found; with ``--weights``
    naming one it was accepted and ignored."""
    img = _img(tmp_path / "a.png")
    out = tmp_path / ("o" if command == "analyze" else "r.html")
    assert main([command, str(img), "-o", str(out), "--weights", str(recipe_ckpt), "--no-demo"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--no-demo" in err and "--weights" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "knob, value",
    [("pool.weighting", "uniform"), ("backbone.FFMs.1.cross_enabled", False), ("backbone.FRMs.0.lambda_c", 0.0)],
)
def test_an_ablation_knob_set_by_hand_is_recorded_and_never_reused_as_the_models(recipe_model, tmp_path, knob, value):
    """``model.pool.weighting = "uniform"`` by hand (the uniform_pooling ablation's knob, outside
    the ablation): analyze said nothing, and evaluate recorded its outputs as the model's
    ('exact float32'): the next run of the untouched model reused them (and the other way round)."""
    import trufor_lab as tl
    from trufor_lab.lab.datasets import folder_dataset
    from trufor_lab.lab.evaluate import evaluate

    _img(tmp_path / "ds" / "a.png")
    ds = folder_dataset(tmp_path / "ds")
    *path, attr = knob.split(".")
    mod = recipe_model.get_submodule(".".join(path))
    built = getattr(mod, attr)
    plain = evaluate(recipe_model, ds, tmp_path / "out", progress=False).rows[0]
    try:
        setattr(mod, attr, value)
        r = tl.analyze(recipe_model, tmp_path / "ds" / "a.png")
        assert any(knob in n and "computed under" in n for n in r.notes)
        turned = evaluate(recipe_model, ds, tmp_path / "out", progress=False)
        assert turned.n_reused == 0 and knob in turned.rows[0]["computed"]
        assert turned.rows[0]["computed"].startswith("exact float32 under")  # analyze ran the exact path
    finally:
        setattr(mod, attr, built)
    again = evaluate(recipe_model, ds, tmp_path / "out", progress=False)
    assert again.n_reused == 0 and again.rows[0]["computed"] == plain["computed"] == "exact float32"
    assert again.rows[0]["score"] == pytest.approx(plain["score"], abs=1e-6)


def test_bench_refuses_compile_with_a_lean_budget(capsys):
    """``--compile --budget-mib`` timed the eager lean forward as the compiled one (now the mode
    itself refuses compile with lean=True, and the bench says so in one line first)."""
    import bench.cli as cli

    args = ["--sizes", "0.003", "--device", "cpu", "--no-hooks", "--compile", "--budget-mib", "64", "-q"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--compile" in err and "--budget-mib" in err


def test_reused_outputs_of_a_model_with_untrained_heads_repeat_the_caveat_once(
    tmp_path, recipe_ckpt, monkeypatch, capsys
):
    """A checkpoint whose record says its confidence and detection heads were never trained (a
    localization run exported): the first run said its score and confidence map mean nothing; a
    rerun reusing the outputs printed the same scores without that caveat."""
    from trufor_lab.model import read_checkpoint

    obj = read_checkpoint(recipe_ckpt)  # the official container (a numpy scalar in it), read safely
    obj["meta"] = {"trained": ["localization"]}
    torch.save(obj, tmp_path / "loc_only.pt")
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(tmp_path / "loc_only.pt"))
    for k in range(2):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    cmd = ["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    said = "its confidence and detection phases were never trained"
    assert main(cmd) == 0
    first = capsys.readouterr()
    assert first.err.count(said) == 1 and "2 analyzed" in first.out
    assert main(cmd) == 0
    again = capsys.readouterr()
    assert "0 analyzed, 2 skipped" in again.out
    assert again.err.count(said) == 1, again.err  # once per run, not per image
    _img(tmp_path / "in" / "2.png", seed=2)  # one computed, two reused: said once, by the model's banner
    assert main(cmd) == 0
    mixed = capsys.readouterr()
    assert "1 analyzed, 2 skipped" in mixed.out and mixed.err.count(said) == 1, mixed.err
    ev = ["eval", "set", "--images", str(tmp_path / "in"), "-o", str(tmp_path / "ev"), "-q"]
    assert main(ev) == 0 and capsys.readouterr().err.count(said) == 1
    assert main(ev) == 0  # every output reused: eval says it too
    again = capsys.readouterr()
    assert "0 computed, 3 reused" in again.out and again.err.count(said) == 1, again.err
