"""Failure analysis: worst cases, descriptor groups, gallery figure and widget."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from trufor_lab.lab.datasets import folder_dataset
from trufor_lab.lab.evaluate import ROW_COLUMNS, Evaluation, evaluate
from trufor_lab.widgets.gallery import FailureGallery
from trufor_lab.lab.failures import GROUPS, Group, failure_gallery, group_failures, is_failure, worst_cases


NAN = math.nan


def _row(id: str, label: int, score: float, f1: float = NAN, **kw) -> dict:
    r = {k: (NAN if t == "float" else None) for k, t in ROW_COLUMNS.items()}
    r.update(
        dataset="toy", id=id, label=label, status="ok", score=score, f1_best=f1, height=64, width=64, mean_conf=0.8
    )
    r.update(kw)
    return r


@pytest.fixture()
def toy() -> Evaluation:
    rows = [
        _row("f_good", 1, 0.9, 0.9, mask_fraction=0.2, jpeg_quality=95),
        _row("f_bad", 1, 0.8, 0.1, mask_fraction=0.005, jpeg_quality=60),  # poor F1, small, compressed
        _row("f_worst", 1, 0.3, 0.1, mask_fraction=0.004, mean_conf=0.3),  # same F1, lower score
        _row("f_mid", 1, 0.4, 0.6, mask_fraction=0.1, width=60),  # missed (score)
        _row("f_nomask", 1, 0.7),  # detection only
        _row("r_ok", 0, 0.1),
        _row("r_alarm", 0, 0.95, mean_conf=0.2, jpeg_quality=50),
        _row("r_edge", 0, 0.6, height=63),
        {**_row("r_err", 0, NAN), "status": "error", "error": "x.png: broken"},
    ]
    return Evaluation(rows, ["x.png: broken"])


def test_is_failure_rules(toy):
    rows = {r["id"]: r for r in toy.rows}
    expected = {
        "f_good": False,
        "f_bad": True,
        "f_worst": True,
        "f_mid": True,
        "f_nomask": False,
        "r_ok": False,
        "r_alarm": True,
        "r_edge": True,
        "r_err": None,
    }
    assert {k: is_failure(r) for k, r in rows.items()} == expected
    assert is_failure(rows["f_bad"], f1_threshold=0.05) is False


def test_worst_cases_ordering(toy):
    t = worst_cases(toy, k=3)
    assert [(r["case"], r["id"]) for r in t] == [
        ("fake", "f_worst"),
        ("fake", "f_bad"),
        ("fake", "f_mid"),
        ("real", "r_alarm"),
        ("real", "r_edge"),
        ("real", "r_ok"),
    ]
    assert t[0]["reason"].startswith("F1 0.100") and t[3]["reason"] == "score 0.950"
    assert [r["id"] for r in worst_cases(toy, k=10, which="reals")] == ["r_alarm", "r_edge", "r_ok"]
    assert [r["id"] for r in worst_cases(toy, k=1, which="fakes")] == ["f_worst"]
    assert "<table>" in t._repr_html_()
    with pytest.raises(ValueError):
        worst_cases(toy, which="all")


def test_the_gallery_shows_failures_only_missed_fakes_without_a_mask_included(toy):
    """It ranked without filtering: a good fake (f_good) and a quiet real (r_ok) were shown as
    failure cases, and a missed fake without a mask could never appear."""
    from trufor_lab.lab.failures import pick_cases

    toy.rows.append(_row("f_missed_nomask", 1, 0.2))
    picked = [r["id"] for r in pick_cases(toy, 10)]
    assert set(picked) == {"f_bad", "f_worst", "f_mid", "f_missed_nomask", "r_alarm", "r_edge"}
    assert picked[:4] == ["f_missed_nomask", "f_worst", "f_bad", "f_mid"]  # no mask ranks as F1 0, by score
    reason = next(r["reason"] for r in worst_cases(toy, 10, failures_only=True) if r["id"] == "f_missed_nomask")
    assert reason == "no mask, score 0.200"
    # a fake whose mask exists but could not be used (missing file, wrong size, JPEG noise) was
    # ranked as F1 0 too, and called "no mask": three such rows pushed the worst measured fake
    # out of a gallery of 8; they come after every measured F1, named for what they are
    toy.rows += [
        _row("f_bad_mask", 1, 0.1, mask_path="gt/f.png", not_scored="mask", error="gt/f.png: 10x10, image 64x64"),
        _row("f_gone_mask", 1, 0.05, mask_path="gt/missing.png"),
        _row("f_nan_map", 1, 0.05, mask_path="gt/g.png", not_scored="map"),
    ]
    ranked = worst_cases(toy, 10, which="fakes", failures_only=True)
    assert [r["id"] for r in ranked][:4] == ["f_missed_nomask", "f_worst", "f_bad", "f_mid"]
    assert {r["id"]: r["reason"] for r in ranked[4:]} == {
        "f_gone_mask": "F1 not measured (mask unusable), score 0.050",
        "f_nan_map": "F1 not measured (map not finite), score 0.050",
        "f_bad_mask": "F1 not measured (mask unusable), score 0.100",
    }
    calm = Evaluation([r for r in toy.rows if r["id"] in ("f_good", "r_ok")])
    assert pick_cases(calm, 4) == [] and [r["id"] for r in worst_cases(calm, 4)] == ["f_good", "r_ok"]


def test_group_tests_answering_with_numpy_booleans_and_nan_descriptors(toy):
    """A custom test returning numpy booleans put every row in 'unknown'; NaN descriptors (a
    table round trip) raised instead of counting as unknown or non-JPEG."""
    numpy_test = Group("bigconf", "mean conf > 0.5", lambda r: np.float64(r["mean_conf"]) > 0.5)
    (g,) = group_failures(toy, by=[numpy_test])
    assert (g["n_group"], g["n_rest"], g["n_unknown"]) == (6, 2, 0)
    rows = [{**r, "jpeg_quality": NAN if r["jpeg_quality"] is None else r["jpeg_quality"]} for r in toy.rows]
    rows[0]["height"] = NAN
    t = {r["group"]: r for r in group_failures(Evaluation(rows))}
    assert (t["heavy_compression"]["n_group"], t["heavy_compression"]["n_rest"]) == (2, 6)
    assert t["resized"]["n_unknown"] == 1


def test_group_failures_counts(toy):
    t = {r["group"]: r for r in group_failures(toy)}
    assert list(t) == ["small_region", "low_confidence", "heavy_compression", "resized"]
    s = t["small_region"]  # fakes with a mask only: f_bad, f_worst (in) vs f_good, f_mid (rest)
    assert (s["n_group"], s["n_rest"], s["n_unknown"], s["failures_group"], s["failures_rest"]) == (2, 2, 4, 2, 1)
    assert s["failure_rate_group"] == 1.0 and s["failure_rate_rest"] == 0.5 and s["rate_ratio"] == 2.0
    c = t["low_confidence"]  # f_worst, r_alarm: both failures; rest 6 of which f_bad, f_mid, r_edge fail
    assert (c["n_group"], c["n_rest"], c["failures_group"], c["failures_rest"]) == (2, 6, 2, 3)
    j = t["heavy_compression"]  # f_bad, r_alarm; non-JPEG counts as rest
    assert (j["n_group"], j["n_rest"], j["failures_group"]) == (2, 6, 2)
    z = t["resized"]  # f_mid (60 wide), r_edge (63 high)
    assert (z["n_group"], z["failures_group"], z["failure_rate_group"]) == (2, 2, 1.0)
    custom = Group("high_score", "score > 0.85", lambda r: r["score"] > 0.85)
    (h,) = group_failures(toy, by=[custom])
    assert (h["group"], h["n_group"], h["failures_group"]) == ("high_score", 2, 1)
    with pytest.raises(KeyError, match="small_region"):
        group_failures(toy, by=["small"])
    assert set(GROUPS) == {"small_region", "low_confidence", "heavy_compression", "resized"}


@pytest.fixture(scope="module")
def evaluated(recipe_model, tmp_path_factory, make_folder_dataset, one_thread):
    root = tmp_path_factory.mktemp("failds")
    items = make_folder_dataset.items
    imgs, masks = make_folder_dataset(root, [items[0], items[1], items[3]])
    ev = evaluate(recipe_model, folder_dataset(imgs, masks), root / "out", progress=False)
    assert not ev.failed
    csv_path = root / "rows.csv"
    ev.to_csv(csv_path)
    return ev, csv_path


def test_a_nan_score_is_unknown_for_fakes_and_reals_alike():
    """A fake with a NaN score counted as missed (a failure even at F1 0.95) while a real with a
    NaN score counted as no alarm; group_failures counted that fake in failures_rest. As in the
    evaluation's detection metrics, a NaN score is unknown: the fake is judged by F1 alone, the
    real and a fake with neither score nor F1 not at all."""
    rows = [
        _row("f_nan_good", 1, NAN, 0.95, mask_fraction=0.1),
        _row("f_nan_bad", 1, NAN, 0.1, mask_fraction=0.1),
        _row("f_nan_nomask", 1, NAN),
        _row("r_nan", 0, NAN),
        _row("r_alarm", 0, 0.9),
    ]
    assert [is_failure(r) for r in rows] == [False, True, None, None, True]
    (g,) = group_failures(Evaluation(rows), by=["resized"])
    assert (g["n_rest"], g["failures_rest"], g["n_unknown"]) == (3, 2, 0)
    assert [r["id"] for r in worst_cases(Evaluation(rows), 5, failures_only=True)] == ["f_nan_bad", "r_alarm"]


def _png_stats(fig) -> tuple[tuple[int, int], float, int]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    a = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return a.shape[:2], float(a.std()), len(np.unique(a.reshape(-1, 3), axis=0))


def test_failure_gallery_renders_from_evaluation_and_csv(evaluated):
    from matplotlib.figure import Figure

    ev, csv_path = evaluated
    # 2 fakes (both failures: score < 0.5) + 1 real that is not a failure (score < 0.5): 2 rows
    assert [is_failure(r) for r in ev.rows] == [r["label"] == 1 for r in ev.rows]
    fig = failure_gallery(ev, k=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 8
    (h, w), std, colours = _png_stats(fig)
    assert h > 100 and w > 100 and std > 10 and colours > 100
    fig2 = failure_gallery(csv_path, k=2)  # from the CSV: masks re-read, npz re-read
    assert len(fig2.axes) == 8
    assert _png_stats(fig2)[2] > 100
    assert any(im.get_array() is not None for im in fig2.axes[1].images)  # the fake's mask was drawn


def test_failure_gallery_widget_and_static_fallback(evaluated, monkeypatch):
    ev, _ = evaluated
    g = FailureGallery(ev, k=3)
    assert len(g.cases) == 2  # the failures
    png = g.select(1)
    assert png.startswith(b"\x89PNG") and g.index == 1
    with pytest.raises(IndexError):
        g.select(7)
    bundle = g._repr_mimebundle_()
    assert bundle["image/png"].startswith(b"\x89PNG")
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        assert g.widget is None
    else:
        box = g.widget
        dropdown = box.children[0]
        dropdown.value = 0
        assert g.index == 0
    import builtins

    real_import = builtins.__import__

    def no_widgets(name, *a, **kw):
        if name.startswith("ipywidgets"):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    g2 = FailureGallery(ev, k=2)
    assert g2.widget is None
    b2 = g2._repr_mimebundle_()
    assert set(b2) == {"text/plain", "image/png"}
    assert "<img" in g2._repr_html_()


def test_the_gallery_leaves_no_pyplot_figure_behind(toy):
    """Each select() and display drew a pyplot figure that nothing closed (8 open after 7 calls)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    g = FailureGallery(toy, k=4)
    for i in range(5):
        g.select(i % len(g.cases))
    g._repr_mimebundle_()
    g._repr_html_()
    failure_gallery(toy, k=2)
    assert plt.get_fignums() == []


# --------------------------------------------------------------------------------------------
# the gallery draws what was scored
# --------------------------------------------------------------------------------------------


class _Box:
    """A cheap analyze_fn: map 0.9 on the centre box (``flip``: 0.1), 0.1 elsewhere."""

    def __init__(self, computed: str, flip: bool = False, score: float = 0.3) -> None:
        self.computed, self.flip, self.score = computed, flip, score

    def __call__(self, model, path):
        from trufor_lab.inference.result import Result

        im = np.asarray(Image.open(path).convert("RGB"))
        m = np.full(im.shape[:2], 0.1, np.float32)
        m[24:72, 24:72] = 0.9
        if self.flip:
            m = 1 - m
        return Result(image=im, noiseprint=np.zeros_like(m), map=m, conf=np.ones_like(m), score=self.score)


def _box_dataset(root, mask_ext="png", white_forged=True):
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:96, :96]
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / "images" / f"f{i}.png")
        m = (((yy - 45) ** 2 + (xx - 50 - i) ** 2 < 25**2) * 255).astype(np.uint8)
        Image.fromarray(m if white_forged else 255 - m).save(root / "masks" / f"f{i}.{mask_ext}", quality=90)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / "images" / "a0.png")
    return folder_dataset(root / "images", root / "masks")


def test_the_gallery_reads_masks_with_the_convention_they_were_scored_with(tmp_path):
    """The CSV did not record how masks were read: the gallery guessed (the registered
    benchmark's by name: the complement of the scored mask; a threshold given for JPEG masks
    was lost and the mask panel said 'missing')."""
    import dataclasses

    from trufor_lab.lab.datasets import MaskConvention
    from trufor_lab.lab.failures import _load_case

    # JPEG-saved masks read at threshold 127 (what --mask-threshold 127 does)
    ds = _box_dataset(tmp_path / "jpeg", mask_ext="jpg")
    ds.convention = dataclasses.replace(ds.convention, threshold=127)
    # a folder named like a registered benchmark whose convention differs, read white = forged
    named = _box_dataset(tmp_path / "dso")
    named = type(named)("DSO-1", named.root, list(named), MaskConvention())
    for d in (ds, named):
        ev = evaluate(None, d, tmp_path / "out" / d.name, progress=False, analyze_fn=_Box("box"))
        ev.to_csv(tmp_path / f"{d.name}.csv")
        back = Evaluation.from_csv(tmp_path / f"{d.name}.csv")
        for row in (r for r in back.rows if r["label"] == 1):
            mask = _load_case(back, row, None)["mask"]
            assert mask is not None and float(mask.mean()) == pytest.approx(row["mask_fraction"]), d.name


def test_the_gallery_does_not_draw_an_output_replaced_since_scoring(tmp_path):
    """Another setting recomputed the npz into the same folder: the gallery drew its map as if
    it were the one the CSV row scored."""
    from trufor_lab.lab.failures import _load_case

    ds = _box_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    ev_a = evaluate(None, ds, out, progress=False, analyze_fn=_Box("setting A"))
    ev_a.to_csv(tmp_path / "A.csv")
    row = next(r for r in Evaluation.from_csv(tmp_path / "A.csv").rows if r["id"] == "f0.png")
    case = _load_case(ev_a, row, None)
    assert case["map"][48, 48] == pytest.approx(0.9) and not case["why"]  # still the scored output
    evaluate(None, ds, out, progress=False, analyze_fn=_Box("setting B", flip=True))
    back = Evaluation.from_csv(tmp_path / "A.csv")
    case = _load_case(back, row, None)
    assert case["map"] is None and case["conf"] is None and case["image"] is not None
    assert case["why"] == {"map": "output replaced since scoring", "conf": "output replaced since scoring"}
    fig = failure_gallery(back, cases=[row])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("output replaced\nsince scoring") == 2


def test_the_gallery_does_not_draw_an_output_edited_since_it_was_written(tmp_path):
    """A map changed in place with the npz's records kept (thresholded in a notebook) was drawn
    as the map the row scored."""
    from trufor_lab.lab.failures import _load_case

    ds = _box_dataset(tmp_path / "ds")
    ev = evaluate(None, ds, tmp_path / "out", progress=False, analyze_fn=_Box("box"))
    row = next(r for r in ev.rows if r["id"] == "f0.png")
    with np.load(row["npz"]) as d:
        kept = dict(d)
    np.savez(row["npz"], **{**kept, "map": (kept["map"] > 0.5).astype(np.float32)})
    case = _load_case(ev, row, None)
    assert case["map"] is None and case["why"]["map"] == "output changed since it was written"


def test_a_case_named_with_dollar_signs_is_drawn(evaluated):
    """An id with two dollars ('price_$5_vs_$6.jpg') was read as mathtext: ValueError on select."""
    ev, _ = evaluated
    rows = [dict(r, id="price_$5_vs_$6.jpg") if is_failure(r) else dict(r) for r in ev.rows]
    g = FailureGallery(Evaluation(rows), k=1)
    assert g.cases and g.cases[0]["id"] == "price_$5_vs_$6.jpg"
    assert g.select(0).startswith(b"\x89PNG")


def test_one_malformed_npz_does_not_break_the_gallery(tmp_path):
    """An npz whose map was 1-D (32,) or 0-d made select() raise IndexError and the whole gallery
    show '(could not render)'; a 3-D map was drawn as a picture."""
    from trufor_lab.lab.failures import _load_case

    rng = np.random.default_rng(0)
    maps = {"good": np.zeros((24, 32), np.float32), "flat": np.zeros(32, np.float32)}
    maps.update(scalar=np.array(0.5, np.float32), rgb=np.zeros((24, 32, 3), np.float32))
    maps["grid"] = np.zeros((32, 24), np.float32)
    rows = []
    for name, m in maps.items():
        image = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(image)
        npz = tmp_path / f"{name}.npz"
        np.savez(npz, map=m, conf=np.ones((24, 32), np.float32))
        rows.append(dict(_row(name, 1, 0.1), image_path=str(image), npz=str(npz), case="fake", reason="x"))
    ev = Evaluation(rows)
    g = FailureGallery(ev, cases=rows)
    for i in range(len(rows)):
        assert g.select(i).startswith(b"\x89PNG")
    assert g._static_png() is not None and "could not render" not in g._repr_html_()
    cases = {r["id"]: _load_case(ev, r, None) for r in rows}
    assert cases["good"]["map"] is not None and not cases["good"]["why"]
    for name in ("flat", "scalar", "rgb"):
        assert cases[name]["map"] is None and "not a 2-D map" in cases[name]["why"]["map"], name
        assert cases[name]["conf"] is not None  # the rest of the case is drawn
    assert cases["grid"]["map"] is None and "another grid" in cases["grid"]["why"]["map"]
