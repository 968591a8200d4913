"""Figures of large and unusual inputs: drawn at screen size by block means with colour scales
from the whole arrays, and pictures in any dtype drawn as read or refused in one line."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trufor_lab.viz import figures as F  # noqa: E402

#: A map longer than MAX_DISPLAY_SIDE (2048) on one side, small in memory: drawn in blocks of 3.
H, W = 64, 4100
SHOWN = (22, 1367)


@pytest.fixture
def noise() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((H, W)).astype(np.float32)


@pytest.fixture
def picture() -> np.ndarray:
    return np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)


def drawn(ax) -> np.ndarray:
    return np.ma.getdata(ax.images[0].get_array())


def test_compare_regions_draws_the_whole_map_and_large_regions_averaged_on_the_maps_pixels(noise):
    """The whole-map panel of compare_regions was drawn at full size (a 12 MP map for a panel a
    few hundred pixels wide): it is averaged over blocks, drawn on the map's own pixel coordinates
    (the regions' outlines stay where they are), its colour scale from the whole map; a large
    region's crop and variance are averaged too."""
    from trufor_lab.viz.noiseprint import compare_regions, local_variance

    fig = compare_regions(noise, (0, 0, H, W), (0, 4000, 64, 4100))
    full = fig.axes[0]
    np.testing.assert_allclose(drawn(full), F.display_mean(noise.astype(np.float64), 3), rtol=1e-12)
    assert drawn(full).shape == SHOWN
    assert full.images[0].get_extent() == [-0.5, SHOWN[1] * 3 - 0.5, SHOWN[0] * 3 - 0.5, -0.5]
    assert full.get_xlim() == (-0.5, W - 0.5) and full.get_ylim() == (H - 0.5, -0.5)
    assert full.images[0].get_clim() == F.robust_limits(noise)
    (x0, y0), width = full.patches[1].get_xy(), full.patches[1].get_width()
    assert (x0, y0, width) == (3999.5, -0.5, 100)  # region B outlined in the map's pixels
    crop, variance = fig.axes[1], fig.axes[2]
    assert drawn(crop).shape == drawn(variance).shape == SHOWN
    assert crop.images[0].get_clim() == F.robust_limits(noise)
    var = local_variance(noise, 9)
    np.testing.assert_allclose(drawn(variance), F.display_mean(var, 3), rtol=1e-12)
    assert variance.images[0].get_clim()[1] == max(F.robust_limits(var)[1], F.robust_limits(var[:, 4000:])[1])


def test_attribution_figures_draw_large_maps_averaged_with_the_whole_maps_scale(noise, picture):
    """Attribution.plot and plot_modalities drew the image and the maps at full size: averaged
    over blocks now (image and map alike), the colour limit still the whole map's."""
    from trufor_lab.interpret.attribution import Attribution, _robust_abs

    a = Attribution(image=picture, map=noise, method="ig", target="score")
    ax = a.plot().axes[0]
    grey, heat = (np.ma.getdata(im.get_array()) for im in ax.images)
    assert grey.shape == heat.shape == SHOWN
    np.testing.assert_allclose(grey, F.display_mean(picture, 3).mean(axis=2))
    np.testing.assert_allclose(heat, F.display_mean(noise, 3), rtol=1e-12)
    lim = _robust_abs(noise)
    assert ax.images[1].get_clim() == (-lim, lim)

    shares = {"rgb": 0.25, "noiseprint": 0.75}
    m = Attribution(
        image=picture,
        map=noise,
        method="modality",
        target="score",
        extras={"shares": shares, "maps": {"rgb": noise, "noiseprint": np.abs(noise)}},
    )
    fig = m.plot_modalities()
    assert drawn(fig.axes[0]).shape == SHOWN + (3,)
    positive = fig.axes[2].images[1]
    assert np.ma.getdata(positive.get_array()).shape == SHOWN
    assert positive.get_clim() == (0, _robust_abs(np.abs(noise)))


def test_a_forgery_is_drawn_averaged_with_a_thin_region_still_outlined(picture):
    """Forgery.plot drew a 12 MP image and contoured its full-size mask: both averaged over blocks
    now, and a region one pixel wide (a third of a block) is still outlined."""
    from trufor_lab.lab.forgeries import Forgery

    mask = np.zeros((H, W), bool)
    mask[10:50, 2001] = True
    fig = Forgery(picture, mask, "splice", name="thin").plot()
    ax = fig.axes[0]
    np.testing.assert_array_equal(drawn(ax), F.display_mean(picture, 3))
    assert len(ax.collections) == 1  # the outline
    (segments,) = ax.collections[0].allsegs
    xs = np.concatenate([s[:, 0] for s in segments])
    assert 2001 // 3 - 1 <= xs.min() < xs.max() <= 2001 // 3 + 1  # around the block holding the line


@pytest.mark.parametrize(
    "image, want",
    [
        (np.full((4, 4, 3), 40000, np.uint16), 156),  # 16-bit: round(40000 / 257); was clipped white
        (np.full((4, 4), 40000, np.uint16), 156),
        (np.full((4, 4), 200, np.int64), 200),  # 8-bit values in int64: was black (scale 0..2**63)
        (np.ones((4, 4), bool), 255),  # was black (autoscale of one value)
        (np.full((4, 4, 3), 0.5), 128),
    ],
)
def test_show_image_draws_16_bit_integer_and_boolean_pictures_as_they_read(image, want):
    fig, ax = plt.subplots()
    im = F.show_image(ax, image)
    fig.canvas.draw()
    rgba = im.make_image(fig.canvas.get_renderer(), unsampled=True)[0]
    assert abs(int(rgba[0, 0, 0]) - want) <= 1 and rgba[0, 0, 0] == rgba[0, 0, 1] == rgba[0, 0, 2]


@pytest.mark.parametrize(
    "image, said",
    [
        (np.full((8, 8, 3), 120.0), r"float64 values 120\.\.120"),  # a 0..255 float: was drawn white
        (np.full((8, 8), 120.0, np.float32), r"float32 values 120\.\.120"),
        (np.full((8, 8, 3), 70000, np.int32), r"int32 values 70000\.\.70000"),  # was clipped white
        (np.full((8, 8, 3), np.nan), "NaN or infinite"),  # was transparent
    ],
)
def test_a_picture_that_cannot_be_drawn_as_read_is_refused_in_one_line_before_a_figure(array_result, image, said):
    """A hand-built Result whose image is float 0..255 was drawn white (clipped to 0..1)."""
    r = array_result(8, 8, image=image)
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=f"^synthetic: the image holds {said}") as e:
        F.plot_result(r)
    assert "\n" not in str(e.value) and plt.get_fignums() == before
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=f"^image: the image holds {said}"):
        F.draw_overlay(ax, image, None)


def test_plot_result_draws_a_16_bit_picture_as_it_reads(array_result):
    r16 = array_result(8, 8, image=np.full((8, 8, 3), 30840, np.uint16))
    image = {ax.get_title(): ax for ax in F.plot_result(r16).axes}["Image"]
    np.testing.assert_array_equal(drawn(image), np.full((8, 8, 3), 120, np.uint8))  # was clipped white


# -- NaN and infinite values ------------------------------------------------------------------
def test_a_map_with_nan_has_no_grid_ratio_and_its_spectrum_panels_say_why_they_are_empty():
    """One NaN pixel made every spectrum bin NaN: periodic_peak_ratio read that as 1.0 ("no
    grid"), compare_regions titled the empty spectrum "8x8 peaks x1.0" and plot_noiseprint's
    spectrum panel was blank under its plain title."""
    from trufor_lab.viz.noiseprint import compare_regions, periodic_peak_ratio, plot_noiseprint, region_stats

    grid = np.tile(np.r_[3.0, np.zeros(7)], (128, 16))  # an 8-periodic pattern: peaks at 1/8
    grid += np.random.default_rng(3).standard_normal(grid.shape)
    assert periodic_peak_ratio(grid) > 10
    grid[5, 5] = np.nan
    assert np.isnan(periodic_peak_ratio(grid)) and np.isnan(region_stats(grid, (0, 0, 64, 64))["grid_peak_ratio"])
    assert plot_noiseprint(grid).axes[2].get_title() == "log10 power spectrum: none, 1 NaN/inf pixel"
    titles = [ax.get_title() for ax in compare_regions(grid, (0, 0, 64, 64), (64, 64, 128, 128)).axes]
    assert "A: spectrum: none, 1 NaN/inf pixel" in titles
    assert any(t.startswith("B: spectrum (8x8 peaks x") for t in titles)


def test_activation_histograms_leave_out_nan_and_infinite_values_and_say_so():
    """An infinite activation raised numpy's 'supplied range of [1.0, inf] is not finite'; NaN
    ones were dropped unsaid."""
    values = np.r_[np.linspace(-1, 1, 50), np.inf, np.nan, np.nan]
    fig = F.plot_histograms({"stage1": values, "empty": np.full(4, np.nan)})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["stage1 (3 NaN/inf left out)", "empty (4 NaN/inf left out)"]
    assert F.plot_histograms(np.linspace(0, 1, 10)).axes[0].get_legend() is None  # one unnamed tensor


def test_an_attribution_with_infinite_values_keeps_a_finite_scale():
    """More than 0.5 % infinite values made the colour limit infinite (every finite pixel drawn as
    'none', the display map all 0)."""
    from trufor_lab.interpret.attribution import Attribution

    m = np.random.default_rng(4).uniform(0.1, 1.0, (32, 32))
    m[:2, :] = np.inf
    a = Attribution(image=np.zeros((32, 32, 3), np.uint8), map=m, method="saliency", target="score")
    finite = m[np.isfinite(m)]
    im = a.plot().axes[0].images[1]
    assert im.get_clim() == (0, np.percentile(finite, 99.5))
    assert a.display_map()[5:].max() == 1.0 and a.display_map()[5:].min() > 0.05


def test_an_attribution_shows_its_nan_pixels():
    """NaN pixels of an attribution map were transparent: the bare image, read as 'none'."""
    from trufor_lab.interpret.attribution import Attribution

    m = np.random.default_rng(4).uniform(-1.0, 1.0, (32, 32))
    m[5, 5] = np.nan
    im = Attribution(image=np.zeros((32, 32, 3), np.uint8), map=m, method="ig", target="score").plot().axes[0]
    assert tuple(im.images[1].cmap.get_bad()) == matplotlib.colors.to_rgba(F.BAD_COLOR)


def test_a_compared_noiseprint_shows_its_nan_pixels(array_result):
    """The casebook comparison drew a Noiseprint++ panel's NaN pixels transparent (white on the
    page, read as bright noise); plot_result draws them in BAD_COLOR, so does this panel now."""
    from trufor_lab.casebook.compare import Comparison

    noise = np.random.default_rng(5).standard_normal((16, 16)).astype(np.float32)
    noise[3, 3] = np.nan
    r = array_result(16, 16, map=None, conf=None, score=None, noiseprint=noise)
    img = r.image
    c = Comparison("a.png", "b.png", img, img, img, np.zeros((16, 16)), result_a=r, result_b=r)
    ax = c.plot().axes[3]
    assert tuple(ax.images[0].cmap.get_bad()) == matplotlib.colors.to_rgba(F.BAD_COLOR)


def test_the_training_log_figure_averages_finite_losses_and_shows_every_logged_quantity(tmp_path):
    """A missing (or NaN) value counted as 0 in the running mean (a loss of 1 read as 0.75), and a
    quantity the first row lacked had no panel."""
    import json

    from trufor_lab.training.checkpoints import plot_log

    rows = [{"step": 1, "phase": "localization", "loss": 1.0}, {"step": 2, "phase": "localization"}]
    rows += [{"step": s, "phase": "localization", "loss": 1.0, "ce": 0.5} for s in (3, 4)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = plot_log(tmp_path, smooth=4)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[1].get_ydata(), [1.0, 1.0, 1.0])  # the loss panel's mean
    assert [ax.get_title() for ax in fig.axes] == ["localization: loss", "localization: ce"]


def test_the_training_log_figure_draws_the_mean_it_names_on_a_short_run(tmp_path):
    """Notebook 07 at CI's 8 steps: the running mean over min(20, 8) steps was one point, drawn as
    no line, while the legend named 'mean of 8'. Every labelled line is a line now."""
    import json

    from trufor_lab.training.checkpoints import plot_log

    rows = [{"step": s, "phase": "localization", "loss": 1.0 / s} for s in range(1, 9)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ax = plot_log(tmp_path).axes[0]
    labelled = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert len(labelled) == 2, list(labelled)
    assert all(np.isfinite(ln.get_ydata()).sum() >= 2 for ln in labelled.values()), labelled
    rows = rows[:3]  # too few steps for a mean: none named
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [ln.get_label() for ln in plot_log(tmp_path).axes[0].get_lines()] == ["per step"]


# -- feature pictures of full-resolution captures -----------------------------------------------
def test_feature_pictures_of_a_full_resolution_capture_are_drawn_averaged(noise):
    """The DnCNN levels are captured at full resolution: the feature grid, the PCA picture and the
    spatial statistics drew every pixel; they are averaged over blocks now, each colour scale
    from the whole channel."""
    from trufor_lab.interpret.features import pca_rgb, spatial_stats

    fmap = np.stack([noise, noise**2])
    grid = F.plot_feature_grid(fmap, channels=[1])
    assert drawn(grid.axes[0]).shape == SHOWN
    np.testing.assert_allclose(drawn(grid.axes[0]), F.display_mean(fmap[1], 3), rtol=1e-12)
    assert grid.axes[0].images[0].get_clim() == F.robust_limits(fmap[1])
    assert drawn(pca_rgb(fmap).plot().axes[0]).shape == SHOWN + (3,)
    stats = spatial_stats(fmap)
    assert [drawn(ax).shape for ax in stats.plot().axes if ax.images] == [SHOWN, SHOWN]
    branches = {"rgb.stage1.out": fmap, "noiseprint.stage1.out": fmap, "fusion.stage1.ffm": fmap}
    fig = F.plot_stage_branches(branches, 1, mode="channel", channel=1)
    assert fig.axes[0].images[0].get_clim() == F.robust_limits(fmap[1]) and drawn(fig.axes[0]).shape == SHOWN


# -- titles that say what is drawn ------------------------------------------------------------
def test_an_attribution_panel_title_stays_clear_of_the_next_panel():
    """Notebook 06 draws a region IG beside the map it explains: the IG panel's one-line title
    (method, target, baseline, delta, 'not converged') ran into the neighbouring panel's title."""
    from trufor_lab.interpret.attribution import Attribution

    image = np.zeros((96, 96, 3), np.uint8)
    a = Attribution(image, np.random.default_rng(0).standard_normal((96, 96)), "ig",
                    "mean map (region of 12.5% of the image)", baseline="blur (sigma 3)",
                    delta=-0.0047, target_value=0.1, baseline_value=0.102)  # fmt: skip
    assert "not converged" in a.title
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    a.plot(ax=axes[0])
    axes[1].imshow(image)
    axes[1].set_title("the localization map being explained", fontsize=9)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left, right = (ax.title.get_window_extent(renderer) for ax in axes)
    assert left.x1 < right.x0, (left, right)
    shown = axes[0].get_title()  # every part of the title is still said
    assert all(
        p in shown for p in ("ig", "region of 12.5%", "baseline blur (sigma 3)", "delta -0.0047", "not converged")
    )
    plt.close(fig)


def test_channel_stats_say_when_only_the_first_channels_are_drawn():
    """The title gave every channel's count while the bars stopped at max_channels."""
    from trufor_lab.interpret.features import channel_stats

    stats = channel_stats(np.random.default_rng(6).standard_normal((40, 4, 4)))
    assert F.plot_channel_stats(stats, max_channels=16).axes[0].get_title() == "40 channels (the first 16 shown)"
    assert F.plot_channel_stats(stats).axes[0].get_title() == "40 channels"


def test_modality_shares_that_are_nan_are_said_not_drawn_as_an_empty_row():
    """An attribution with nothing to explain has NaN shares: its bar row was empty, unsaid, and
    its panels were titled 'nan% of |attr|'."""
    from trufor_lab.interpret.attribution import Attribution

    nan = {"rgb": float("nan"), "noiseprint": float("nan")}
    maps = {"rgb": np.zeros((8, 8)), "noiseprint": np.zeros((8, 8))}
    a = Attribution(
        np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8)), "modality", "score", extras={"shares": nan, "maps": maps}
    )
    fig = a.plot_modalities()
    assert [ax.get_title() for ax in fig.axes[1:3]] == ["rgb: no share", "noiseprint: no share"]
    assert [t.get_text() for t in fig.axes[3].texts] == ["no shares (see .notes)"]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 5), (37, 91), (64, 4100)])
@pytest.mark.parametrize("step", [2, 3, 7, 50])
def test_display_mean_is_the_mean_of_each_block_partial_ones_included(shape, step):
    """Guard for the block means every large figure draws: each block's mean (the last, partial
    blocks over the pixels they hold), NaN kept, integers rounded in their dtype, booleans as the
    fraction set."""
    rng = np.random.default_rng(7)
    h, w = shape
    hb, wb = -(-h // step), -(-w // step)

    def reference(a):
        padded = np.full((hb * step, wb * step) + a.shape[2:], np.nan)
        padded[:h, :w] = a
        blocks = padded.reshape(hb, step, wb, step, *a.shape[2:])  # the padding (NaN) is no pixel
        return np.nansum(blocks, axis=(1, 3)) / (~np.isnan(blocks)).sum(axis=(1, 3))

    noise = rng.standard_normal(shape)
    np.testing.assert_allclose(F.display_mean(noise, step), reference(noise), rtol=1e-12, atol=1e-14)
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    got = F.display_mean(rgb, step)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.rint(reference(rgb.astype(float))).astype(np.uint8))
    mask = rng.random(shape) > 0.5
    np.testing.assert_allclose(F.display_mean(mask, step), reference(mask.astype(float)), rtol=1e-12)
    if noise.size > 1:
        noise[0, -1] = np.nan
        got = F.display_mean(noise, step)
        assert np.isnan(got[0, -1]) and np.isfinite(got[1:]).all() and np.isfinite(got[0, :-1]).all()


def test_a_picture_with_an_alpha_channel_is_drawn_as_analysed():
    """The analysis drops a fourth (alpha) channel; the figure drew it, so a transparent picture
    showed the page instead of the pixels the model saw."""
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red, fully transparent
    fig, ax = plt.subplots()
    F.show_image(ax, rgba)
    np.testing.assert_array_equal(drawn(ax), rgba[..., :3])
