"""Viewers driven programmatically: controls change the picture, the selector switches images,
FeatureExplorer never re-runs the model, and display falls back to static PNGs."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from trufor_lab.inference.result import Result  # noqa: E402
from trufor_lab.widgets.compare_viewer import CompareViewer  # noqa: E402
from trufor_lab.widgets.feature_explorer import FeatureExplorer  # noqa: E402
from trufor_lab.widgets.noiseprint_viewer import NoiseprintViewer  # noqa: E402
from trufor_lab.widgets.result_viewer import ResultViewer  # noqa: E402

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _result(img: np.ndarray, name: str, seed: int) -> Result:
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    heat = np.clip(np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / (2 * (h / 5) ** 2)), 0, 1).astype(np.float32)
    conf = np.clip(0.3 + 0.7 * xx / w, 0, 1).astype(np.float32)
    npm = rng.standard_normal((h, w)).astype(np.float32)
    return Result(image=img, noiseprint=npm, map=heat, conf=conf, score=0.3 + 0.2 * seed, name=name)


@pytest.fixture(scope="module")
def results(tampered2):
    return [_result(tampered2[40:136, 40:136].copy(), "a", 1), _result(tampered2[100:164, 60:140].copy(), "b", 2)]


def test_result_viewer_controls_redraw(results):
    v = ResultViewer(results, masks=[results[0].map > 0.5, None])
    png0 = v.png
    assert png0.startswith(b"\x89PNG")
    v.controls["opacity"].value = 0.95
    assert v.state["opacity"] == 0.95 and v.png != png0
    png1 = v.png
    v.controls["threshold"].value = 0.6
    assert v.png != png1
    png2 = v.png
    v.controls["conf_min"].value = 0.8
    assert v.png != png2
    png3 = v.png
    v.controls["cmap"].value = "viridis"
    assert v.png != png3
    v.set(zoom=(10, 20, 50, 70))
    assert (v.controls["zoom_y"].value, v.controls["zoom_x"].value) == ((10, 50), (20, 70))
    v.controls["zoom_x"].value = (0, 96)
    assert v.state["zoom"] == (10, 0, 50, 96)


def test_result_viewer_selector_switches_image(results):
    v = ResultViewer(results)
    first = v.png
    v.controls["index"].value = 1
    assert v.result is results[1] and v.png != first
    assert v.state["zoom"] == (0, 0, 64, 80)  # reset to the new image
    assert v.controls["zoom_y"].max == 64 and v.controls["zoom_x"].max == 80
    with pytest.raises(KeyError, match="opacity"):
        v.set(opacty=0.3)
    with pytest.raises(IndexError):
        v.set(index=5)


def test_compare_viewer_linked_controls(results):
    same = [results[0], _result(results[0].image, "other", 3)]
    v = CompareViewer(same, ["full", "ablated"])
    png0 = v.png
    v.controls["opacity"].value = 0.2
    fig = v.render()
    overlays = [ax.images[1] for ax in fig.axes]
    assert len(overlays) == 2 and all(im.get_alpha() == 0.2 for im in overlays)
    assert v.png != png0
    v.controls["panel"].value = "map"
    fig = v.render()
    assert all(ax.images[0].get_clim() == (0, 1) for ax in fig.axes)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["full", "ablated"]


def test_compare_viewer_shows_the_same_part_of_results_of_other_sizes(results):
    """Results of different sizes were all cropped to the smallest one's box in their own pixels:
    a 96x96 result beside its 48x48 copy showed its top-left quarter only. The zoom now means the
    same part of each picture, and the title says that the result has another size."""
    big = results[0]
    small = Result(
        image=big.image[::2, ::2],
        noiseprint=big.noiseprint[::2, ::2],
        map=big.map[::2, ::2],
        conf=big.conf[::2, ::2],
        score=big.score,
        name="half",
    )
    v = CompareViewer([big, small], ["full", "half"])
    fig = v.render()
    assert [ax.images[0].get_array().shape[:2] for ax in fig.axes] == [(96, 96), (48, 48)]
    assert "48x48, zoom scaled" in fig.axes[1].get_title()
    v.set(zoom=(48, 0, 96, 48))  # the bottom-left quarter of each
    shown = [ax.images[1].get_array() for ax in v.render().axes]
    assert shown[0].shape == (48, 48) and shown[1].shape == (24, 24)
    np.testing.assert_array_equal(np.asarray(shown[1]), big.map[48:96:2, 0:48:2])
    no_map = Result(image=big.image, noiseprint=big.noiseprint, map=None, conf=None, score=None, name="np")
    assert "Noiseprint++: no map" in CompareViewer([big, no_map]).render().axes[1].get_title()


def test_one_pixel_wide_pictures_draw(results, tampered2):
    """A contour needs 2x2 values: a 1-pixel-wide result with a mask, or a threshold on one row,
    raised in matplotlib; a 64x1 Noiseprint++ map was squeezed to 1-D and refused."""
    from trufor_lab.viz.figures import plot_result
    from trufor_lab.viz.noiseprint import plot_noiseprint

    thin = _result(tampered2[:64, :1].copy(), "thin", 1)
    mask = np.zeros((64, 1), bool)
    mask[10:30] = True
    assert plot_result(thin, mask=mask).axes
    v = ResultViewer([thin], masks=[mask])
    v.set(threshold=0.5)
    assert v.png.startswith(b"\x89PNG")
    assert plot_noiseprint(thin.noiseprint).axes
    nv = NoiseprintViewer(thin)
    assert nv.png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="too small to compare"):
        nv.set(mode="compare")


def test_noiseprint_viewer_regions(results):
    v = NoiseprintViewer(results[0])
    overview = v.png
    v.controls["mode"].value = "compare"
    compare = v.png
    assert compare != overview and v.state["mode"] == "compare"
    v.controls["region_b_y"].value = (0, 40)
    assert v.state["region_b"][0::2] == (0, 40) and v.png != compare
    with pytest.raises(ValueError):
        v.set(region_a=(0, 0, 1, 1))


def test_feature_explorer_runs_the_model_once(recipe_model, small_image):
    calls = []
    handle = recipe_model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        fe = FeatureExplorer(recipe_model, small_image[:64, :64], grid_size=4)
        assert len(calls) == 1
        c = fe.controls
        pngs = [fe.png]  # PCA of rgb.stage1.out
        c["mode"].value = "channel"
        pngs.append(fe.png)
        c["channel"].value = 7
        pngs.append(fe.png)
        c["branch"].value = "noiseprint"
        c["stage"].value = 3
        assert fe.name == "noiseprint.stage3.out" and c["channel"].max == 319
        c["layer"].value = "block5"
        pngs.append(fe.png)
        c["mode"].value = "grid"
        pngs.append(fe.png)
        c["side_by_side"].value = True
        pngs.append(fe.png)
        c["branch"].value = "decoder"
        assert "anomaly" in c["layer"].options and fe.name == "decoder.anomaly.c3"
        assert len(set(pngs)) == len(pngs)  # every change drew something new
        assert len(calls) == 1  # ... without running the model again
    finally:
        handle.remove()


def test_static_fallback_without_ipywidgets(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    v = ResultViewer(results)
    assert v.widget is None and v.controls == {}
    bundle = v._repr_mimebundle_()
    assert bundle["image/png"].startswith(b"\x89PNG") and WIDGET_MIME not in bundle
    assert v._repr_html_().startswith('<img src="data:image/png;base64,')
    before = v.png
    assert v.set(threshold=0.5) != before


def test_display_bundle_and_never_raise(results):
    v = ResultViewer(results[0])
    bundle = v._repr_mimebundle_()
    assert WIDGET_MIME in bundle and "image/png" in bundle

    class Broken(ResultViewer):
        def render(self):
            raise RuntimeError("boom")

    b = Broken(results[0])
    assert "could not render" in b._repr_html_()
    assert b._repr_png_() is None and "text/plain" in b._repr_mimebundle_()


def test_compare_viewer_refuses_a_turned_result_beside_a_stored_one(array_result):
    """[r, r.as_shown()] was drawn with one zoom box for both: the columns showed different places."""
    r = array_result(40, 60, exif_orientation=6)
    with pytest.raises(ValueError, match=r"\.as_shown\(\) on all"):
        CompareViewer([r, r.as_shown()], ["stored", "shown"])
    both = CompareViewer([r.as_shown(), r.as_shown()]).render()
    assert [ax.images[0].get_array().shape[:2] for ax in both.axes] == [(60, 40), (60, 40)]
    plain = array_result(60, 40)  # no turn: its stored grid is its shown grid
    assert CompareViewer([r.as_shown(), plain]).png.startswith(b"\x89PNG")


def test_result_viewer_refuses_a_mask_on_another_grid(array_result):
    r = array_result(40, 60, exif_orientation=6).as_shown()
    with pytest.raises(ValueError, match="turned as viewers show the file"):
        ResultViewer(r, masks=[np.zeros((40, 60), bool)])
    ResultViewer(r, masks=[np.zeros((60, 40), bool)]).render()


def test_viewers_draw_a_result_without_confidence(array_result):
    """conf=None with a map raised TypeError ('NoneType' object is not subscriptable)."""
    r = array_result(30, 40, conf=None)
    v = ResultViewer(r, conf_min=0.5)
    fig = v.render()
    assert fig.axes[2].get_title() == "Confidence" and not fig.axes[2].images
    assert "no confidence map" in [t.get_text() for t in fig.axes[2].texts]
    for panel in CompareViewer.PANELS:
        fig = CompareViewer([r], panel=panel, conf_min=0.5).render()
        assert fig.axes[0].images or fig.axes[0].texts


def test_compare_viewer_noiseprint_columns_share_one_scale(array_result):
    """Each column was scaled to itself: a Noiseprint++ scaled by 1e-4 looked identical."""
    full = array_result(30, 40)
    weak = array_result(30, 40, noiseprint=full.noiseprint * 1e-4)
    fig = CompareViewer([full, weak], ["full", "weak"], panel="noiseprint").render()
    a, b = (ax.images[0] for ax in fig.axes)
    assert a.get_clim() == b.get_clim()
    assert np.ptp(b.to_rgba(b.get_array())[..., 0]) < 0.05 < np.ptp(a.to_rgba(a.get_array())[..., 0])
    assert fig._suptitle.get_text() == "Noiseprint++"
    classic = array_result(30, 40, captures={"shown": "ELA"})
    assert CompareViewer([classic], panel="noiseprint").render()._suptitle.get_text() == "ELA"


def test_viewers_draw_grey_images_in_grey_and_nan_in_a_visible_colour(array_result):
    conf = np.ones((30, 40), np.float32)
    conf[:5] = np.nan
    r = array_result(30, 40, image=np.full((30, 40), 20, np.uint8), conf=conf)
    fig = ResultViewer(r).render()
    img = fig.axes[0].images[0]
    assert img.get_cmap().name.startswith("gray") and img.get_clim() == (0, 255)
    c = fig.axes[2].images[0]
    assert c.get_cmap().get_bad()[3] == 1  # opaque, not transparent
    fig = CompareViewer([r], panel="conf").render()
    assert fig.axes[0].images[0].get_cmap().get_bad()[3] == 1


def _magenta_pixels(fig, ax) -> int:
    """Pixels drawn in BAD_COLOR (magenta) inside ``ax``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    x0, y0, x1, y1 = (int(round(v)) for v in ax.get_window_extent().extents)
    h = rgba.shape[0]
    box = rgba[h - y1 : h - y0, x0:x1, :3].astype(int)
    return int(((box[..., 0] > 200) & (box[..., 1] < 60) & (box[..., 2] > 200)).sum())


def test_nan_map_pixels_are_drawn_visibly_and_white_confidence_keeps_a_frame(array_result):
    """The viewers drew NaN map pixels transparent (white, which reads as 0.5 on RdBu_r) while
    plot_result drew them magenta; a confidence of 1 everywhere was a white panel on a white
    page, with nothing to show where the picture was."""
    heat = np.full((30, 40), 0.2, np.float32)
    heat[10:20, 10:20] = np.nan
    r = array_result(30, 40, map=heat, conf=np.ones((30, 40), np.float32))
    fig = ResultViewer(r).render()
    assert _magenta_pixels(fig, fig.axes[1]) > 0
    fig = CompareViewer([r], panel="map").render()
    assert _magenta_pixels(fig, fig.axes[0]) > 0
    fig = ResultViewer(r, threshold=0.5).render()  # hidden pixels stay transparent
    assert _magenta_pixels(fig, fig.axes[1]) > 0
    fig = r.plot()
    for ax in [a for a in fig.axes if a.get_title() in ("Confidence", "Localization map", "Image")]:
        assert ax.axison and all(s.get_visible() for s in ax.spines.values()), ax.get_title()
        assert ax.spines["top"].get_edgecolor()[:3] != (1.0, 1.0, 1.0)
    conf_ax = ResultViewer(r).render().axes[2]
    assert conf_ax.axison and not conf_ax.get_xticks().size


def test_viewers_stride_large_pictures_down_alike(array_result):
    """A 48 MP result took 17 s and 6.5 GB to draw at full size; panels are now strided to 2048."""
    r = array_result(3000, 2500)
    mask = np.zeros((3000, 2500), bool)
    mask[1000:2000, 500:1500] = True
    fig = ResultViewer(r, masks=[mask], threshold=0.3).render()
    shapes = [im.get_array().shape[:2] for ax in fig.axes for im in ax.images]
    assert shapes and set(shapes) == {(1500, 1250)}
    v = ResultViewer(r)
    v.set(zoom=(0, 0, 1000, 800))  # a zoom that fits is drawn at full resolution
    assert v.render().axes[0].images[0].get_array().shape[:2] == (1000, 800)
    fig = CompareViewer([r], panel="noiseprint").render()
    assert fig.axes[0].images[0].get_array().shape == (1500, 1250)


def test_feature_explorer_refuses_misspelled_layers_and_says_what_was_subsampled(recipe_model, small_image):
    """User-given layers were filtered like the defaults: a misspelled one silently dropped, and
    all misspelled captured every layer; subsampled maps did not say so."""
    img = small_image[:64, :64]
    with pytest.raises(KeyError, match="did you mean 'fusion.stage1.ffm'"):
        FeatureExplorer(recipe_model, img, layers=["fusion.stage1.fmm", "rgb.stage1.out"])
    with pytest.raises(KeyError, match="rgb.stage1.outt"):
        FeatureExplorer(recipe_model, img, layers=["rgb.stage1.outt"])
    with pytest.raises(ValueError, match="detection.stats"):
        FeatureExplorer(recipe_model, img, layers=["rgb.stage1.out", "detection.stats"])
    fe = FeatureExplorer(recipe_model, img, layers=["rgb.stage1.*", "fusion.stage1.ffm"], max_elements=4000)
    assert set(fe.captures) == {f"rgb.stage1.{n}" for n in ("patch_embed", "block0", "block1", "block2", "out")} | {
        "fusion.stage1.ffm"
    }  # the glob's attention maps are left out, as documented
    assert fe.subsampled["rgb.stage1.out"] == "spatially subsampled by stride 3"
    assert "stride 3" in fe.render().axes[0].get_title()
    fe.set(mode="grid")
    assert "stride 3" in fe.render()._suptitle.get_text()


def test_a_name_with_dollar_signs_is_drawn_as_written(results):
    """'cost_$5_vs_$6.jpg': matplotlib read the two dollars as mathtext and the viewer raised
    ValueError (in a notebook: '(could not render)')."""
    import dataclasses

    v = ResultViewer(dataclasses.replace(results[0], name="cost_$5_vs_$6.jpg"))
    assert v.png.startswith(b"\x89PNG")
    assert "could not render" not in v._repr_html_()


# -- review s18: state and controls in step, viewers that say why ------------------------------


def _pixel(fig, ax, fy: float, fx: float) -> np.ndarray:
    """The RGB (0..1) drawn at fraction (fy, fx) of ``ax``'s box, from the top left."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    x0, y0, x1, y1 = ax.get_window_extent().extents
    h = rgba.shape[0]
    return rgba[int(h - (y1 - fy * (y1 - y0))), int(x0 + fx * (x1 - x0)), :3] / 255.0


@pytest.mark.parametrize("cls", [ResultViewer, CompareViewer])
def test_a_colormap_set_in_code_keeps_state_and_dropdown_together(array_result, cls):
    """set(cmap="plasma") changed the state, then the dropdown (RdBu_r ... gray) refused the value:
    TraitError, state 'plasma' while the control showed RdBu_r, and every later set() raised."""
    r = array_result(30, 40)
    v = cls(r) if cls is ResultViewer else cls([r])
    v.widget  # noqa: B018
    before = v.redraw_count
    v.set(cmap="plasma")
    assert v.state["cmap"] == v.controls["cmap"].value == "plasma" and v.redraw_count == before + 1
    v.set(opacity=0.9)
    v.controls["cmap"].value = "viridis"
    assert v.state["cmap"] == "viridis" and v.state["opacity"] == 0.9
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        v.set(cmap="nope")
    assert v.state["cmap"] == v.controls["cmap"].value == "viridis"


def test_a_failed_change_leaves_state_and_controls_as_they_were(array_result):
    """A change that failed after the state was updated (syncing the controls, drawing) left the
    new state behind with the old picture."""
    v = ResultViewer(array_result(30, 40))
    v.widget  # noqa: B018
    old = v.png

    def broken():
        raise RuntimeError("boom")

    v.render = broken
    with pytest.raises(RuntimeError, match="boom"):
        v.set(opacity=0.9)
    assert v.state["opacity"] == v.controls["opacity"].value == 0.5
    v.controls["threshold"].value = 0.4  # a control's callback never raises: the control goes back
    assert v.state["threshold"] == v.controls["threshold"].value == 0.0
    assert "boom" in v._message.value and v.png == old


def test_viewers_refuse_a_bad_colormap_or_mask_at_construction(array_result):
    """ResultViewer(r, cmap="Rdbu") or an (H, W, 3) mask (np.array of a mask PNG) were accepted;
    the viewer then showed only its repr text, no picture and no reason."""
    r = array_result(30, 40)
    with pytest.raises(ValueError, match="unknown colormap 'Rdbu'; did you mean 'RdBu'"):
        ResultViewer(r, cmap="Rdbu")
    with pytest.raises(ValueError, match="unknown colormap"):
        CompareViewer([r], cmap="rdbu_x")
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[5:15, 5:20] = 255
    with pytest.raises(ValueError, match=r"mask must be 2-D.*\(30, 40, 3\).*read_mask"):
        ResultViewer(r, masks=[rgb])
    with pytest.raises(ValueError, match="boolean, 0/1 or 0/255"):
        ResultViewer(r, masks=[np.linspace(0, 1, 1200).reshape(30, 40)])
    v = ResultViewer(r, masks=[rgb[..., 0]])  # 0/255 is a mask: drawn as True/False
    assert v.masks[0].dtype == bool and v.masks[0].sum() == 150
    assert v.png.startswith(b"\x89PNG")


def test_a_viewer_that_cannot_draw_says_why(array_result):
    """The static fallback swallowed the error: '(could not render)' and nothing else."""

    class Broken(ResultViewer):
        def render(self):
            raise RuntimeError("the colour table is gone\nsecond line")

    b = Broken(array_result(30, 40))
    assert "could not render: RuntimeError: the colour table is gone)" in b._repr_html_()
    bundle = b._repr_mimebundle_()
    assert "the colour table is gone" in bundle["text/plain"] and "image/png" not in bundle


def test_a_closed_range_slider_shows_the_smallest_range(array_result):
    """Dragging a range slider closed raised ValueError in the callback: the state stayed, the
    control showed (10, 10) and the picture did not follow."""
    v = ResultViewer(array_result(64, 80))
    v.controls["zoom_y"].value = (10, 10)
    assert v.state["zoom"] == (10, 0, 11, 80) and v.controls["zoom_y"].value == (10, 11)
    v.controls["zoom_x"].value = (80, 80)
    assert v.state["zoom"] == (10, 79, 11, 80) and v.controls["zoom_x"].value == (79, 80)
    n = NoiseprintViewer(array_result(40, 60))
    n.controls["region_a_x"].value = (5, 6)
    assert n.state["region_a"][1::2] == (5, 7) and n.controls["region_a_x"].value == (5, 7)
    n.set(variance_size=101)  # beyond the slider's end: the slider follows
    assert n.controls["variance_size"].value == 101


def test_an_attribution_is_shown_as_its_to_result(array_result):
    """CompareViewer([a, a]) drew the signed raw attribution on the fixed [0, 1] scale titled
    Noiseprint++; ResultViewer(a) raised AttributeError 'weights'."""
    from trufor_lab.interpret.attribution import Attribution

    rng = np.random.default_rng(0)
    a = Attribution(
        image=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        map=rng.standard_normal((32, 32)) * 1e-3,
        method="ig",
        target="score",
        name="x.png",
    )
    fig = CompareViewer([a, a], panel="map").render()
    np.testing.assert_array_equal(np.asarray(fig.axes[0].images[0].get_array()), a.display_map())
    assert CompareViewer([a], panel="noiseprint").render()._suptitle.get_text() == "Attribution (raw)"
    fig = ResultViewer(a).render()
    assert fig.axes[1].get_title() == "Attribution (0.5 = none)"
    assert NoiseprintViewer(a).render().axes[0].get_title() == "Attribution (raw)"
    with pytest.raises(TypeError, match="item 0 is a dict, not a Result"):
        ResultViewer({"map": a.map})


def test_hidden_map_pixels_are_drawn_in_a_neutral_colour_and_named(array_result):
    """Pixels hidden by the threshold were transparent: white, the colour of a score of 0.5."""
    heat = np.zeros((64, 96), np.float32)
    heat[:, 32:64], heat[:, 64:] = 0.5, 0.9
    r = array_result(64, 96, map=heat)
    fig = CompareViewer([r], panel="map", threshold=0.3).render()
    ax = fig.axes[0]
    hidden, half = _pixel(fig, ax, 0.5, 1 / 6), _pixel(fig, ax, 0.5, 0.5)
    assert np.abs(hidden - half).max() > 0.3 and np.abs(hidden - 1).max() > 0.3
    assert "hidden: map < 0.30" in fig._suptitle.get_text()
    conf = np.ones((64, 96), np.float32)
    conf[:, :32] = 0.1
    fig = ResultViewer(array_result(64, 96, map=heat + 0.5 * (heat == 0), conf=conf), conf_min=0.5).render()
    ax = fig.axes[1]
    assert np.abs(_pixel(fig, ax, 0.5, 1 / 6) - _pixel(fig, ax, 0.5, 0.5)).max() > 0.3
    assert "hidden: confidence < 0.50" in ax.get_title()


def test_the_noiseprint_viewer_names_a_classic_detectors_output(array_result):
    """A classic detector's raw output was titled Noiseprint++."""
    r = array_result(40, 60, captures={"shown": "ela (raw output)"})
    v = NoiseprintViewer(r)
    assert v.render().axes[0].get_title() == "ela (raw output)"
    v.set(mode="compare")
    assert "ela (raw output)" in [ax.get_title() for ax in v.render().axes]
    assert NoiseprintViewer(array_result(40, 60)).render().axes[0].get_title() == "Noiseprint++"


def test_viewers_refuse_a_map_off_the_image_grid(array_result):
    """A map of another shape than its image (e.g. transposed) was drawn misaligned."""
    r = array_result(40, 60)
    off = array_result(40, 60, map=r.map.T.copy())
    for make in (lambda: ResultViewer(off), lambda: CompareViewer([r, off]), lambda: off.plot()):
        with pytest.raises(ValueError, match=r"map is \(60, 40\), the image \(40, 60\).*misaligned"):
            make()


def test_a_mask_drawn_on_the_turned_picture_gets_the_as_shown_hint(array_result):
    """The hint to use .as_shown() came only for a result already turned; the common case is a
    mask drawn on the picture as shown beside a result left on the stored grid."""
    r = array_result(40, 60, exif_orientation=6)
    with pytest.raises(ValueError, match=r"stored grid.*use result\.as_shown\(\)"):
        ResultViewer(r, masks=[np.zeros((60, 40), bool)])
    assert ResultViewer(r.as_shown(), masks=[np.zeros((60, 40), bool)]).png.startswith(b"\x89PNG")


def test_a_colormap_object_and_a_one_channel_mask_are_taken():
    """The colormap and mask checks added this session refused what was drawn before: a
    matplotlib Colormap object ('unknown colormap <ListedColormap ...>') and an (H, W, 1) 0/255
    mask ('a picture with colour channels')."""
    import matplotlib

    from trufor_lab.inference.result import Result
    from trufor_lab.widgets.compare_viewer import CompareViewer
    from trufor_lab.widgets.result_viewer import ResultViewer

    g = np.random.default_rng(0)
    r = Result(
        image=(g.random((40, 60, 3)) * 255).astype(np.uint8),
        noiseprint=g.standard_normal((40, 60)).astype(np.float32),
        map=g.random((40, 60)).astype(np.float32),
        conf=np.ones((40, 60), np.float32),
        score=0.5,
        name="a.png",
    )
    cm = matplotlib.colormaps["viridis"].resampled(8)
    mask = np.zeros((40, 60, 1), np.uint8)
    mask[5:20, 5:30] = 255
    v = ResultViewer(r, mask, cmap=cm)
    assert v.widget is not None and v.state["cmap"] is cm
    v.set(cmap="magma")
    v.set(cmap=cm)
    assert v.state["cmap"] is cm
    c = CompareViewer([r, r], cmap=cm)
    assert c.widget is not None


def test_the_noiseprint_viewer_compares_regions_in_the_window_it_shows(array_result):
    """Compare mode drew every window above 15 as 15 while state and slider said 31 or 63."""
    from trufor_lab.viz.noiseprint import local_variance

    v = NoiseprintViewer(array_result(96, 96), mode="compare")
    pictures = {size: v.set(variance_size=size) for size in (15, 31, 63)}
    assert len(set(pictures.values())) == 3
    fig = v.render()
    y0, x0, y1, x1 = v.state["region_a"]
    panel = next(ax for ax in fig.axes if ax.get_title() == "A: local variance (63x63)")
    want = local_variance(v.noiseprint[y0:y1, x0:x1], 63)
    np.testing.assert_allclose(panel.images[0].get_array(), want)


def test_the_result_viewer_outlines_the_mask_of_a_noiseprint_only_result(array_result):
    """Without a map the image panel dropped the ground truth that Result.plot shows."""
    r = array_result(48, 80, map=None, conf=None, score=None)
    mask = np.zeros((48, 80), bool)
    mask[10:30, 20:60] = True
    fig = ResultViewer(r, masks=[mask]).render()
    image_ax = fig.axes[0]
    assert len(image_ax.collections) == 1 and "ground truth" in image_ax.get_title()
    assert "Ground truth" in [ax.get_title() for ax in r.plot(mask=mask).axes]
    assert ResultViewer(r).render().axes[0].get_title() == "Image"
    empty = ResultViewer(r, masks=[np.zeros((48, 80), bool)]).render().axes[0]
    assert "nothing forged" in empty.get_title() and not empty.collections


@pytest.mark.parametrize("cls", [ResultViewer, CompareViewer])
@pytest.mark.parametrize(
    "key, value", [("opacity", float("nan")), ("opacity", 7), ("threshold", -3), ("conf_min", "x")]
)
def test_viewers_refuse_options_outside_0_1_naming_them(array_result, cls, key, value):
    """NaN opacity became 0 (an invisible overlay), 7 became 1 and -3 became 0, silently."""
    r = array_result(30, 40)
    with pytest.raises(ValueError, match=rf"^{key} must be a number in \[0, 1\], got {value!r}$"):
        cls([r], **{key: value})
    v = cls([r])
    with pytest.raises(ValueError, match=key):
        v.set(**{key: value})
    for ok in (0, 0.35, 1):  # what the sliders give is taken as it is
        v.controls[key].value = ok
        assert v.state[key] == ok


def test_the_noiseprint_viewer_refuses_a_window_under_one(array_result):
    v = NoiseprintViewer(array_result(40, 60))
    for bad in (0, -5, float("nan")):
        with pytest.raises(ValueError, match=r"variance_size must be a whole number of pixels >= 1"):
            v.set(variance_size=bad)
    assert v.set(variance_size=2) and v.state["variance_size"] == 3  # the slider's least, shown in state


def test_viewers_draw_a_large_noiseprint_averaged_on_the_maps_own_scale(array_result):
    """Both viewers drew Noiseprint++ over 2048 px as ``a[::2, ::2]``: white noise at its whole
    contrast, twice what the map shows on screen. It is averaged over 2x2 blocks now; the grey
    scale still comes from the map's own values (the averaged ones spread half as much)."""
    from trufor_lab.viz.figures import display_mean, robust_limits

    r = array_result(2100, 300, map=None, conf=None, score=None)
    npm = ResultViewer(r).render().axes[1].images[0]
    np.testing.assert_allclose(npm.get_array(), display_mean(r.noiseprint, 2), rtol=1e-12)
    assert npm.get_clim() == robust_limits(r.noiseprint[::2, ::2])
    assert 0.4 < np.std(npm.get_array()) / np.std(r.noiseprint) < 0.6  # a stride gave 1.0
    col = CompareViewer([r], panel="noiseprint").render().axes[0].images[0]
    np.testing.assert_allclose(col.get_array(), display_mean(r.noiseprint, 2), rtol=1e-12)
    assert col.get_clim() == robust_limits(r.noiseprint[::2, ::2])


def test_compare_viewer_says_whose_weights_made_the_scores(array_result):
    """CompareViewer's columns read "score 0.012" with nothing saying the demo model made it,
    while ResultViewer and Result.plot say "(demo weights, not the official TruFor)"."""
    import dataclasses

    from trufor_lab.inference.weights import WeightsInfo

    r = array_result(30, 40)
    demo = dataclasses.replace(r, weights=WeightsInfo("demo", "trufor_demo.pt", "0" * 64, True))
    official = dataclasses.replace(r, weights=WeightsInfo("official", "trufor.pth.tar", "0" * 64, True))
    custom = dataclasses.replace(r, weights=WeightsInfo("custom", "mine.pt", "0" * 64, False))
    title = CompareViewer([demo, official]).render()._suptitle.get_text()
    assert title.endswith("\nscores of demo weights, not the official TruFor"), title
    title = CompareViewer([custom, demo]).render()._suptitle.get_text()
    assert "scores of demo weights, not the official TruFor and unverified checkpoint" in title
    assert "scores of" not in CompareViewer([official, official]).render()._suptitle.get_text()
