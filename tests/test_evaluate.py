"""evaluate(): per-image rows and summary, resumability, corrupt npz, bad images, `trufor-lab eval`."""

from __future__ import annotations

import functools

import hashlib
import json
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.stored import RECORD_KEYS
from trufor_lab.lab.datasets import Dataset, Sample, folder_dataset
from trufor_lab.lab.evaluate import ROW_COLUMNS, Evaluation, evaluate, output_path
from trufor_lab.lab.metrics import detection_metrics, localization_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class Counting:
    """analyze() wrapped to count calls; it computes what the built-in analysis computes."""

    computed = "exact float32"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model, image):
        self.calls.append(Path(image).name)
        return analyze(model, image)


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_folder_dataset) -> Path:
    root = tmp_path_factory.mktemp("evalds")
    make_folder_dataset(root)
    return root


@pytest.fixture(scope="module")
def first_run(data, recipe_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalout")
    ds = folder_dataset(data / "images", data / "masks")
    fn = Counting()
    ev = evaluate(recipe_model, ds, out, progress=False, analyze_fn=fn)
    return ds, out, ev, fn


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_rows_structure_and_values(first_run, make_folder_dataset):
    ITEMS = make_folder_dataset.items
    ds, out, ev, fn = first_run
    assert sorted(fn.calls) == sorted(n for n, *_ in ITEMS)
    assert ev.failed == [] and ev.n_computed == 5 and ev.n_reused == 0
    rows = {r["id"]: r for r in ev.rows}
    assert set(rows) == {n for n, *_ in ITEMS}
    for name, box, (h, w), q in ITEMS:
        r = rows[name]
        assert list(r) == list(ROW_COLUMNS)
        assert r["status"] == "ok" and r["label"] == int(box is not None) and r["dataset"] == "images"
        assert (r["height"], r["width"]) == (h, w) and r["megapixels"] == pytest.approx(h * w / 1e6)
        assert r["jpeg_quality"] == q
        npz = Path(r["npz"])
        assert npz == out / "images" / (name + ".npz") == output_path(out, ds, ds[[s.id for s in ds].index(name)])
        d = np.load(npz)
        assert set(d.files) - set(RECORD_KEYS) == {
            "map",
            "conf",
            "score",
            "imgsize",
        } and tuple(d["imgsize"]) == (h, w)
        assert r["score"] == pytest.approx(float(d["score"]))
        assert r["mean_conf"] == pytest.approx(float(d["conf"].mean()), rel=1e-6)
        if box is None:
            assert math.isnan(r["f1_best"]) and math.isnan(r["mask_fraction"]) and r["n_forged"] is None
            continue
        y0, y1, x0, x1 = box
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = True
        assert r["mask_fraction"] == pytest.approx(mask.mean())
        assert r["mean_conf_in_mask"] == pytest.approx(float(d["conf"][mask].mean()), rel=1e-6)
        lm = localization_metrics(d["map"], mask)  # recomputed from the npz
        for f in ("f1_best", "f1_fixed", "mcc_best", "mcc_fixed", "iou_fixed"):
            assert _same(r[f], getattr(lm, f)), f
        assert _same(r["pixel_auc"], lm.auc)
        assert (r["n_forged"], r["n_pristine"]) == (lm.n_forged, lm.n_pristine)
    assert rows["fake_c.png"]["n_forged"] == 0 and rows["fake_c.png"]["f1_best"] == 0  # eroded away


def test_summary_matches_rows(first_run):
    _, _, ev, _ = first_run
    s = ev.summary["images"]
    assert (s["n_images"], s["n_ok"], s["n_failed"], s["n_fake"], s["n_real"], s["n_localized"]) == (5, 5, 0, 3, 2, 3)
    det = detection_metrics([r["score"] for r in ev.rows], [r["label"] for r in ev.rows])
    assert _same(s["detection_auc"], det.auc) and _same(s["balanced_accuracy"], det.balanced_accuracy)
    fakes = [r for r in ev.rows if r["label"] == 1]
    assert s["f1_best"] == pytest.approx(np.mean([r["f1_best"] for r in fakes]))
    vals = np.array([r["f1_fixed"] for r in fakes])
    assert s["f1_fixed_n_nan"] == int(np.isnan(vals).sum())
    table = ev.summary_table()
    assert table[0]["dataset"] == "images" and "<table>" in ev._repr_html_()
    assert "images: 5 image(s) (3 fake, 2 real)" in ev.summary_lines()[0]
    # the summary says what made its numbers, and never one model for rows that several made
    assert s["computed"] == ev.rows[0]["computed"] == "exact float32"
    assert s["weights_sha256"] == ev.rows[0]["weights_sha256"]
    rows = [dict(r, weights_sha256=d) for r, d in zip(ev.rows, ["a" * 64, "b" * 64, "a" * 64, "a" * 64, "a" * 64])]
    assert Evaluation(rows).summary["images"]["weights_sha256"] == f"mixed: {'a' * 64}, {'b' * 64}"


def test_csv_round_trip(first_run, tmp_path):
    _, _, ev, _ = first_run
    p = tmp_path / "rows.csv"
    ev.to_csv(p)
    assert not list(tmp_path.glob(".*tmp"))
    back = Evaluation.from_csv(p)
    assert len(back.rows) == len(ev.rows)
    for a, b in zip(ev.rows, back.rows):
        for k in ROW_COLUMNS:
            va, vb = a[k], b[k]
            if isinstance(va, float):
                assert _same(float(vb), va) or vb == pytest.approx(va, rel=1e-9), k
            else:
                assert vb == va, k
    assert back.summary["images"]["n_localized"] == 3


def test_second_run_resumes_without_recomputing(first_run, recipe_model):
    ds, out, ev, _ = first_run
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    fn = Counting()
    ev2 = evaluate(recipe_model, ds, out, progress=False, analyze_fn=fn)
    assert fn.calls == [] and ev2.n_reused == 5 and ev2.n_computed == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == mtimes
    for a, b in zip(ev.rows, ev2.rows):
        assert all(_same(a[k], b[k]) for k in ROW_COLUMNS if k != "reused")


def test_outputs_computed_another_way_are_not_reused(first_run, recipe_model, tmp_path, capsys):
    """An evaluation under an ablation (a custom analyze_fn), then the plain one into the same
    folder: the ablated maps were reused as the model's (only input and weights were checked)."""
    import shutil

    ds, out, _, _ = first_run
    out2 = tmp_path / "copy"
    shutil.copytree(out, out2)

    class Ablated(Counting):
        computed = "exact float32, stage 1 fusion ablated"

    fn = Ablated()
    ev = evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn)
    assert ev.n_computed == 5 and len(fn.calls) == 5
    assert "computed as exact float32 (now exact float32, stage 1 fusion ablated)" in capsys.readouterr().err
    again = Ablated()
    assert evaluate(recipe_model, ds, out2, progress=False, analyze_fn=again).n_reused == 5 and not again.calls
    one = Dataset(ds.name, ds.root, ds[:1], ds.convention)
    ev = evaluate(recipe_model, one, out2, progress=False)  # the built-in analysis: exact float32
    assert ev.n_computed == len(one) and "(now exact float32)" in capsys.readouterr().err

    def unnamed(model, image):
        return analyze(model, image)

    ev = evaluate(recipe_model, one, out2, progress=False, analyze_fn=unnamed)  # says nothing: its name
    assert ev.n_computed == 1 and "(now custom test_outputs" in capsys.readouterr().err
    assert evaluate(recipe_model, one, out2, progress=False, analyze_fn=unnamed).n_reused == 1

    def scaled(model, image, strength):
        r = analyze(model, image)
        r.score = r.score * strength
        return r

    # two settings of one ablation share a name: the second reused the first one's maps and scores
    half = evaluate(recipe_model, one, out2, progress=False, analyze_fn=functools.partial(scaled, strength=0.5))
    zero = evaluate(recipe_model, one, out2, progress=False, analyze_fn=functools.partial(scaled, strength=0.0))
    assert half.n_computed == zero.n_computed == 1 and zero.rows[0]["score"] == 0 < half.rows[0]["score"]
    again = evaluate(recipe_model, one, out2, progress=False, analyze_fn=functools.partial(scaled, strength=0.0))
    assert again.n_reused == 1


def test_an_evaluation_inside_an_ablation_is_never_reused_as_the_models(first_run, recipe_model, tmp_path):
    """evaluate() inside `with ablate.rgb_only(model):` recorded its outputs as "exact float32":
    the ablated run reused the model's outputs (and a later plain run the ablated ones), with
    every row's score wrong and no word said. A user's hook cannot be named: never reused."""
    import shutil

    from trufor_lab.interpret import ablations as ab

    ds, out, base, _ = first_run
    one = Dataset(ds.name, ds.root, ds[:2], ds.convention)
    out2 = tmp_path / "copy"
    shutil.copytree(out, out2)
    with ab.rgb_only(recipe_model) as abl:
        ablated = evaluate(recipe_model, one, out2, progress=False)
        truth_results = [abl.analyze(s.image_path) for s in one]
    truth = [r.score for r in truth_results]
    # what analyze ran, said (the baseline row of an ablation study differed from analyze() unsaid)
    assert "ran the plain forward (rgb_only active): maps may differ from the exact path by ~1e-3" in (
        truth_results[0].notes
    )
    assert ablated.n_computed == 2 and ablated.rows[0]["computed"] == "plain float32 under rgb_only"
    assert [r["score"] for r in ablated.rows] == pytest.approx(truth, abs=1e-6)
    assert [r["score"] for r in ablated.rows] != pytest.approx([r["score"] for r in base.rows[:2]], abs=1e-4)
    with ab.rgb_only(recipe_model):
        assert evaluate(recipe_model, one, out2, progress=False).n_reused == 2  # the same setting: reused
    with ab.drop_scales(recipe_model, 4):  # an ablation by forward hooks: its own, not a user's
        first = evaluate(recipe_model, one, out2, progress=False)
        assert first.rows[0]["computed"] == "plain float32 under drop_c4"
        assert evaluate(recipe_model, one, out2, progress=False).n_reused == 2
    plain = evaluate(recipe_model, one, out2, progress=False)
    assert plain.n_computed == 2 and plain.rows[0]["computed"] == "exact float32"
    assert [r["score"] for r in plain.rows] == pytest.approx([r["score"] for r in base.rows[:2]], abs=1e-6)
    h = recipe_model.detection.register_forward_hook(lambda m, i, o: o * 0)
    try:
        hooked = [evaluate(recipe_model, one, out2, progress=False) for _ in range(2)]
    finally:
        h.remove()
    assert [ev.n_computed for ev in hooked] == [2, 2]
    assert hooked[0].rows[0]["computed"].startswith("plain float32 under hooks on detection #")


def test_corrupt_npz_is_recomputed_and_overwrite_recomputes_all(first_run, recipe_model, tmp_path):
    ds, out, ev, _ = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    with zipfile.ZipFile(out2 / "images" / "fake_a.png.npz", "w") as z:  # an output of ours, damaged
        z.writestr("map.npy", b"\x93NUMPY garbage")
    np.savez(out2 / "images" / "real_a.png.npz", map=np.zeros((10, 10), np.float32))  # wrong keys/size
    fn = Counting()
    ev2 = evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn)
    assert sorted(fn.calls) == ["fake_a.png", "real_a.png"] and ev2.n_reused == 3
    rows = {r["id"]: r for r in ev2.rows}
    before = {r["id"]: r for r in ev.rows}
    assert rows["fake_a.png"]["f1_best"] == pytest.approx(before["fake_a.png"]["f1_best"])
    assert set(np.load(out2 / "images" / "fake_a.png.npz").files) == {
        "map",
        "conf",
        "score",
        "imgsize",
        "trufor_lab_input_sha256",
        "trufor_lab_input_path_sha256",
        "trufor_lab_weights_sha256",
        "trufor_lab_computed",
        "trufor_lab_summary",
        "trufor_lab_arrays_sha256",
        "trufor_lab_numerics",
    }
    one = Dataset(ds.name, ds.root, ds[:1], ds.convention)
    fn = Counting()
    evaluate(recipe_model, one, out2, progress=False, analyze_fn=fn, overwrite=True)
    assert fn.calls == [ds[0].image_path.name]
    # someone's file under an output's name (text, another npz) is never overwritten unasked
    for theirs in (b"my notes", None):
        target = out2 / "images" / "fake_a.png.npz"
        if theirs is None:
            np.savez(target, data=np.arange(5))
        else:
            target.write_bytes(theirs)
        before_bytes = target.read_bytes()
        fn = Counting()
        ev3 = evaluate(recipe_model, one, out2, progress=False, analyze_fn=fn)
        assert fn.calls == [] and target.read_bytes() == before_bytes
        assert "exists and is not an analysis output" in ev3.rows[0]["error"]


def test_bad_images_are_reported_and_the_rest_continue(data, first_run, recipe_model, tmp_path):
    _, out, _, _ = first_run
    imgs = tmp_path / "images"
    shutil.copytree(data / "images", imgs)
    (imgs / "broken.png").write_bytes(b"\x89PNG garbage")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(imgs / "tiny.png")
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    ds = folder_dataset(imgs, data / "masks")
    fn = Counting()
    ev = evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn)
    assert fn.calls == ["tiny.png"]  # the good images are reused, broken.png is not analyzed
    assert len(ev.failed) == 2 and all("\n" not in m for m in ev.failed)
    assert any("broken.png" in m for m in ev.failed) and any("tiny.png" in m for m in ev.failed)
    bad = [r for r in ev.rows if r["status"] == "error"]
    assert {r["id"] for r in bad} == {"broken.png", "tiny.png"} and all(r["error"] for r in bad)
    s = ev.summary["images"]
    assert (s["n_images"], s["n_ok"], s["n_failed"]) == (7, 5, 2)


def test_noiseprint_only_model_is_refused(data, tmp_path):
    from trufor_lab.model import Noiseprint

    ds = folder_dataset(data / "images", data / "masks")
    with pytest.raises(ValueError, match="Noiseprint"):
        evaluate(Noiseprint().eval(), ds, tmp_path, progress=False)


# -- CLI ------------------------------------------------------------------------------------


def test_cli_eval_folder_writes_csv_and_summary(data, first_run, recipe_ckpt, monkeypatch, tmp_path, capsys):
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    _, out, ev, _ = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)  # outputs exist: the CLI reuses them (fast)
    (out2 / "images" / "real_b.jpg.npz").unlink()  # ... but one is computed by the CLI's model
    rc = main(["eval", "--images", str(data / "images"), "--masks", str(data / "masks"), "-o", str(out2), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "5 images: 1 computed, 4 reused" in captured.out and "images: 5 image(s)" in captured.out
    back = Evaluation.from_csv(out2 / "images.per_image.csv")
    assert len(back.rows) == 5 and all(r["status"] == "ok" for r in back.rows)
    summary = json.loads((out2 / "images.summary.json").read_text())
    assert summary["images"]["n_fake"] == 3 and summary["images"]["n_localized"] == 3
    assert (out2 / "images.summary.csv").read_text().startswith("dataset,")
    assert summary["images"]["weights_sha256"] == hashlib.sha256(recipe_ckpt.read_bytes()).hexdigest()
    assert summary["images"]["computed"] == "exact float32"
    rb = {r["id"]: r for r in back.rows}["real_b.jpg"]
    assert rb["score"] == pytest.approx({r["id"]: r for r in ev.rows}["real_b.jpg"]["score"], abs=1e-5)


def test_cli_eval_exits_1_with_a_bad_image(data, first_run, recipe_ckpt, monkeypatch, tmp_path, capsys):
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    _, out, _, _ = first_run
    imgs = tmp_path / "images"
    shutil.copytree(data / "images", imgs)
    (imgs / "broken.png").write_bytes(b"garbage")
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    rc = main(["eval", "--images", str(imgs), "--masks", str(data / "masks"), "-o", str(out2), "-q"])
    captured = capsys.readouterr()
    assert rc == 1
    err_lines = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "broken.png" in err_lines[0]
    assert "1 failed" in captured.out
    assert (out2 / "images.per_image.csv").is_file()


def test_cli_eval_list_dataset_and_usage_errors(data, first_run, recipe_ckpt, monkeypatch, tmp_path, capsys):
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    fake = tmp_path / "mine_fake.txt"
    fake.write_text("images/fake_a.png,masks/fake_a.png\n")
    real = tmp_path / "mine_real.txt"
    real.write_text("images/real_a.png\n")
    _, out, _, _ = first_run
    out2 = tmp_path / "out"
    (out2 / "mine" / "images").mkdir(parents=True)
    for n in ("fake_a.png", "real_a.png"):  # the npz layout mirrors the list paths
        shutil.copy(out / "images" / (n + ".npz"), out2 / "mine" / "images" / (n + ".npz"))
    import importlib

    load_module = importlib.import_module("trufor_lab.inference.load")  # (trufor_lab.inference.load is the function)

    def no_load(*a, **kw):
        raise AssertionError("the checkpoint should not be read when every output exists")

    with monkeypatch.context() as mp:
        mp.setattr(load_module, "load", no_load)
        rc = main(["eval", str(fake), "--root", str(data), "--real-list", str(real), "-o", str(out2), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2 images: 0 computed, 2 reused" in captured.out
    # nothing was loaded, yet the numbers still say whose they are (custom, unverified weights)
    assert "note: these results were made with custom weights (trufor_recipe.pth.tar)" in captured.err
    rc = main(
        [
            "eval",
            "--images",
            str(data / "images"),
            "-o",
            str(tmp_path / "fresh"),
            "-q",
            "--weights",
            str(tmp_path / "nope.pth"),
        ]
    )
    assert rc == 2 and "nope.pth" in capsys.readouterr().err
    assert main(["eval", "-o", str(tmp_path / "x"), "-q"]) == 1
    assert "--images" in capsys.readouterr().err
    assert main(["eval", "CASIA1", "--root", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x"), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    # an image on both lists would be a fake and a real at once: refused before any work
    real.write_text("images/real_a.png\nimages/fake_a.png\n")
    rc = main(["eval", str(fake), "--root", str(data), "--real-list", str(real), "-o", str(tmp_path / "y"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "fake_a.png: listed as fake and as real" in err[0]
    assert not (tmp_path / "y").exists()


def test_an_npz_of_another_image_or_other_weights_is_recomputed(first_run, recipe_model, tmp_path, capsys):
    """Other weights: recomputed with a one-line note. An output made from another image
    (another path, other content: another dataset's image of the same name written into the same
    output folder) was recomputed too, losing that image's result unsaid: now that sample fails
    with one line, and ``overwrite`` replaces it. The same image edited is recomputed."""
    ds, out, ev, _ = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    other = out2 / "images" / "real_a.png.npz"
    shutil.copy(out2 / "images" / "fake_a.png.npz", other)  # an output made from another image
    fn = Counting()
    ev2 = evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn)
    assert fn.calls == [] and ev2.n_reused == 4 and len(ev2.failed) == 1
    assert "real_a.png.npz: holds the analysis of another input file" in ev2.failed[0]
    assert "(overwrite to replace" in ev2.failed[0]
    fn = Counting()
    evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn, overwrite=True)
    assert len(fn.calls) == 5
    fn = Counting()
    evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn, weights_sha256="0" * 64)
    assert len(fn.calls) == 5 and "made with other weights" in capsys.readouterr().err


def test_an_id_that_escapes_the_output_folder_is_refused_and_the_rest_goes_on(first_run, recipe_model, tmp_path):
    ds, out, _, _ = first_run
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    img, img2 = outside / "x.png", outside / "b" / "x.png"  # two files: one file listed twice is refused
    img2.parent.mkdir()
    shutil.copy(ds[0].image_path, img)
    shutil.copy(ds[0].image_path, img2)
    bad = [
        Sample(img, None, 0, ds.name, "../../escaped.png"),
        Sample(img2, None, 0, ds.name, str(tmp_path / "abs.png")),
    ]
    mixed = Dataset(ds.name, ds.root, [*bad, ds[1]], ds.convention)
    out2 = tmp_path / "out"
    fn = Counting()
    ev = evaluate(recipe_model, mixed, out2, progress=False, analyze_fn=fn)
    assert len(ev.failed) == 2 and all(len(m.splitlines()) == 1 and "x.png" in m for m in ev.failed)
    assert "'../../escaped.png'" in ev.failed[0] and "abs.png" in ev.failed[1]
    assert [r["status"] for r in ev.rows] == ["error", "error", "ok"] and fn.calls == [ds[1].image_path.name]
    assert not list(tmp_path.glob("*.npz")) and not (tmp_path / "escaped.png.npz").exists()


def test_a_float64_map_scores_as_saved_so_a_resumed_run_agrees(data, recipe_model, tmp_path):
    """A float64 map (``--precision float64``) with values just above 0.5: the first run must
    score what it saves (float32), as the resumed run, which reads the npz, does."""
    import dataclasses

    ds = folder_dataset(data / "images", data / "masks")

    def near_half(model, image):
        r = analyze(model, image)
        s = next(s for s in ds if s.image_path == Path(image))
        m = np.full(r.map.shape, 0.2)
        if s.label:
            m[ds.load_mask(s)] = 0.5 + 1e-9  # above 0.5 in float64, exactly 0.5 in float32
        return dataclasses.replace(r, map=m)

    first = evaluate(recipe_model, ds, tmp_path, progress=False, analyze_fn=near_half)
    again = evaluate(recipe_model, ds, tmp_path, progress=False, analyze_fn=near_half)
    assert all(r["reused"] for r in again.rows)
    f1 = [r["f1_fixed"] for r in first.rows if r["label"] == 1]
    assert f1 and all(_same(a, b["f1_fixed"]) for a, b in zip(f1, [r for r in again.rows if r["label"] == 1]))


def test_a_fake_with_an_unusable_mask_still_counts_for_detection(tmp_path):
    """A mask of another size made the whole image a failure, so its valid score left the
    detection AUC (0.75 over the four scores became 1.0 over three); the official protocol
    computes detection from scores and labels alone."""
    from trufor_lab.inference.result import Result

    rng = np.random.default_rng(0)
    scores = {"r1": 0.2, "r2": 0.6, "f1": 0.7, "f2": 0.4}
    samples = []
    for name in scores:
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
        mask = None
        if name.startswith("f"):
            mask = tmp_path / f"{name}_mask.png"
            m = np.zeros((24, 24 if name == "f1" else 25), np.uint8)  # f2's mask is one pixel wider
            m[:, :12] = 255
            Image.fromarray(m).save(mask)
        samples.append(Sample(tmp_path / f"{name}.png", mask, int(name[0] == "f"), "toy", name))

    def fn(model, path):
        m = np.zeros((24, 24), np.float32)
        m[:, :12] = 0.9
        return Result(
            image=np.zeros((24, 24, 3), np.uint8),
            noiseprint=np.zeros((24, 24), np.float32),
            map=m,
            conf=np.ones((24, 24), np.float32),
            score=scores[Path(path).stem],
        )

    ev = evaluate(None, Dataset("toy", tmp_path, samples), tmp_path / "out", progress=False, analyze_fn=fn)
    s = ev.summary["toy"]
    full = detection_metrics(list(scores.values()), [0, 0, 1, 1])
    assert (s["n_fake"], s["n_real"], s["n_localized"], s["n_mask_unusable"]) == (2, 2, 1, 1)
    assert "over 1 mask(s) (1 fake(s) without a usable mask)" in ev.summary_lines()[0]  # was: '0 failed' only
    assert s["detection_auc"] == full.auc == 0.75 and s["balanced_accuracy"] == full.balanced_accuracy
    assert len(ev.failed) == 1 and "f2_mask.png" in ev.failed[0] and "localization not scored" in ev.failed[0]
    row = next(r for r in ev.rows if r["id"] == "f2")
    assert row["status"] == "ok" and row["score"] == 0.4 and math.isnan(row["f1_best"])
    ev.to_csv(tmp_path / "rows.csv")
    back = Evaluation.from_csv(tmp_path / "rows.csv")
    assert back.summary["toy"]["detection_auc"] == 0.75
    # re-saved by a spreadsheet (a byte-order mark first): every row's dataset read as None
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "rows.csv").read_bytes())
    assert Evaluation.from_csv(tmp_path / "bom.csv").summary["toy"]["detection_auc"] == 0.75
    # the summary CSV beside it (or any table) read as one failed row of None
    ev.write_summary(tmp_path / "s.json", tmp_path / "s.csv")
    with pytest.raises(ValueError, match=r"s\.csv: not a per-image CSV written by trufor_lab \(its header has no id, "):
        Evaluation.from_csv(tmp_path / "s.csv")
    fakes = Dataset("fakes", tmp_path, [x for x in samples if x.label == 1])
    line = evaluate(None, fakes, tmp_path / "out2", progress=False, analyze_fn=fn).summary_lines()[0]
    assert "only fake images: TPR 0.5 at 0.5 (AUC and bACC need both classes)" in line and "bACC 1" not in line


def test_an_output_with_matching_records_but_bad_arrays_is_recomputed(first_run, recipe_model, tmp_path):
    """Reuse trusted the recorded hashes alone: a map scaled x50, NaN or of a forged huge shape
    (decompressed before any check) was reused as done, and a member the zip reader cannot
    read (encrypted, unknown method) raised through the whole batch."""
    import io
    import zipfile

    from trufor_lab.inference.stored import reuse_problem

    ds, out, ev, _ = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    npz = next((out2 / "images").glob("*.npz"))
    with np.load(npz) as d:
        good = {k: d[k] for k in d.files}
    rec = (str(good["trufor_lab_input_sha256"]), None)

    def write(**changes):
        np.savez(npz, **{**good, **changes})

    write(map=good["map"] * 50)
    assert "outside 0..1" in reuse_problem(npz, *rec)
    write(map=np.full_like(good["map"], np.nan))
    assert "NaN" in reuse_problem(npz, *rec)
    write(score=np.float64(7.5))
    assert "score" in reuse_problem(npz, *rec)
    write(conf=good["conf"][:-1])
    assert "not the image's" in reuse_problem(npz, *rec)
    # a header declaring 10^11 elements (zip bomb): refused from the header, nothing decompressed
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)})
    with zipfile.ZipFile(npz, "w") as z:
        for k, v in good.items():
            if k != "map":
                with z.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, np.asarray(v))
        z.writestr("map.npy", buf.getvalue() + b"\0" * 64)
    assert "larger than any image" in reuse_problem(npz, *rec) or "not the image's" in reuse_problem(npz, *rec)
    write()
    raw = bytearray(npz.read_bytes())
    at = raw.find(b"PK\x01\x02")  # central directory: flag the first member encrypted
    raw[at + 8] |= 0x1
    npz.write_bytes(bytes(raw))  # zipfile now raises RuntimeError reading it
    assert reuse_problem(npz, *rec).startswith("existing output unreadable")
    # evaluate recomputes such an output instead of stopping or reusing it
    write(map=good["map"] * 50)
    fn = Counting()
    ev2 = evaluate(recipe_model, ds, out2, progress=False, analyze_fn=fn)
    assert fn.calls == [Path(npz.name).stem] and not ev2.failed
    for a, b in zip(ev.rows, ev2.rows):
        assert _same(a["score"], b["score"]) or a["score"] == pytest.approx(b["score"], abs=1e-6)


@pytest.mark.parametrize("orientation", [3, 6])
def test_tiff_images_and_masks_with_an_orientation_are_scored_on_one_grid(tmp_path, orientation):
    """A perfect map of a TIFF fake with EXIF orientation 3 scored F1 0.31 without a word (the
    mask was read turned, the image analysed as stored); with 6 the fake was refused as 'mask
    size differs'."""
    from trufor_lab.inference.preprocess import load_image
    from trufor_lab.inference.result import Result

    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((64, 96), np.uint8)
    mask[6:40, 10:70] = 255
    for arr, path in ((np.repeat(mask[..., None], 3, 2), "imgs/f.tif"), (mask, "masks/f.tif")):
        im = Image.fromarray(arr)
        ex = im.getexif()
        ex[0x0112] = orientation
        im.save(tmp_path / path, exif=ex)

    def perfect(_model, path):  # a detector that finds exactly what the image shows
        rgb = load_image(path).rgb
        h, w = rgb.shape[:2]
        on = (rgb[..., 0] > 0).astype(np.float32)
        return Result(
            image=rgb, noiseprint=np.zeros((h, w), np.float32), map=on, conf=np.ones((h, w), np.float32), score=0.9
        )

    ds = folder_dataset(tmp_path / "imgs", tmp_path / "masks")
    ev = evaluate(
        None, ds, tmp_path / "out", progress=False, analyze_fn=perfect, weights_sha256="0" * 64, computed="test"
    )
    (row,) = ev.rows
    assert not row.get("error") and row["f1_best"] == pytest.approx(1.0), row


# --------------------------------------------------------------------------------------------
# review findings: what a summary says must agree with its rows, and nothing is dropped quietly
# --------------------------------------------------------------------------------------------

BOX = (24, 72, 24, 72)


class Box:
    """A cheap analyze_fn: map 0.9 on the centre box, 0.1 elsewhere; scores by file stem;
    ``nan_map``: NaN in a corner (a scored pristine pixel) of these stems' maps."""

    def __init__(self, computed="box v1", scores=None, nan_map=(), flat=()):
        self.computed, self.scores, self.nan_map, self.flat = computed, scores or {}, nan_map, flat

    def __call__(self, model, path):
        from trufor_lab.inference.result import Result

        stem = Path(path).stem
        im = np.asarray(Image.open(path).convert("RGB"))
        h, w = im.shape[:2]
        m = np.full((h, w), 0.1, np.float32)
        if stem not in self.flat:
            m[BOX[0] : BOX[1], BOX[2] : BOX[3]] = 0.9
        if stem in self.nan_map:
            m[:10, :10] = np.nan
        return Result(
            image=im,
            noiseprint=np.zeros((h, w), np.float32),
            map=m,
            conf=np.ones((h, w), np.float32),
            score=self.scores.get(stem, 0.7),
        )


def _boxes(root, fakes=("f0", "f1"), reals=("a0",), *, white_forged=True, boxes=None, sizes=None):
    """images/<stem>.png (96x96 noise) and masks/<stem>.png (the centre box) under ``root``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem in (*fakes, *reals):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
    for stem in fakes:
        h, w = (sizes or {}).get(stem, (96, 96))
        y0, y1, x0, x1 = (boxes or {}).get(stem, BOX)
        m = np.zeros((h, w), np.uint8)
        m[y0:y1, x0:x1] = 255
        Image.fromarray(m if white_forged else 255 - m).save(root / "masks" / f"{stem}.png")
    return root / "images", root / "masks"


def test_masks_read_inverted_are_flagged_in_the_summary_and_on_stderr(tmp_path, capsys):
    """Black-on-white masks read white = forged gave AUC 0 and mask fractions 0.75, no warning."""
    from trufor_lab.lab.datasets import BLACK_FORGED, MaskConvention

    imgs, masks = _boxes(tmp_path / "ds", white_forged=False)
    fn = Box(scores={"a0": 0.2})
    ev = evaluate(
        None, folder_dataset(imgs, masks, convention=MaskConvention()), tmp_path / "o1", progress=False, analyze_fn=fn
    )
    s = ev.summary["images"]
    assert [r["mask_fraction"] for r in ev.rows if r["label"] == 1] == [0.75, 0.75]
    assert s["mask_note"].startswith("masks look inverted? 2 of 2 usable mask(s) are more than half forged")
    assert "masks look inverted?" in ev.summary_lines()[0]
    assert "note: images: masks look inverted?" in capsys.readouterr().err
    ev.to_csv(tmp_path / "rows.csv")
    assert Evaluation.from_csv(tmp_path / "rows.csv").summary["images"]["mask_note"] == s["mask_note"]
    right = evaluate(
        None, folder_dataset(imgs, masks, convention=BLACK_FORGED), tmp_path / "o2", progress=False, analyze_fn=fn
    )
    assert right.summary["images"]["mask_note"] is None and "inverted" not in right.summary_lines()[0]
    assert "inverted" not in capsys.readouterr().err
    assert right.summary["images"]["pixel_auc"] == 1


def test_evaluate_says_how_the_dataset_was_read(tmp_path, capsys):
    """A folder named like a benchmark takes its mask convention, said in the dataset's notes:
    only the CLI printed them, a notebook's evaluate() said nothing."""
    imgs, masks = _boxes(tmp_path / "DSO-1", white_forged=False)
    ds = folder_dataset(imgs, masks, name="DSO-1")
    assert ds.notes
    evaluate(None, ds, tmp_path / "o", progress=False, analyze_fn=Box(scores={"a0": 0.2}))
    err = capsys.readouterr().err
    assert all(f"note: {line}" in err for line in ds.note_lines())
    assert "DSO-1: DSO-1:" not in err and any("named like the benchmark DSO-1" in n for n in ds.notes)


def test_the_mask_convention_is_recorded_in_rows_csv_and_summary(tmp_path):
    """The results did not say how masks were read, so a later reader had to guess."""
    import dataclasses

    from trufor_lab.lab.datasets import COLUMBIA_EDGEMASK, MaskConvention
    from trufor_lab.lab.eval_rows import convention_from_record, convention_record

    for conv in (
        MaskConvention(),
        MaskConvention(invert=True, threshold=127),
        MaskConvention(channel=0),
        COLUMBIA_EDGEMASK,
    ):
        assert convention_from_record(convention_record(conv)) == conv
    imgs, masks = _boxes(tmp_path / "ds")
    ds = folder_dataset(imgs, masks)
    ds.convention = dataclasses.replace(ds.convention, threshold=127)
    ev = evaluate(None, ds, tmp_path / "out", progress=False, analyze_fn=Box())
    assert {convention_from_record(r["mask_convention"]) for r in ev.rows} == {ds.convention}
    ev.to_csv(tmp_path / "rows.csv")
    ev.write_summary(tmp_path / "s.json")
    back = Evaluation.from_csv(tmp_path / "rows.csv")
    assert [r["mask_convention"] for r in back.rows] == [r["mask_convention"] for r in ev.rows]
    recorded = json.loads((tmp_path / "s.json").read_text())["images"]["mask_convention"]
    assert convention_from_record(recorded).threshold == 127


def test_a_nan_score_is_said_not_dropped_quietly(tmp_path):
    """A NaN score left detection with the row 'ok' and no word but n_score_dropped in JSON."""
    imgs, masks = _boxes(tmp_path / "ds", fakes=("f0", "f1", "f2"), reals=("a0", "a1"))
    fn = Box(scores={"f0": math.nan, "f1": 0.9, "f2": 0.8, "a0": 0.1, "a1": 0.2})
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=fn)
    row = next(r for r in ev.rows if r["id"] == "f0.png")
    assert row["status"] == "ok" and "f0.png: score is NaN" in row["error"] and row["not_scored"] == "score"
    assert row["f1_best"] == 1  # the map still localizes
    s = ev.summary["images"]
    assert (s["n_ok"], s["n_fake"], s["n_real"], s["n_score_dropped"], s["n_failed"]) == (5, 2, 2, 1, 1)
    line = ev.summary_lines()[0]
    assert "(2 fake, 2 real, 1 score(s) dropped (not finite))" in line and "1 failed" in line
    assert ev.failed == [row["error"]]


def test_f1_means_say_over_how_many_images_when_some_are_nan(tmp_path):
    """'F1 ... fixed X over 3 mask(s)' hid that one fixed F1 was NaN and skipped."""
    imgs, masks = _boxes(tmp_path / "ds", fakes=("f0", "f1", "f2"), boxes={"f2": (5, 15, 80, 90)})
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=Box(flat=("f2",)))
    s = ev.summary["images"]
    assert (s["n_localized"], s["f1_fixed_n_nan"], s["f1_best_n_nan"]) == (3, 1, 0)
    line = ev.summary_lines()[0]
    assert "fixed 1 (2 of 3) over 3 mask(s)" in line and f"F1 best {s['f1_best']:.4g}," in line


def test_every_nan_the_localization_means_skip_is_said_in_the_summary_line(tmp_path):
    """An analyze_fn's maps of 0..255 read "fixed nan (0 of 3)" and a mask of scattered dots (no
    pixel left to score) "F1 best 1 (2 of 3)", without a word why. Each NaN now has its reason:
    a map outside 0..1 (no metric at 0.5), a one-class mask whose map agrees at 0.5, a mask that
    leaves nothing to score; from a CSV too, one written before the map's range was recorded included."""
    import csv

    imgs, masks = _boxes(tmp_path / "ds", fakes=("f0", "f1", "f2", "f3"), boxes={"f2": (5, 15, 80, 90)})
    dots = np.zeros((96, 96), np.uint8)
    dots[::6, ::6] = 255  # dilated, it covers the picture; eroded, nothing is left
    Image.fromarray(dots).save(masks / "f3.png")

    class Scaled(Box):
        def __call__(self, model, path):
            r = super().__call__(model, path)
            return r if Path(path).stem != "f1" else Result(r.image, r.noiseprint, r.map * 255, r.conf, r.score)

    from trufor_lab.inference.result import Result

    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=Scaled(flat=("f2",)))
    rows = {r["id"]: r for r in ev.rows}
    assert [rows[f"f{i}.png"]["map_probability"] for i in range(4)] == [True, False, True, True]
    s = ev.summary["images"]
    assert (s["n_map_not_probability"], s["n_mask_one_class_no_fixed"], s["n_mask_unscored"]) == (1, 1, 1)
    assert s["f1_fixed_n_nan"] == 3 and s["f1_best_n_nan"] == 1  # each said once below
    line = ev.summary_lines()[0]
    assert "F1 best 0.6667 (3 of 4), fixed 1 (1 of 4) over 4 mask(s)" in line, line
    assert "whatever the map; 1 of them no F1 at 0.5: the map there holds that one class too)" in line, line
    assert "(1 mask(s) leaving no pixel to score after the official erosion and dilation: no metric for them)" in line
    assert "(1 map(s) with values outside 0..1: no metric at 0.5 for them)" in line, line
    ev.to_csv(tmp_path / "rows.csv")
    assert Evaluation.from_csv(tmp_path / "rows.csv").summary_lines() == [line]
    with open(tmp_path / "rows.csv", newline="", encoding="utf-8") as f:
        old = [{k: v for k, v in r.items() if k != "map_probability"} for r in csv.DictReader(f)]
    with open(tmp_path / "old.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(old[0]))
        w.writeheader(), w.writerows(old)
    assert Evaluation.from_csv(tmp_path / "old.csv").summary_lines() == [line]


def test_an_old_csv_row_of_a_one_class_mask_and_a_logit_map_is_not_said_to_agree_at_half():
    """A CSV written before map_probability was recorded: a one-class mask scored on a map of
    logits (no metric at 0.5) was said to be one 'whose map holds that one class at 0.5 too'. Its
    best threshold, a value of the map, lies outside 0..1: the map is no probability."""
    from trufor_lab.lab.eval_rows import summarize

    forged = np.ones((64, 64), bool)  # all forged: one class after the erosion
    logits = np.where(forged, -3.0, 0.0)
    logits[:8] = 5.0
    pristine = np.zeros((64, 64), bool)
    maps = {
        "logits": (logits, forged),
        "agrees": (np.full((64, 64), 0.9), forged),
        "low": (np.zeros((64, 64)), pristine),
    }
    rows = {}
    for name, (m, mask) in maps.items():
        lm = localization_metrics(m, mask)
        kept = ("f1_best", "f1_fixed", "n_forged", "n_pristine", "best_threshold")
        rows[name] = {"status": "ok", "label": 1, "score": 0.9, **{k: getattr(lm, k) for k in kept}}
        rows[name]["map_probability"] = lm.probability
    assert all(math.isnan(r["f1_fixed"]) for r in rows.values())
    old = [{k: v for k, v in r.items() if k != "map_probability"} for r in rows.values()]
    for given in (list(rows.values()), old):
        s = summarize(given)
        assert (s["n_mask_one_class"], s["n_mask_one_class_no_fixed"], s["n_map_not_probability"]) == (3, 2, 1)
    s = summarize([{**old[0], "best_threshold": None}])  # not recorded either: no sign of its range
    assert (s["n_mask_one_class_no_fixed"], s["n_map_not_probability"]) == (1, 0)


def test_failed_has_one_definition_in_memory_in_the_summary_and_from_csv(tmp_path):
    """A mask of another size: the dataset line said '0 failed', ev.failed (and the CLI's last
    line) 1, and Evaluation.from_csv 0."""
    imgs, masks = _boxes(tmp_path / "ds", sizes={"f1": (100, 100)})
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=Box())
    s = ev.summary["images"]
    assert len(ev.failed) == s["n_failed"] == 1 and s["n_mask_unusable"] == 1 and s["n_ok"] == 3
    assert "; 1 failed (1 of them scored in part)" in ev.summary_lines()[0]
    ev.to_csv(tmp_path / "rows.csv")
    back = Evaluation.from_csv(tmp_path / "rows.csv")
    assert back.failed == ev.failed and back.summary["images"]["n_failed"] == 1
    assert back.summary_lines() == ev.summary_lines()
    with pytest.raises(ValueError, match="rebuilt from rows"):
        Evaluation(ev.rows, ["something else"])


def test_a_nan_map_names_the_output_and_is_not_counted_as_a_mask_problem(tmp_path):
    """NaN on scored map pixels was blamed on the (valid) mask and counted as a fake without a
    usable mask."""
    imgs, masks = _boxes(tmp_path / "ds")
    fn = Box(scores={"a0": 0.2}, nan_map=("f0",))
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=fn)
    row = next(r for r in ev.rows if r["id"] == "f0.png")
    assert row["not_scored"] == "map" and str(tmp_path / "out" / "images" / "f0.png.npz") in row["error"]
    assert str(imgs / "f0.png") in row["error"] and str(masks / "f0.png") not in row["error"]
    s = ev.summary["images"]
    assert (s["n_localized"], s["n_mask_unusable"], s["n_map_unusable"], s["n_failed"]) == (1, 0, 1, 1)
    line = ev.summary_lines()[0]
    assert "(1 fake(s) whose map holds NaN on scored pixels)" in line and "without a usable mask" not in line


def test_a_confidence_map_of_another_grid_fails_its_image_not_the_run(tmp_path):
    """An analyze_fn whose confidence map was at another size (the map checked, the confidence
    not) ended the whole evaluation with an IndexError on the mask, the other rows lost."""

    class SmallConf(Box):
        def __call__(self, model, path):
            r = super().__call__(model, path)
            if Path(path).stem == "f0":
                r.conf = np.ones((48, 48), np.float32)
            return r

    imgs, masks = _boxes(tmp_path / "ds")
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=SmallConf())
    by_id = {r["id"]: r for r in ev.rows}
    assert by_id["f0.png"]["status"] == "error" and ev.failed == [
        f"{imgs / 'f0.png'}: confidence map size (48, 48) differs from image size (96, 96)"
    ]
    assert by_id["f1.png"]["status"] == by_id["a0.png"]["status"] == "ok"
    assert not (tmp_path / "out" / "images" / "f0.png.npz").exists()  # never saved as an output


def test_two_images_that_would_write_one_output_are_both_refused(recipe_model, tmp_path):
    """a/b.png and a\\b.png (a legal file name on Linux) wrote one npz: each run overwrote the
    other's output and both rows pointed at the file left, exit 0. Refused as analyze refuses."""
    from trufor_lab.lab.datasets import folder_dataset

    rng = np.random.default_rng(0)
    root = tmp_path / "clash"
    (root / "a").mkdir(parents=True)
    for name in ("a/b.png", "a\\b.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / name)
    fn = Counting()
    ev = evaluate(recipe_model, folder_dataset(root), tmp_path / "out", progress=False, analyze_fn=fn)
    assert fn.calls == ["c.png"]
    bad = {r["id"]: r["error"] for r in ev.rows if r["status"] == "error"}
    assert set(bad) == {"a/b.png", "a\\b.png"}
    other = root / "a\\b.png"
    assert bad["a/b.png"].endswith(f"would write the same output (clash/a/b.png.npz) as {other}; not analysed")
    assert len(ev.failed) == 2 and not (tmp_path / "out" / "clash" / "a").exists()


def test_two_noiseprint_donors_of_one_name_are_two_interventions(first_run, recipe_model, tmp_path):
    """noiseprint_from named its ablation after the donor's file name ('noiseprint_from_image' for
    any array): an evaluation with a second donor reused the first donor's outputs, unsaid."""
    from trufor_lab.interpret import ablations as ab

    ds, _, _, _ = first_run
    one = Dataset(ds.name, ds.root, ds[:1], ds.convention)
    rng = np.random.default_rng(5)
    donors = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    runs = []
    for donor in donors:
        with ab.noiseprint_from(recipe_model, donor) as abl:
            assert abl.name == "noiseprint_from_image"
            ev = evaluate(recipe_model, one, tmp_path / "out", progress=False)
            runs.append((ev, abl.analyze(one[0].image_path).score))
    (first, s1), (second, s2) = runs
    assert second.n_computed == 1 and second.n_reused == 0
    assert second.rows[0]["score"] == pytest.approx(s2, abs=1e-6) and abs(s1 - s2) > 1e-6
    assert first.rows[0]["computed"] != second.rows[0]["computed"]
    assert "noiseprint_from_image [donor pixels sha256 " in second.rows[0]["computed"]


def test_scores_that_are_not_probabilities_get_no_accuracy_at_half(tmp_path):
    """An analyze_fn whose score is a logit got a balanced accuracy at 0.5 in the summary line."""
    from trufor_lab.inference.result import Result

    logits = {"r1": -2.0, "r2": 0.7, "f1": 0.6, "f2": 3.0}
    samples = []
    for name in logits:
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(tmp_path / f"{name}.png")
        samples.append(Sample(tmp_path / f"{name}.png", None, int(name[0] == "f"), "toy", name))

    def fn(model, path):
        z = np.zeros((24, 24), np.float32)
        return Result(image=np.zeros((24, 24, 3), np.uint8), noiseprint=z, map=z, conf=z, score=logits[Path(path).stem])

    ev = evaluate(None, Dataset("toy", tmp_path, samples), tmp_path / "out", progress=False, analyze_fn=fn)
    s = ev.summary["toy"]
    assert s["detection_auc"] == 0.75  # pairs (fake > real): 3 of 4
    assert math.isnan(s["balanced_accuracy"]) and math.isnan(s["tpr"]) and math.isnan(s["tnr"])
    assert "bACC nan (scores outside 0..1: 0.5 is no threshold there)" in ev.summary_lines()[0]


def test_a_turned_image_whose_mask_fits_both_grids_is_scored_as_stored_and_said(tmp_path, capsys):
    """An image with EXIF orientation 3 (or 6, square) whose mask was drawn on the view viewers
    show was scored against a misaligned mask without a word: the sizes match either way. It is
    still scored as stored (the official protocol), and the row and a line say so; no note where
    there is no doubt (no orientation, the mask carries the same one, or a turned non-square
    image, whose mask drawn on the turned view has the other size and is refused, saying why)."""
    from trufor_lab.inference.result import Result

    rng = np.random.default_rng(0)

    def save(path, h, w, orientation=None):
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, exif=exif.tobytes())

    cases = {  # name: (image h, w, image orientation, mask h, w, mask orientation)
        "upside": (24, 32, 3, 24, 32, None),
        "square": (24, 24, 6, 24, 24, None),
        "tagged": (24, 32, 3, 24, 32, 3),
        "plain": (24, 32, None, 24, 32, None),
        "tall": (24, 32, 6, 24, 32, None),
        "drawn_turned": (24, 32, 6, 32, 24, None),
    }
    samples, shapes = [], {}
    for name, (h, w, o, mh, mw, mo) in cases.items():
        save(tmp_path / f"{name}.png", h, w, o)
        m = np.zeros((mh, mw), np.uint8)
        m[:, : mw // 2] = 255
        mo_exif = Image.Exif()
        if mo:
            mo_exif[0x0112] = mo
        Image.fromarray(m).save(tmp_path / f"{name}_mask.png", exif=mo_exif.tobytes())
        samples.append(Sample(tmp_path / f"{name}.png", tmp_path / f"{name}_mask.png", 1, "toy", name))
        shapes[name] = (h, w)

    def fn(model, path):
        h, w = shapes[Path(path).stem]
        m = np.zeros((h, w), np.float32)
        m[:, : w // 2] = 0.9
        return Result(
            image=np.zeros((h, w, 3), np.uint8),
            noiseprint=np.zeros((h, w), np.float32),
            map=m,
            conf=np.ones((h, w), np.float32),
            score=0.7,
        )

    ev = evaluate(None, Dataset("toy", tmp_path, samples), tmp_path / "out", progress=False, analyze_fn=fn)
    rows = {r["id"]: r for r in ev.rows}
    err = capsys.readouterr().err
    for name in ("upside", "square"):
        assert rows[name]["f1_best"] == 1.0 and rows[name]["status"] == "ok"  # scored as stored
        o = cases[name][2]
        assert rows[name]["note"].startswith(f"{tmp_path / name}.png: EXIF orientation {o} not applied")
        assert "a mask drawn on the view viewers show would not align" in rows[name]["note"]
        assert f"note: {rows[name]['note']}" in err
    for name in ("tagged", "plain", "tall"):
        assert rows[name]["note"] is None and rows[name]["f1_best"] == 1.0, name
    turned = rows["drawn_turned"]
    assert turned["not_scored"] == "mask" and turned["note"] is None
    assert "the size viewers show the image at (EXIF orientation 6)" in turned["error"]
    ev.to_csv(tmp_path / "rows.csv")
    assert Evaluation.from_csv(tmp_path / "rows.csv").rows[0]["note"] == rows["upside"]["note"]


def test_a_score_of_several_values_fails_its_row_and_the_evaluation_goes_on(tmp_path):
    """An analyze_fn whose score held several values (per class, per crop) ended the whole
    evaluation with a TypeError from the npz's summary line, the other rows lost; one value in
    any form (a 1-element array, a 0-d tensor, a numpy scalar) is a score (a (1, 1) array failed too)."""
    imgs, masks = _boxes(tmp_path / "ds", fakes=("f0", "f1", "f2", "f3"), reals=("a0", "a1"))
    scores = {
        "f0": np.array([0.1, 0.9]),
        "f1": np.array([[0.8]]),
        "f2": torch.tensor(0.7),
        "f3": torch.tensor([0.6, 0.5]),
        "a0": np.float32(0.25),
        "a1": "0.3",
    }
    ev = evaluate(None, folder_dataset(imgs, masks), tmp_path / "out", progress=False, analyze_fn=Box(scores=scores))
    by_id = {r["id"]: r for r in ev.rows}
    assert [by_id[f"{s}.png"]["status"] for s in ("f0", "f1", "f2", "f3", "a0", "a1")] == [
        "error",
        "ok",
        "ok",
        "error",
        "ok",
        "error",
    ]
    assert by_id["f1.png"]["score"] == pytest.approx(0.8) and by_id["f1.png"]["f1_best"] == 1
    assert by_id["f2.png"]["score"] == pytest.approx(0.7) and by_id["a0.png"]["score"] == 0.25
    assert ev.failed == [  # in the dataset's order
        f"{imgs / 'a1.png'}: analyze_fn gave the score '0.3' (text), not a number",
        f"{imgs / 'f0.png'}: analyze_fn gave a score of 2 values (shape (2,)), not one number",
        f"{imgs / 'f3.png'}: analyze_fn gave a score of 2 values (shape (2,)), not one number",
    ]
    assert not (tmp_path / "out" / "images" / "f0.png.npz").exists()  # never saved as an output
    with np.load(tmp_path / "out" / "images" / "f1.png.npz") as d:  # saved as scored: a resume agrees
        assert d["score"].shape == () and float(d["score"]) == pytest.approx(0.8)


def test_absolute_paths_in_a_list_file_are_taken_as_they_are(tmp_path, capsys):
    """An absolute path in a list file needed `--root /`: without --root the command refused,
    and under another root its id, absolute, was refused as an output name. Relative paths stay
    relative to --root."""
    from trufor_lab.cli import main
    from trufor_lab.lab.datasets import load_dataset

    imgs, masks = _boxes(tmp_path / "ds", fakes=("f0",), reals=("a0",))
    fake = tmp_path / "lists" / "mine_fake.txt"
    fake.parent.mkdir()
    fake.write_text(f"{imgs / 'f0.png'},{masks / 'f0.png'}\n")
    real = tmp_path / "lists" / "mine_real.txt"
    real.write_text(f"{imgs / 'a0.png'}\n")
    ds = load_dataset(fake, None, real_list=real)
    assert [(s.image_path, s.mask_path, s.label) for s in ds] == [
        (imgs / "f0.png", masks / "f0.png", 1),
        (imgs / "a0.png", None, 0),
    ]
    ev = evaluate(None, ds, tmp_path / "out", progress=False, analyze_fn=Box(scores={"a0": 0.2}))
    assert not ev.failed and ev.summary["mine"]["f1_best"] == 1
    whole = (imgs / "f0.png").resolve()
    assert (tmp_path / "out" / "mine" / whole.relative_to(whole.anchor)).with_suffix(".png.npz").is_file()
    # under a root elsewhere (or '/', the old way round): the same outputs, reused
    for root in (tmp_path / "lists", Path("/")):
        again = evaluate(
            None, load_dataset(fake, root, real_list=real), tmp_path / "out", progress=False, analyze_fn=Box()
        )
        assert not again.failed and again.n_reused == 2
    # on the command line, no --root needed
    rc = main(["eval", str(fake), "--real-list", str(real), "--method", "ela", "-o", str(tmp_path / "cli"), "-q"])
    captured = capsys.readouterr()
    assert rc == 0 and "2 images: 2 computed" in captured.out, captured.err
    # a relative path needs its root: one line naming the list's line
    mixed = tmp_path / "lists" / "mixed_fake.txt"
    mixed.write_text(f"{imgs / 'f0.png'},{masks / 'f0.png'}\nimages/a0.png\n")
    assert main(["eval", str(mixed), "--method", "ela", "-o", str(tmp_path / "cli2"), "-q"]) == 1
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == (
        f"error: {mixed}:2: 'images/a0.png' is a relative path: give the folder it resolves against "
        "(--root on the command line, root= in Python)"
    )
    rc = main(["eval", str(mixed), "--root", str(tmp_path / "ds"), "--method", "ela", "-o", str(tmp_path / "c3"), "-q"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "c3" / "ela" / "mixed" / "images" / "a0.png.npz").is_file()  # relative: under --root


def test_the_one_class_mask_note_names_the_best_threshold_f1_only(tmp_path):
    """The summary line said of masks left with one class after the official erosion "their F1
    is 0 or 1 whatever the map", beside "F1 best ..., fixed ...": the best-threshold F1 is, but
    the official F1 at 0.5 of an all-forged mask is the better of F1(map > 0.5) and its inverse,
    which the map decides (0.85 here, entered in the 'fixed' mean)."""
    from trufor_lab.inference.result import Result

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "f.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "f_mask.png")  # all forged

    def fn(model, path):
        m = np.zeros((40, 40), np.float32)
        m[:, :30] = 0.9  # three quarters called forged at 0.5
        return Result(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.float32), m, np.ones((40, 40)), 0.7)

    ds = Dataset("toy", tmp_path, [Sample(tmp_path / "f.png", tmp_path / "f_mask.png", 1, "toy", "f")])
    ev = evaluate(None, ds, tmp_path / "out", progress=False, analyze_fn=fn)
    (row,) = ev.rows
    assert (row["n_pristine"], row["f1_best"]) == (0, 1.0)
    assert row["f1_fixed"] == pytest.approx(2 * 0.75 / 1.75)  # neither 0 nor 1: the map's
    line = ev.summary_lines()[0]
    assert "F1 best 1, fixed 0.8571 over 1 mask(s) (1 mask(s) with no forged pixel" in line, line
    assert "their best-threshold F1 is 0 or 1 whatever the map" in line and "their F1 is" not in line, line
