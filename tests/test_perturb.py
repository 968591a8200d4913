"""Perturbations do what they say; sweeps perturb image and mask together and score them."""

from __future__ import annotations

import csv
import math
import io
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from trufor_lab.lab import perturb as P
from trufor_lab.lab.forgeries import demo_images
from trufor_lab.forensics.jpeg import estimate_quality, jpeg_compress


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return demo_images(128)["astronaut"]


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    m = np.zeros((128, 128), bool)
    m[30:70, 50:100] = True
    m[90:100, 10:20] = True
    return m


def _hf(x: np.ndarray) -> float:
    return float(np.mean(ndimage.laplace(x.astype(np.float64).mean(-1)) ** 2))


@pytest.mark.parametrize("q", [40, 75, 93])
def test_jpeg_quality_recovered(img, q):
    p = P.get_perturbation("jpeg")
    data = p.to_bytes(img, q)
    est = estimate_quality(data)
    assert est is not None and est.quality == q and est.exact
    out = p.apply(img, q)
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    np.testing.assert_array_equal(P.jpeg(q)(img), out)  # bound value


@pytest.mark.parametrize("factor", [0.5, 0.73, 1.5])
@pytest.mark.parametrize("interp", ["bilinear", "bicubic", "area", "nearest"])
def test_resize_shape_and_mask_follow(img, mask, factor, interp):
    out, m = P.resize(factor, interp).apply(img, None, mask)
    shape = (round(128 * factor), round(128 * factor))
    assert out.shape == (*shape, 3) and m.shape == shape and m.dtype == bool
    assert abs(m.mean() - mask.mean()) < 0.01
    # the resized mask sits where the resized content is
    ys, xs = np.nonzero(m)
    assert abs(ys.mean() / factor - np.nonzero(mask)[0].mean()) < 1.5
    assert abs(xs.mean() / factor - np.nonzero(mask)[1].mean()) < 1.5


def test_resize_nearest_x2_is_pixel_replication(img, mask):
    out, m = P.resize(2, "nearest").apply(img, None, mask)
    np.testing.assert_array_equal(out, img.repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(m, mask.repeat(2, 0).repeat(2, 1))
    out, m = P.resize(2, "bilinear").apply(img, None, mask)
    np.testing.assert_array_equal(m, mask.repeat(2, 0).repeat(2, 1))


def test_blur_monotone_in_sigma(img):
    p = P.blur()
    np.testing.assert_array_equal(p.apply(img, 0), img)
    energies = [_hf(p.apply(img, s)) for s in (0, 0.5, 1, 2, 4)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_std_matches_sigma(sigma):
    gray = np.full((256, 256, 3), 128, np.uint8)
    out = P.gaussian_noise(sigma, seed=1)(gray)
    d = out.astype(np.float64) - 128
    assert abs(d.std() - sigma) < 0.03 * sigma + 0.05  # rounding adds 1/12 in variance
    assert abs(d.mean()) < 0.1
    np.testing.assert_array_equal(out, P.gaussian_noise(sigma, seed=1)(gray))
    assert not np.array_equal(out, P.gaussian_noise(sigma, seed=2)(gray))


@pytest.mark.parametrize("g", [0.5, 1.0, 2.2])
def test_gamma_mid_gray(g):
    gray = np.full((4, 4, 3), 128, np.uint8)
    out = P.gamma(g)(gray)
    assert np.all(out == round(255 * (128 / 255) ** g))
    ramp = np.arange(256, dtype=np.uint8)[None, :, None].repeat(3, -1)
    r = P.gamma(g)(ramp)[0, :, 0]
    assert r[0] == 0 and r[-1] == 255 and np.all(np.diff(r.astype(int)) >= 0)
    if g == 1.0:
        np.testing.assert_array_equal(r, np.arange(256))


def test_crop_shift_exact(img, mask):
    out, m = P.crop_shift(3, 5).apply(img, None, mask)
    np.testing.assert_array_equal(out, img[5:, 3:])
    np.testing.assert_array_equal(m, mask[5:, 3:])
    out2, m2 = P.get_perturbation("crop_shift").apply(img, 4, mask)
    np.testing.assert_array_equal(out2, img[4:, 4:])
    np.testing.assert_array_equal(m2, mask[4:, 4:])
    with pytest.raises(ValueError):
        P.crop_shift(200, 0)(img)


def _grid_phase(x: np.ndarray) -> int:
    """Column phase (mod 8) of the strongest horizontal discontinuity: JPEG block borders."""
    g = x.astype(np.float64).mean(-1)
    d = np.abs(np.diff(g, axis=1)).mean(0)
    return int(np.argmax([d[k::8].mean() for k in range(8)]))


def test_crop_shift_moves_jpeg_grid(img):
    c = jpeg_compress(img, 20)
    assert _grid_phase(c) == 7  # border between columns 7 and 8
    assert _grid_phase(P.crop_shift(3, 0)(c)) == 4
    assert _grid_phase(P.crop_shift(8, 0)(c)) == 7  # a multiple of 8 keeps it


def test_chain_applies_in_order(img, mask):
    ch = P.chain(P.gamma(2.0), P.crop_shift(2, 3), P.jpeg(70))
    out, m = ch.apply(img, None, mask)
    ref = jpeg_compress(P.gamma(2.0)(img)[3:, 2:], 70)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(m, mask[3:, 2:])
    a = P.chain(P.jpeg(50), P.blur(1.0))(img)
    b = P.chain(P.blur(1.0), P.jpeg(50))(img)
    np.testing.assert_array_equal(a, P.blur(1.0)(jpeg_compress(img, 50)))
    assert not np.array_equal(a, b)
    # the swept value goes to the chosen stage
    v = P.chain("blur", P.jpeg(70), vary=0)
    np.testing.assert_array_equal(v.apply(img, 1.5), jpeg_compress(P.blur(1.5)(img), 70))
    with pytest.raises(ValueError, match="takes no value"):
        ch.apply(img, 3)


def test_presets(img):
    fb = P.get_perturbation("Facebook")
    np.testing.assert_array_equal(fb(img), jpeg_compress(img, 85))  # small: no resize
    np.testing.assert_array_equal(fb.apply(img, 60), jpeg_compress(img, 60))  # value = quality
    big = np.zeros((1700, 900, 3), np.uint8)
    big_mask = np.zeros((1700, 900), bool)
    out, m = P.get_perturbation("whatsapp").apply(big, None, big_mask)
    assert out.shape == (1600, 847, 3) and m.shape == (1600, 847)
    assert P.get_perturbation("x").stages == P.get_perturbation("twitter").stages


def test_registry_suggests_and_refuses_duplicates():
    with pytest.raises(KeyError, match="did you mean 'jpeg'"):
        P.get_perturbation("jpg")
    with pytest.raises(ValueError, match="did you mean 'gaussian_noise'"):
        P.get_perturbation("gausian_noise")
    with pytest.raises(ValueError, match="already registered"):
        P.register_perturbation("blur", P.blur())
    p = P.blur(2.0)
    assert P.get_perturbation(p) is p
    assert P.get_perturbation(" BLUR ") is P.PERTURBATIONS["blur"]


def test_apply_leaves_inputs_alone(img, mask):
    i0, m0 = img.copy(), mask.copy()
    for name in ("jpeg", "resize", "blur", "noise", "gamma", "crop_shift"):
        value = {"jpeg": 80, "resize": 0.5, "blur": 1, "noise": 3, "gamma": 1.5, "crop_shift": 5}[name]
        out, m = P.get_perturbation(name).apply(img, value, mask)
        assert m is not mask and out is not img
    np.testing.assert_array_equal(img, i0)
    np.testing.assert_array_equal(mask, m0)
    with pytest.raises(ValueError, match="no quality given"):
        P.jpeg()(img)


# -- sweeps --------------------------------------------------------------------------------


@dataclass
class FakeResult:
    map: np.ndarray
    conf: np.ndarray
    score: float


def bright_detector(model, image: np.ndarray) -> FakeResult:
    """A stand-in analysis: 'forged' = bright pixels (the planted region is bright)."""
    g = image.astype(np.float64).mean(-1)
    m = (g > 130).astype(np.float32)
    return FakeResult(m, np.full(g.shape, 0.8, np.float32), float(m.max()))


@pytest.fixture(scope="module")
def planted(mask) -> np.ndarray:
    im = np.full((128, 128, 3), 60, np.uint8)
    im[mask] = 200
    return im


def test_sweep_resize_mask_follows(planted, mask, tmp_path):
    calls = []

    def fn(model, image):
        calls.append(image.shape)
        return bright_detector(model, image)

    res = P.sweep("MODEL", planted, mask, "resize", [0.5, 1.0, 1.7], analyze_fn=fn)
    assert calls == [(64, 64, 3), (128, 128, 3), (218, 218, 3)]
    assert [r["value"] for r in res.table] == [0.5, 1.0, 1.7]
    assert [(r["height"], r["width"]) for r in res.table] == [(64, 64), (128, 128), (218, 218)]
    assert np.all(res.column("f1_best") > 0.97)  # would collapse if the mask did not follow
    assert res.table[1]["f1_best"] == 1.0 and res.table[1]["iou_fixed"] == 1.0
    assert np.allclose(res.column("mean_conf"), 0.8) and np.all(res.column("score") == 1.0)
    path = tmp_path / "sweep.csv"
    res.to_csv(path)
    rows = list(csv.DictReader(open(path)))
    assert [float(r["value"]) for r in rows] == [0.5, 1.0, 1.7]
    assert {"score", "f1_best", "f1_fixed", "mean_conf", "auc"} <= set(rows[0])


def test_sweep_gamma_degrades_detector(planted, mask):
    res = P.sweep(None, planted, mask, P.gamma(), [1.0, 1.5, 4.0], analyze_fn=bright_detector)
    f1 = res.column("f1_fixed")
    assert f1[0] == 1.0 and f1[1] == 1.0  # 200 -> 175: still bright
    assert res.table[2]["score"] == 0.0  # 200 -> 97: the detector misses it
    assert res.table[2]["f1_best"] < 1.0


def test_sweep_crop_shift_and_pristine(planted, mask):
    res = P.sweep(None, planted, mask, "crop_shift", [0, (7, 3), 20], analyze_fn=bright_detector)
    assert np.all(res.column("f1_best") == 1.0)
    assert [r["width"] for r in res.table] == [128, 121, 108]
    pristine = np.full((64, 64, 3), 60, np.uint8)
    res = P.sweep(None, pristine, None, "jpeg", [90, 50], analyze_fn=bright_detector)
    assert np.all(res.column("score") == 0.0) and np.all(np.isnan(res.column("f1_best")))


def test_sweep_resizes_a_map_of_another_size(planted, mask):
    def half(model, image):
        r = bright_detector(model, image)
        return FakeResult(r.map[::2, ::2], r.conf, r.score)

    res = P.sweep(None, planted, mask, "blur", [0.0], analyze_fn=half)
    assert res.table[0]["f1_best"] > 0.95
    # a map of another picture's grid (transposed, cropped) was resized and scored silently
    for bad, why in ((lambda m: m.T, r"transposed\?"), (lambda m: m[: m.shape[0] // 3], "same picture's grid")):

        def wrong(model, image, bad=bad):
            r = bright_detector(model, image)
            return FakeResult(np.ascontiguousarray(bad(r.map)), r.conf, r.score)

        with pytest.raises(ValueError, match=why):  # 128 x 96: a transposed map has another shape
            P.sweep(None, planted[:, :96].copy(), mask[:, :96].copy(), "blur", [0.0], analyze_fn=wrong)


def test_sweep_plot_and_html(planted, mask):
    from matplotlib.figure import Figure

    res = P.sweep(None, planted, mask, "jpeg", [95, 75, 50], analyze_fn=bright_detector, keep_results=True)
    assert len(res.results) == 3 and isinstance(res.results[0], FakeResult)
    fig = res.plot()
    assert isinstance(fig, Figure)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    # the curves are named in words (they were the table's column names, f1_best, mean_conf)
    assert {"integrity score", "F1, best threshold", "F1 at 0.5", "mean confidence"} <= set(labels)
    html = res._repr_html_()
    assert "<table>" in html and "f1_best" in html and "jpeg" in html
    fig2 = P.sweep(None, planted, mask, "crop_shift", [0, (1, 2)], analyze_fn=bright_detector).plot()
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["0", "(1, 2)"]


def test_sweep_csv_is_utf8_atomic_and_round_trips(planted, mask, tmp_path, monkeypatch):
    import os

    res = P.sweep(None, planted, mask, P.gamma(), [1.0, 1.5], analyze_fn=bright_detector)
    path = tmp_path / "sweep.csv"
    text = res.to_csv(path)
    assert path.read_bytes() == text.encode("utf-8")
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    assert [float(r["value"]) for r in rows] == [1.0, 1.5]
    assert float(rows[0]["f1_fixed"]) == res.table[0]["f1_fixed"]
    assert "<table>" in res._repr_html_()

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        res.to_csv(path)
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv"]


def test_the_row_records_what_was_applied(planted, mask, img):
    """A bound value (``jpeg(75)``, ``values=[None]``) is the row's value, not an empty cell;
    a fractional JPEG quality is refused rather than truncated (75.9 used to run as 75)."""
    res = P.sweep(None, planted, mask, P.jpeg(75), [None, 90], analyze_fn=bright_detector)
    assert [r["value"] for r in res.table] == [75, 90]
    with pytest.raises(ValueError, match="whole number, got 75.9"):
        P.jpeg().apply(img, 75.9)
    assert np.array_equal(P.jpeg().apply(img, 80.0), P.jpeg().apply(img, 80))


def test_a_region_shrunk_below_the_scoring_erosion_is_not_a_failure(img):
    """A 40x40 region resized by 0.3 is 12x12: the metric's 15x15 erosion leaves no forged pixel
    to score, and a perfect detector got F1 0 there (the sweep showed it 'collapsing')."""
    m = np.zeros((96, 96), bool)
    m[20:60, 20:60] = True

    def oracle(model, image):  # the mask itself, at the image's size
        h, w = image.shape[:2]
        mm = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
        return FakeResult(mm.astype(np.float32), np.ones((h, w), np.float32), 0.9)

    rows = list(P.sweep(None, img[:96, :96], m, "resize", [1.0, 0.5, 0.3], analyze_fn=oracle).table)
    assert [r["f1_best"] for r in rows[:2]] == [1.0, 1.0] and rows[0]["n_forged"] > rows[1]["n_forged"] > 0
    assert np.isnan(rows[2]["f1_best"]) and np.isnan(rows[2]["mcc_best"]) and rows[2]["n_forged"] == 0


def test_masks_and_values_are_checked_not_guessed(img, mask):
    """Grey mask pixels all counted as forged; NaN/inf/bool values ran; 40.9 pixels ran as 40;
    a float or a string shift crashed with a traceback; a chain's bound value was not recorded."""
    soft = mask.astype(np.float32)
    soft[0:30, 0:30] = 0.2
    with pytest.raises(ValueError, match="boolean, 0/1 or 0/255"):
        P.sweep(None, img, soft, "blur", [1.0], analyze_fn=bright_detector)
    for m in (mask.astype(np.uint8), mask.astype(np.uint8) * 255):  # 0/1 and 0/255 are masks
        assert np.array_equal(P.blur().apply(img, 0, m)[1], mask)
    for kind, bad in (("blur", np.nan), ("gaussian_noise", np.inf), ("gamma", np.nan), ("resize", np.nan)):
        with pytest.raises(ValueError, match="finite number"):
            P.get_perturbation(kind).apply(img, bad)
    with pytest.raises(ValueError, match="finite number"):
        P.jpeg().apply(img, np.True_)
    with pytest.raises(ValueError, match="whole number of pixels"):
        P.get_perturbation("resize_max").apply(img, 40.9)
    for shift in (4.0, "4", (4, 5, 6)):
        with pytest.raises(ValueError, match="whole number or a pair"):
            P.get_perturbation("crop_shift").apply(img, shift)
    chain = P.Chain(stages=(P.blur(1.0), P.jpeg(85)), vary=1, name="blur+jpeg")
    res = P.sweep(None, img, mask, chain, [None, 50], analyze_fn=bright_detector)
    assert [r["value"] for r in res.table] == [85, 50]


def test_chain_vary_counts_from_the_end_and_out_of_range_is_refused(img):
    """``vary=-1`` sent the swept value nowhere (every row ran at the bound quality 90 while the
    table said 30/60/95); ``vary=5`` ignored it too and ``describe`` raised IndexError."""
    ch = P.chain(P.resize(0.5), P.jpeg(90), vary=-1)
    assert ch.vary == 1 and ch.value_name == "quality"
    small = P.resize(0.5)(img)
    for q in (30, 95):
        np.testing.assert_array_equal(ch.apply(img, q), jpeg_compress(small, q))
    assert not np.array_equal(ch.apply(img, 30), ch.apply(img, 95))
    res = P.sweep(None, img, None, ch, [30, 95], analyze_fn=bright_detector)
    assert [r["value"] for r in res.table] == [30, 95]
    assert "quality=30" in ch.describe(30)
    # the varied stage's bound quality (90) was in the title of a sweep that never used it
    assert ch.label == "chain(resize[bilinear](factor=0.5), jpeg)" and "90" not in ch.describe(30)
    for bad in (2, 5, -3, 1.0, True):
        with pytest.raises(ValueError, match=r"vary must be None or a stage index in -2\.\.1"):
            P.chain(P.resize(0.5), P.jpeg(90), vary=bad)
    with pytest.raises(ValueError, match="vary"):  # built directly, not through chain()
        P.Chain(stages=(P.blur(1.0), P.jpeg(85)), vary=2)
    assert P.Chain(stages=(P.blur(1.0), P.jpeg(85)), vary=-2).vary == 0


def test_crop_shift_factory_checks_like_apply(img):
    """``crop_shift(2.7)`` silently ran as (2, 2) while ``apply(img, 2.7)`` refused it."""
    for dx, dy in ((2.7, None), (2, 3.5), (True, 1), ("2", None)):
        with pytest.raises(ValueError, match="whole number or a pair"):
            P.crop_shift(dx, dy)
    with pytest.raises(ValueError, match="shift must be >= 0"):
        P.crop_shift(-1, 2)
    assert P.crop_shift(np.int64(2)).value == (2, 2)
    np.testing.assert_array_equal(P.crop_shift(2, 3)(img), img[3:, 2:])


def test_a_value_whose_image_cannot_be_analysed_keeps_the_other_rows(planted, mask):
    """`sweep(model, img, mask, 'resize', [1.0, 0.1])`: the 13x13 image is below the network's
    minimum and the ImageError threw away the row already computed (minutes on a CPU), without
    saying which value failed. The stand-in refuses what the real preprocessing refuses."""
    from trufor_lab.inference.preprocess import ImageError
    from trufor_lab.model.trufor import MIN_TRUFOR_SIDE

    def fn(model, image):
        if min(image.shape[:2]) < MIN_TRUFOR_SIDE:  # what prepare_input refuses for a full TruFor
            raise ImageError(f"<ndarray>: image is {image.shape[1]}x{image.shape[0]}; TruFor needs at least 29 pixels")
        return bright_detector(model, image)

    res = P.sweep(None, planted, mask, "resize", [1.0, 0.1, 0.5], analyze_fn=fn, keep_results=True)
    assert [r["value"] for r in res.table] == [1.0, 0.1, 0.5]
    assert res.table[0]["f1_best"] == 1.0 and res.table[2]["f1_best"] > 0.97 and res.table[0]["error"] is None
    assert np.isnan(res.table[1]["score"]) and np.isnan(res.table[1]["f1_best"])
    (msg,) = res.failed
    assert msg.startswith("factor=0.1: not analysed (") and "29" in msg, msg
    assert res.results[1] is None and res.results[0] is not None
    assert "factor=0.1" in res._repr_html_()
    # the perturbed mask's forged pixels the metric scores, as in any row (was the raw count)
    from trufor_lab.lab.metrics import scored_regions

    _, small_mask = P.resize(0.1).apply(planted, None, mask)
    assert res.table[1]["n_forged"] == int(scored_regions(small_mask)[0].sum())
    # a value that cannot be applied (1000x asked PIL for 14 GiB) is refused before any analysis
    calls = []
    with pytest.raises(ValueError, match=r"resize factor 1000 makes a \d+x\d+ image, more than the 200 MP"):
        P.sweep(None, planted, mask, "resize", [1.0, 1000], analyze_fn=lambda m, i: calls.append(1))
    assert calls == []
    # a programming error in the analysis is not a row: it still stops the sweep
    with pytest.raises(ZeroDivisionError):
        P.sweep(None, planted, mask, "resize", [1.0], analyze_fn=lambda m, i: 1 / 0)

    def wrong_device(model, image):
        raise RuntimeError("Expected all tensors to be on the same device")

    with pytest.raises(RuntimeError, match="same device"):
        P.sweep(None, planted, mask, "resize", [1.0], analyze_fn=wrong_device)


def test_a_sweep_that_runs_out_of_memory_keeps_the_rows_it_computed(planted, mask):
    """PyTorch's out-of-memory errors are RuntimeErrors (CUDA's OutOfMemoryError, the CPU
    allocator's "can't allocate memory"), not MemoryError: a resize sweep lost every row
    already computed with a traceback. Other RuntimeErrors (bugs) still propagate."""
    import torch

    for oom in (
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory"),
    ):

        def fn(model, image, oom=oom):
            if image.shape[0] > 150:
                raise oom
            return bright_detector(model, image)

        res = P.sweep(None, planted, mask, "resize", [1.0, 0.75, 2.0], analyze_fn=fn)
        assert [r["value"] for r in res.table] == [1.0, 0.75, 2.0]
        assert res.table[0]["f1_best"] == 1.0 and math.isnan(res.table[2]["f1_best"])
        assert "factor=2.0: not analysed" in res.table[2]["error"] and "memory" in res.table[2]["error"]

    def buggy(model, image):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        P.sweep(None, planted, mask, "resize", [1.0], analyze_fn=buggy)


def test_a_resize_that_leaves_a_side_of_no_pixel_is_refused_and_a_bad_noise_seed_is_one_line():
    """1000x12 at factor 0.04 became 40x1 (each side clamped to 1 px on its own: the aspect
    changed while the row said 0.04); GaussianNoise(seed=1.5) failed in numpy's SeedSequence."""
    thin = np.zeros((12, 1000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"resize factor 0\.04 makes the 1000x12 image 40x0: a side of no pixel"):
        P.resize().apply(thin, 0.04)
    assert P.resize().apply(thin, 0.5).shape == (6, 500, 3)
    for bad in (1.5, -1, True):
        with pytest.raises(ValueError, match="gaussian_noise: seed must be a whole number >= 0"):
            P.gaussian_noise(2.0, seed=bad)
    assert P.gaussian_noise(2.0, seed=np.int64(3)).seed == 3


def test_a_map_with_nan_on_scored_pixels_keeps_the_other_rows(planted, mask):
    """A custom analysis whose map held NaN for one value ended the sweep with a traceback
    ('map holds NaN on scored pixels'), losing the rows computed before it."""
    from trufor_lab.lab.metrics import localization_metrics, scored_regions

    def fn(model, image):
        r = bright_detector(model, image)
        if image.shape[0] == 64:  # the 0.5 resize
            r.map[:] = np.nan
        return r

    res = P.sweep(None, planted, mask, "resize", [1.0, 0.5, 0.75], analyze_fn=fn)
    assert [r["value"] for r in res.table] == [1.0, 0.5, 0.75]
    for i, f in ((0, 1.0), (2, 0.75)):  # the rows around it, scored as without it
        pim, pmask = P.resize(f).apply(planted, None, mask)
        assert res.table[i]["f1_best"] == localization_metrics(bright_detector(None, pim).map, pmask).f1_best
        assert res.table[i]["error"] is None
    row = res.table[1]
    assert np.isnan(row["f1_best"]) and np.isnan(row["auc"]) and row["score"] == 1.0
    assert res.failed == ["factor=0.5: the map holds NaN on scored pixels (not scored)"]
    assert row["n_forged"] == int(scored_regions(P.resize(0.5).apply(planted, None, mask)[1])[0].sum())


def test_sweep_rows_say_when_the_best_f1_is_the_inverted_maps():
    """Notebook 05 circled 'F1 from the inverted map' where the pixel AUC was below 0.5, as the
    sweep's rows did not say: here the AUC is 0.43 yet the best F1 (0.56, map > 0.75: the bright
    left of the region) is the map's own. Rows now carry the metric's ``best_inverted``."""
    from trufor_lab.lab.metrics import localization_metrics

    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    hmap = np.full((64, 64), 0.5, np.float32)
    hmap[:26] = 0.25
    hmap[:, :50] = 0.75
    hmap[16:48, 16:30], hmap[16:48, 30:48] = 1.0, 0.25

    @dataclass
    class Out:
        map: np.ndarray
        conf: np.ndarray
        score: float

    def fn(model, image):
        return Out(hmap, np.ones_like(hmap), 0.9)

    lm = localization_metrics(hmap, mask)
    assert lm.auc < 0.5 and not lm.best_inverted and lm.f1_best == pytest.approx(0.56)
    (row,) = P.sweep(None, np.zeros((64, 64, 3), np.uint8), mask, "blur", [0.0], analyze_fn=fn).table
    assert row["auc"] == lm.auc and row["best_inverted"] is False
    row = P.sweep(
        None, np.zeros((64, 64, 3), np.uint8), mask, "blur", [0.0], analyze_fn=lambda m, i: Out(1 - hmap, hmap, 0.9)
    ).table[0]
    assert row["best_inverted"] is True  # the same map turned over
    (row,) = P.sweep(None, np.zeros((64, 64, 3), np.uint8), None, "blur", [0.0], analyze_fn=fn).table
    assert row["best_inverted"] is None  # nothing scored
    res = P.sweep(None, np.zeros((64, 64, 3), np.uint8), mask, "blur", [0.0, 0.5], analyze_fn=fn)
    res.table[1]["best_inverted"] = None  # as a row with nothing scored holds it
    assert res.column("best_inverted")[0] == 0 and np.isnan(res.column("best_inverted")[1])  # was TypeError
