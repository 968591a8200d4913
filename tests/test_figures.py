"""Figures render real content: non-blank PNGs, the right panels, fixed map scale, spectra peaks."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trufor_lab.inference.analyze import Result  # noqa: E402
from trufor_lab.interpret.features import branch_similarity, channel_stats, pca_rgb, spatial_stats  # noqa: E402
from trufor_lab.viz import figures as F  # noqa: E402
from trufor_lab.viz.noiseprint import (
    compare_regions,
    local_variance,
    log_spectrum,  # noqa: E402
    periodic_peak_ratio,
    plot_noiseprint,
    region_stats,
)


@pytest.fixture(autouse=True)
def _no_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("library code called plt.show()"))
    yield
    plt.close("all")


def png_pixels(fig) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=float)


def assert_not_blank(fig, min_std: float = 8.0) -> None:
    px = png_pixels(fig)
    assert px.std() > min_std, f"figure looks blank (pixel std {px.std():.1f})"


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.fixture(scope="module")
def real_noiseprint(shared_dir) -> np.ndarray:
    """Noiseprint++ of the official JPEG sample pristine1.jpg (the fixture map), 128x128, grid-aligned."""
    a = np.load(shared_dir / "fixtures" / "trufor_parity" / "noiseprint_pristine1.npz")["noiseprint"]
    return a[64:192, 96:224]


@pytest.fixture(scope="module")
def synthetic_result(tampered2) -> Result:
    img = tampered2[64:160, 64:160].copy()
    yy, xx = np.mgrid[:96, :96]
    heat = np.clip((xx - 20) / 60.0, 0, 1).astype(np.float32)
    conf = np.clip(1 - yy / 96.0, 0, 1).astype(np.float32)
    npm = (img.mean(2) / 255.0 - 0.5).astype(np.float32)
    return Result(image=img, noiseprint=npm, map=heat, conf=conf, score=0.734, name="crop")


# -- plot_result --------------------------------------------------------------------------------
def test_plot_result_panels_scale_and_title(synthetic_result):
    mask = np.zeros((96, 96), bool)
    mask[30:60, 40:80] = True
    fig = F.plot_result(synthetic_result, mask=mask)
    assert_not_blank(fig)
    panels = image_axes(fig)
    titles = [ax.get_title() for ax in panels]
    assert titles == ["Image", "Ground truth", "Noiseprint++", "Localization map", "Confidence", "Overlay"]
    heat = panels[titles.index("Localization map")].images[0]
    assert heat.get_clim() == (0, 1) and heat.get_cmap().name == "RdBu_r"
    assert len(fig.axes) == 8  # 6 panels + 2 colour bars
    assert "0.734" in fig._suptitle.get_text()


def test_plot_result_noiseprint_only(synthetic_result):
    r = Result(image=synthetic_result.image, noiseprint=synthetic_result.noiseprint, notice="no checkpoint")
    fig = F.plot_result(r)
    assert [ax.get_title() for ax in image_axes(fig)] == ["Image", "Noiseprint++"]
    assert "Noiseprint++ only" in fig._suptitle.get_text()


# -- Noiseprint++ views -------------------------------------------------------------------------
def test_local_variance_and_spectrum_math():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 48))
    v = local_variance(a, 5)
    np.testing.assert_allclose(v[20, 20], a[18:23, 18:23].var(), rtol=1e-9)
    assert np.allclose(local_variance(np.full((10, 10), 3.0), 5), 0)
    grid = np.zeros((64, 64))
    grid[::8, :] = 1.0
    spec = log_spectrum(grid + 0.01 * rng.standard_normal((64, 64)))
    c = 32
    assert spec[c + 8, c] > np.median(spec) + 3  # 1/8 cycles/pixel vertically: a peak


def test_jpeg_grid_shows_in_real_noiseprint(real_noiseprint):
    noise = np.random.default_rng(0).standard_normal((128, 128))
    assert periodic_peak_ratio(real_noiseprint) > 30 > 10 > periodic_peak_ratio(noise)
    st = region_stats(real_noiseprint, (0, 0, 64, 64))
    assert set(st) == {"mean", "std", "grid_peak_ratio"} and st["std"] > 0


def test_plot_noiseprint(real_noiseprint):
    fig = plot_noiseprint(real_noiseprint, title="pristine1")
    assert_not_blank(fig)
    panels = image_axes(fig)
    assert [ax.get_title() for ax in panels] == ["Noiseprint++", "Local variance (15x15)", "log10 power spectrum"]
    assert len(fig.axes) == 4  # + the variance colour bar
    spec = panels[2].images[0].get_array()
    assert spec.shape == (128, 128) and np.ptp(spec) > 2


def test_compare_regions(real_noiseprint):
    from matplotlib.patches import Rectangle

    fig = compare_regions(real_noiseprint, (0, 0, 64, 64), (64, 64, 128, 128), labels=("sky", "wall"))
    assert_not_blank(fig)
    assert len(fig.axes) == 7
    overview = fig.axes[0]
    assert sum(isinstance(p, Rectangle) for p in overview.patches) == 2
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "sky" in titles and "wall" in titles and "spectrum" in titles
    with pytest.raises(ValueError):
        compare_regions(real_noiseprint, (0, 0, 1, 1), (0, 0, 10, 10))


# -- feature figures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fmap() -> np.ndarray:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:24, :32]
    base = np.stack([np.sin(xx / (3 + i)) * np.cos(yy / (2 + i % 5)) for i in range(20)])
    return base * rng.uniform(0.2, 3.0, (20, 1, 1))


def test_feature_grid(fmap):
    fig = F.plot_feature_grid(fmap, k=9, title="stage 1")
    assert_not_blank(fig)
    panels = image_axes(fig)
    assert len(panels) == 9
    top = channel_stats(fmap).top(1)[0]
    assert panels[0].get_title() == f"ch {top}"


def test_pca_channel_spatial_histogram_figures(fmap):
    fig = pca_rgb(fmap, name="x").plot()
    assert_not_blank(fig)
    assert image_axes(fig)[0].images[0].get_array().shape == (24, 32, 3)
    assert_not_blank(channel_stats(fmap, "x").plot(), 3)
    fig = spatial_stats(fmap).plot()
    assert len(image_axes(fig)) == 2
    fig = F.plot_histograms({"a": fmap, "b": 2 * fmap}, bins=30)
    assert len(fig.axes[0].patches) == 2 and fig.axes[0].get_legend() is not None


def test_branch_comparison_and_stage_figures(fmap):
    caps = {}
    for s in (1, 2):
        caps[f"rgb.stage{s}.out"] = fmap
        caps[f"noiseprint.stage{s}.out"] = fmap[::-1].copy()
        caps[f"fusion.stage{s}.frm.rgb"] = fmap + 0.5 * fmap[::-1]
        caps[f"fusion.stage{s}.frm.noiseprint"] = fmap[::-1] + 0.5 * fmap
        caps[f"fusion.stage{s}.ffm"] = fmap * 2
    cmp = branch_similarity(caps)
    fig = cmp.plot()
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) >= 4
    assert_not_blank(fig, 3)
    fig = F.plot_branch_comparison(cmp, maps=True)
    assert len(fig.axes) == 1 + 2 * 2
    fig = F.plot_stage_branches(caps, 2)
    assert_not_blank(fig)
    assert [ax.get_title().split(" (")[0] for ax in image_axes(fig)] == ["RGB", "Noiseprint++", "fused"]
    fig = F.plot_stage_branches(caps, 1, mode="channel", channel=3)
    assert all("ch 3" in ax.get_title() for ax in image_axes(fig))


def test_figures_draw_into_a_given_figure(fmap):
    from matplotlib.figure import Figure

    fig = Figure()
    assert F.plot_feature_grid(fmap, k=4, fig=fig) is fig
    ax = Figure().add_subplot()
    assert F.plot_pca(fmap, ax=ax) is ax.figure


def test_one_nan_does_not_blank_a_panel():
    """np.percentile of a map with one NaN is NaN: both colour limits were NaN and the panel
    came out flat. Limits come from the finite values."""
    from trufor_lab.viz.figures import robust_limits

    a = np.linspace(0, 1, 2500).reshape(50, 50)
    a[3, 3] = np.nan
    lo, hi = robust_limits(a)
    assert 0 <= lo < 0.05 and 0.95 < hi <= 1
    assert robust_limits(np.full((3, 3), np.nan)) == (0.0, 1.0)


def test_result_figure_calls_only_the_official_score_an_integrity_score(tampered2):
    """The paper's 'integrity score' belongs to the official checkpoint; the demo model's number
    was titled the same in every figure (and the report embeds that figure)."""
    import dataclasses

    import trufor_lab as tl
    from trufor_lab.inference.weights import WeightsInfo

    r = tl.analyze(tl.load(device="cpu"), tampered2[:64, :64].copy())
    assert r.weights.kind == "demo"
    title = r.plot()._suptitle.get_text()
    assert "integrity score" not in title and "(demo weights, not the official TruFor)" in title
    official = dataclasses.replace(r, weights=WeightsInfo("official", "trufor.pth.tar", "0" * 64, True))
    assert f"integrity score {r.score:.3f}" in official.plot()._suptitle.get_text()
    unverified = dataclasses.replace(r, weights=WeightsInfo("official", "trufor.pth.tar", "0" * 64, False))
    assert "(unverified checkpoint)" in unverified.plot()._suptitle.get_text()
    assert "integrity score" not in dataclasses.replace(r, weights=None).plot()._suptitle.get_text()


def test_a_figure_of_a_result_on_its_stored_grid_says_viewers_show_it_turned(array_result, tmp_path):
    """A phone photo (EXIF orientation 6) was drawn on its stored, sideways grid with nothing in
    the figure saying so (only summary() had the note); the viewer's title also left out whose
    weights made the score. Turned as shown, the figure needs no word."""
    import dataclasses

    import trufor_lab as tl
    from trufor_lab.widgets.result_viewer import ResultViewer

    from PIL import Image

    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        tmp_path / "phone.jpg", exif=ex
    )
    r = tl.analyze(tl.load(device="cpu"), tmp_path / "phone.jpg")
    for title in (r.plot()._suptitle.get_text(), ResultViewer(r).render()._suptitle.get_text()):
        assert "viewers show it turned (EXIF orientation 6; see .as_shown())" in title, title
        assert "(demo weights, not the official TruFor)" in title, title
    assert "viewers show it turned" not in r.as_shown().plot()._suptitle.get_text()
    assert "viewers show it turned" not in dataclasses.replace(r, exif_orientation=1).plot()._suptitle.get_text()


def test_plot_result_without_confidence_has_no_confidence_panel(array_result):
    """conf=None drew a second overlay (the image) in the panel titled 'Confidence'."""
    fig = F.plot_result(array_result(32, 40, conf=None))
    titles = [ax.get_title() for ax in image_axes(fig) if ax.get_title()]
    assert titles == ["Image", "Noiseprint++", "Localization map", "Overlay"]
    assert len(fig.axes) == 5  # 4 panels + the map's colour bar


def test_grey_images_are_drawn_in_grey_on_their_full_range(array_result):
    """A 2-D image was drawn in autoscaled viridis: a dark grey picture came out yellow and purple."""
    dark = np.full((32, 40), 10, np.uint8)
    dark[:, 20:] = 20
    fig = F.plot_result(array_result(32, 40, image=dark))
    im = fig.axes[0].images[0]
    assert im.get_cmap().name.startswith("gray") and im.get_clim() == (0, 255)
    fig = F.plot_result(array_result(32, 40, image=dark / 255.0))
    assert fig.axes[0].images[0].get_clim() == (0, 1)
    assert fig.axes[1].get_title() == "Noiseprint++"  # no colour bar for a grey float image
    overlay = [ax for ax in fig.axes if ax.get_title() == "Overlay"][0].images[0]
    assert overlay.get_cmap().name.startswith("gray") and overlay.get_clim() == (0, 1)
    ax = plt.figure().add_subplot()
    F.draw_overlay(ax, dark, None)
    assert ax.images[0].get_cmap().name.startswith("gray") and ax.images[0].get_clim() == (0, 255)
    rgb = F.plot_result(array_result(32, 40)).axes[0].images[0]
    assert rgb.get_array().shape == (32, 40, 3)


def test_nan_confidence_and_noiseprint_pixels_are_drawn_visibly(array_result):
    """NaN pixels were transparent: a NaN confidence looked like 1 on the white page."""
    conf = np.ones((32, 40), np.float32)
    conf[:8] = np.nan
    npm = np.random.default_rng(0).standard_normal((32, 40)).astype(np.float32)
    npm[:4] = np.nan
    fig = F.plot_result(array_result(32, 40, conf=conf, noiseprint=npm))
    by_title = {ax.get_title(): ax.images[0] for ax in image_axes(fig)}
    for title in ("Confidence", "Noiseprint++"):
        assert by_title[title].get_cmap().get_bad()[3] == 1, title
    assert plot_noiseprint(npm).axes[0].images[0].get_cmap().get_bad()[3] == 1


def test_plot_result_strides_large_pictures_and_refuses_a_mask_on_another_grid(array_result):
    """A 48 MP result's figure took 36 s and 3.4 GB: every panel is now strided to <= 2048 px, alike."""
    r = array_result(3000, 2500)
    mask = np.zeros((3000, 2500), bool)
    mask[100:900, 100:900] = True
    fig = F.plot_result(r, mask=mask)
    shapes = {im.get_array().shape[:2] for ax in fig.axes for im in ax.images}
    assert shapes == {(1500, 1250)}
    with pytest.raises(ValueError, match="mask is"):
        F.plot_result(r, mask=mask[:100])
    ax = plt.figure().add_subplot()
    F.draw_overlay(ax, r.image, r.map, conf=r.conf, conf_min=0.5, mask=mask)
    assert {im.get_array().shape[:2] for im in ax.images} == {(1500, 1250)}


def test_the_noiseprint_figure_labels_do_not_overlap():
    """The local variance's colourbar tick labels overlapped the spectrum's y-axis labels."""
    import numpy as np

    from trufor_lab.viz.noiseprint import plot_noiseprint

    fig = plot_noiseprint(np.random.default_rng(0).standard_normal((192, 320)).astype(np.float32))
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    colourbar = fig.axes[-1]  # added last
    spectrum = fig.axes[2]
    assert colourbar.get_tightbbox(r).x1 <= spectrum.get_tightbbox(r).x0, "colourbar labels run into the spectrum"


def test_a_peak_ratio_too_small_to_measure_is_nan_and_said_so(real_noiseprint):
    """Under 32 pixels a side the comparison ring was empty and the ratio 1.0, shown as '8x8 peaks
    x1.0': it read as a measured 'no grid'."""
    import math

    for n in (4, 8, 16, 31):
        assert math.isnan(periodic_peak_ratio(real_noiseprint[:n, :n]))
        assert math.isnan(region_stats(real_noiseprint, (0, 0, n, 64))["grid_peak_ratio"])
    assert periodic_peak_ratio(real_noiseprint[:32, :32]) > 1  # the grid measured from 32 pixels on
    fig = compare_regions(real_noiseprint, (0, 0, 16, 16), (0, 0, 64, 64))
    titles = [ax.get_title() for ax in fig.axes]
    assert "A: spectrum (8x8 peaks too small to measure)" in titles
    assert any(t.startswith("B: spectrum (8x8 peaks x") for t in titles)


def test_plot_result_refuses_an_rgb_mask_and_a_map_off_the_grid(array_result):
    """An (H, W, 3) mask (np.array of a mask PNG) was drawn as a picture with a clipping warning; a
    map of another shape than the image was drawn misaligned."""
    r = array_result(40, 60)
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[10:20, 10:30] = 255
    with pytest.raises(ValueError, match=r"mask must be 2-D.*\(40, 60, 3\)"):
        r.plot(mask=rgb)
    fig = r.plot(mask=rgb[..., 0])  # 0/255: a mask, drawn on [0, 1]
    gt = next(ax for ax in fig.axes if ax.get_title() == "Ground truth").images[0].get_array()
    assert float(gt.max()) == 1.0 and float(gt.sum()) == 200
    with pytest.raises(ValueError, match=r"conf is \(40, 59\), the image \(40, 60\)"):
        array_result(40, 60, conf=np.ones((40, 59), np.float32)).plot()


def test_a_region_outside_the_map_is_refused_not_clipped():
    """(-10, -10, 64, 64) was clipped to the whole map (its mean reported as the region's) and
    (50, 50, 500, 500) to the 14x14 corner, without a word."""
    a = np.arange(64 * 64, dtype=float).reshape(64, 64)
    for region in ((-10, -10, 64, 64), (50, 50, 500, 500), (0, 0, 65, 64), (0, -1, 10, 10)):
        with pytest.raises(ValueError, match=rf"^region \({', '.join(map(str, region))}\) runs outside the 64x64 map"):
            region_stats(a, region)
        with pytest.raises(ValueError, match="runs outside the 64x64 map"):
            compare_regions(a, (0, 0, 10, 10), region)
    assert plt.get_fignums() == []  # refused before a figure was made
    assert region_stats(a, (50, 50, 64, 64))["mean"] == a[50:, 50:].mean()


@pytest.mark.parametrize("size", [0, -3, 2.5, float("nan")])
def test_a_variance_window_under_one_pixel_is_refused(size):
    """plot_noiseprint(variance_size=0) drew an all-zero panel titled 'Local variance (0x0)'."""
    a = np.random.default_rng(0).standard_normal((40, 40))
    with pytest.raises(ValueError, match=r"^variance_size must be a whole number of pixels >= 1, got "):
        plot_noiseprint(a, variance_size=size)
    with pytest.raises(ValueError, match=r"^variance_size must be"):
        compare_regions(a, (0, 0, 20, 20), (20, 20, 40, 40), variance_size=size)
    with pytest.raises(ValueError, match=r"^size must be"):
        local_variance(a, size)
    assert plt.get_fignums() == []


def test_refused_feature_figures_leave_no_figure_open_and_1d_values_are_histogrammed(fmap):
    """plot_histograms(1-D values) and plot_feature_grid(channels=[9]) of 8 channels failed after
    making their pyplot figure, which stayed open; 1-D activation values were refused as not a
    'feature map'."""
    with pytest.raises(ValueError, match=r"plot_feature_grid: channel 20 is not in 0\.\.19"):
        F.plot_feature_grid(fmap, channels=[3, 20])
    with pytest.raises(ValueError, match=r"plot_histograms: b has shape \(1, 1, 2, 3, 4\); expected 1-D values"):
        F.plot_histograms({"a": fmap, "b": np.zeros((1, 1, 2, 3, 4))})
    assert plt.get_fignums() == []
    values = np.random.default_rng(0).standard_normal(500)
    fig = F.plot_histograms(values, bins=20)
    counts = fig.axes[0].patches[0].get_path().vertices[:, 1].max()
    assert counts == pytest.approx(np.histogram(values, bins=20, density=True)[0].max())


def test_a_very_long_result_is_drawn_stretched_and_said_so(array_result):
    """A 4x3000 result was drawn in panels 0 pixels high."""
    r = array_result(4, 3000)
    fig = r.plot()
    fig.canvas.draw()
    assert all(ax.get_window_extent().height > 50 for ax in image_axes(fig))
    assert any("stretched" in t.get_text() and "4x3000" in t.get_text() for t in fig.texts)
    square = array_result(40, 60).plot()
    assert not any("stretched" in t.get_text() for t in square.texts)
    assert all(ax.get_aspect() == 1.0 for ax in image_axes(square))


def test_a_figure_under_an_ablation_says_so_in_its_title():
    import trufor_lab as tl
    from trufor_lab.inference.predict import predict_result
    from trufor_lab.interpret import ablate

    m = tl.load(device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert "under" not in F.result_title(tl.analyze(m, img))
    with ablate.rgb_only(m):
        a, p = tl.analyze(m, img), predict_result(m, img)
    assert "[under rgb_only]" in F.result_title(a) and "[under rgb_only]" in F.result_title(p)
    labelled = ablate.rgb_only(m).analyze(img)  # its label already names the ablation
    assert F.result_title(labelled).count("rgb_only") == 1


def test_refused_drawing_options_leave_no_figure_open(synthetic_result):
    a = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        F.plot_feature_grid(a, cmap="nope")
    for alpha in (float("nan"), 7, -0.1, "half"):
        with pytest.raises(ValueError, match="overlay_alpha must be a number in"):
            F.plot_result(synthetic_result, overlay_alpha=alpha)
    assert plt.get_fignums() == before
    plt.close(F.plot_result(synthetic_result, overlay_alpha=0))


def blocks_of_three(a: np.ndarray) -> np.ndarray:
    """The mean of each 3x3 block of ``a``, the last ones partial (NaN padding left out)."""
    h, w = -(-a.shape[0] // 3), -(-a.shape[1] // 3)
    padded = np.full((3 * h, 3 * w), np.nan)
    padded[: a.shape[0], : a.shape[1]] = a
    return np.nanmean(padded.reshape(h, 3, w, 3), axis=(1, 3))


def test_the_noiseprint_figure_draws_a_large_map_at_screen_size_but_measures_it_whole():
    """A 12 MP Noiseprint++ figure drew its map and variance panels at full size (seconds each, for
    a few hundred pixels on screen): they are averaged over blocks to <= 2048 pixels a side (a
    stride doubled the contrast of the noise-like map); the colour scales, the variance and the
    spectrum still come from the whole map."""
    from trufor_lab.viz.noiseprint import local_variance, log_spectrum, plot_noiseprint

    a = np.random.default_rng(1).standard_normal((64, 4100)).astype(np.float32)
    fig = plot_noiseprint(a)
    panel, variance, spectrum = (ax.images[0] for ax in fig.axes[:3])
    assert panel.get_array().shape == variance.get_array().shape == (22, 1367)  # blocks of 3: <= 2048 px
    np.testing.assert_allclose(panel.get_array(), blocks_of_three(a), rtol=1e-12)
    assert panel.get_clim() == F.robust_limits(a)
    var = local_variance(a)
    np.testing.assert_allclose(variance.get_array(), blocks_of_three(var), rtol=1e-12)
    assert variance.get_clim() == (0, F.robust_limits(var)[1])
    assert spectrum.get_array().shape == (64, 4100)  # its peaks are single bins
    np.testing.assert_array_equal(spectrum.get_array(), log_spectrum(a))
    # a block holding NaN stays NaN: drawn in BAD_COLOR, not averaged away
    np.testing.assert_array_equal(F.display_mean(np.array([[np.nan, 1, 1], [1, 1, 3]]), 2), [[np.nan, 2]])


def test_plot_result_draws_a_large_noiseprint_averaged_not_strided(array_result):
    """Over 2048 px the Noiseprint++ panel was ``a[::2, ::2]``: white noise kept its whole
    standard deviation, about twice that of the map as the screen shows it (blocks of 2x2 average
    it to half). Every panel is now averaged over the same blocks (the picture in its own dtype),
    the colour scale still from the whole map."""
    r = array_result(2100, 300)
    fig = F.plot_result(r)
    panel = {ax.get_title(): ax.images[0] for ax in fig.axes if ax.images}
    npm = panel["Noiseprint++"].get_array()
    np.testing.assert_allclose(npm, F.display_mean(r.noiseprint, 2), rtol=1e-12)
    assert 0.4 < np.std(npm) / np.std(r.noiseprint) < 0.6  # a stride gave 1.0
    assert panel["Noiseprint++"].get_clim() == F.robust_limits(r.noiseprint[::2, ::2])
    image = panel["Image"].get_array()
    assert image.dtype == np.uint8 and image.shape == (1050, 150, 3)
    want = r.image.astype(float).reshape(1050, 2, 150, 2, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(image, np.rint(want).astype(np.uint8))
    np.testing.assert_allclose(panel["Localization map"].get_array(), F.display_mean(r.map, 2), rtol=1e-12)


def test_an_array_of_no_pictures_dtype_is_refused_by_its_dtype_not_by_values_it_does_not_hold():
    """Complex and object arrays were refused as holding "values 0..0", values they do not hold."""
    from trufor_lab.viz.display import as_picture, show_image

    picture = np.arange(12, dtype=np.int64).reshape(3, 4) * 20
    assert as_picture(picture).dtype == np.uint8
    with pytest.raises(ValueError, match=r"^p\.png: the image holds int64 values 0\.\.440; a picture is drawn"):
        as_picture(picture * 2, "p.png")
    for bad, dtype in [(picture + 1j, "complex128"), (picture.astype(object), "object"), (picture.astype(str), "<U21")]:
        with pytest.raises(ValueError) as e:
            show_image(plt.figure().add_subplot(), bad, "p.png")
        assert str(e.value).startswith(f"p.png: the image is a {dtype} array, not a picture's dtype; a picture is")
        assert "0..0" not in str(e.value)


def test_file_names_in_figures_are_shown_as_names_not_as_control_characters(tmp_path):
    """File names went raw into figure text where the other figures show them through
    display_name: an ablation study's image ticks and title and a failure gallery's row label
    drew a terminal escape and a carriage return as missing glyphs (a newline broke the label in
    two), and an attribution's image panel was titled with the whole path (the user's folders)."""
    from trufor_lab.common.table import Table
    from trufor_lab.interpret.ablate import AblationStudy
    from trufor_lab.lab.evaluate import Evaluation
    from trufor_lab.lab.failures import render_cases

    odd = ["a\x1b[2K\rFAKE.png", "b\u202egnp.exe\nx.png"]
    rows = [{"image": im, "ablation": a, "score": 0.5} for im in odd for a in ("baseline", "rgb_only")]
    texts = []
    for images in (odd, odd[:1]):
        fig = AblationStudy(Table([r for r in rows if r["image"] in images]), {"baseline": [], "rgb_only": []}, images)
        fig = fig.plot("score")
        fig.savefig(io.BytesIO(), format="png")
        texts += [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
        plt.close(fig)
    row = {"id": "sub/" + odd[0], "label": 1, "score": 0.2, "image_path": str(tmp_path / "gone.png")}
    fig = render_cases(Evaluation([row]), [row], None, 1.5)
    fig.savefig(io.BytesIO(), format="png")
    texts += [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    plt.close(fig)
    from trufor_lab.interpret.attribution import Attribution

    m = np.zeros((16, 16), np.float32)
    a = Attribution(np.zeros((16, 16, 3), np.uint8), m, "ig", "score", name=str(tmp_path / "secret" / odd[1]))
    a.extras.update(maps={"rgb": m, "noiseprint": m}, shares={"rgb": 0.5, "noiseprint": 0.5})
    fig = a.plot_modalities()
    fig.savefig(io.BytesIO(), format="png")
    texts += [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    plt.close(fig)
    shown = "\n".join(texts)
    assert "a?[2K?FAKE.png" in shown and "sub/a?[2K?FAKE.png" in shown and "b?gnp.exe?x.png" in shown, shown
    assert "secret" not in shown, shown
    assert not any(c in shown for c in "\x1b\r\u202e"), shown


def test_sweeps_of_checkpoints_named_with_dollars_are_drawn():
    """Two sweeps of different weights on one axes name each one's weights in the legend: a
    checkpoint named 'run_$\\frac$.pt' made the figure fail when drawn (mathtext's
    ParseSyntaxException), and a terminal escape in a checkpoint's name was drawn as a glyph box."""
    from trufor_lab.inference.weights import WeightsInfo
    from trufor_lab.lab.perturb import SweepResult

    def sweep(path, sha):
        rows = [{"value": v, "score": 0.1 * i, "f1_best": 0.2} for i, v in enumerate([90, 70])]
        return SweepResult("jpeg $\\frac$", rows, weights=WeightsInfo("custom", path, sha, False))

    fig = sweep("/ckpt/run_$\\frac$.pt", "a" * 64).plot()
    sweep("/ckpt/other\x1b[2K.pt", "b" * 64).plot(ax=fig.axes[0])
    fig.savefig(io.BytesIO(), format="png")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "integrity score\ncustom weights run_$\\frac$.pt, sha256 aaaaaaaaaaaa" in legend, legend
    assert "integrity score\ncustom weights other?[2K.pt, sha256 bbbbbbbbbbbb" in legend, legend
    assert fig.axes[0].get_xlabel() == "jpeg $\\frac$"
    plt.close(fig)


def test_an_ablation_studys_rows_named_alike_but_for_their_folders_stay_apart():
    """Images named by the user with their folders ('CASIA/Tp_0001.png', 'Columbia/Tp_0001.png':
    distinct names, as the study requires) were both ticked 'Tp_0001.png' in the heatmap, whose
    rows could then not be told apart; a name alone in its base name still hides its folders."""
    from trufor_lab.common.table import Table
    from trufor_lab.interpret.ablate import AblationStudy

    for images, ticks in (
        (["CASIA/Tp_0001.png", "Columbia/Tp_0001.png"], ["CASIA/Tp_0001.png", "Columbia/Tp_0001.png"]),
        (["/home/u/a.png", "/home/u/b\x1b.png"], ["a.png", "b?.png"]),
    ):
        rows = [{"image": im, "ablation": a, "score": 0.5} for im in images for a in ("baseline", "rgb_only")]
        fig = AblationStudy(Table(rows), {"baseline": [], "rgb_only": []}, images).plot("score")
        assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ticks
        plt.close(fig)
