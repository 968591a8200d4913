"""Viewers as a notebook uses them over time: closing one frees it, the gallery's dropdown says the
case shown, the explorer refuses a view it cannot draw in one line, and a large picture's maps are
drawn as block means, not strided."""

from __future__ import annotations

import gc
import weakref

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

ipywidgets = pytest.importorskip("ipywidgets")

from trufor_lab.lab.evaluate import Evaluation  # noqa: E402
from trufor_lab.widgets.compare_viewer import CompareViewer  # noqa: E402
from trufor_lab.widgets.feature_explorer import FeatureExplorer  # noqa: E402
from trufor_lab.widgets.gallery import FailureGallery  # noqa: E402
from trufor_lab.widgets.noiseprint_viewer import NoiseprintViewer  # noqa: E402
from trufor_lab.widgets.result_viewer import ResultViewer  # noqa: E402


def _tree(widget) -> list:
    """``widget`` and every widget inside it."""
    return [widget, *(w for c in getattr(widget, "children", ()) for w in _tree(c))]


@pytest.mark.parametrize("how", ["viewer.close()", "widget.close()"])
@pytest.mark.parametrize("kind", ["result", "compare", "noiseprint", "gallery"])
def test_a_closed_viewer_closes_its_controls_and_is_freed(array_result, kind, how, failure_rows):
    """Closing the box (or Widget.close_all of the box alone) left every control open in
    ipywidgets' registry, their callbacks holding the viewer and its arrays (a 12 MP result:
    hundreds of MB per viewer closed); a viewer had no close() at all."""
    r = array_result(40, 60)
    make = {
        "result": lambda: ResultViewer(r),
        "compare": lambda: CompareViewer([r, r]),
        "noiseprint": lambda: NoiseprintViewer(r),
        "gallery": lambda: FailureGallery(Evaluation(failure_rows(2)), k=2),
    }[kind]
    v = make()
    parts = _tree(v.widget)
    assert len(parts) > 3 and all(p.comm is not None for p in parts)
    v.close() if how == "viewer.close()" else v.widget.close()
    assert all(p.comm is None for p in parts)  # every control closed, not only the box
    ref = weakref.ref(v)
    del v, parts
    gc.collect()
    assert ref() is None


def test_a_viewer_shows_a_new_ui_after_close(array_result):
    v = ResultViewer(array_result(40, 60))
    old = v.widget
    v.close()
    assert v.widget is not old and v.widget.comm is not None
    v.controls["opacity"].value = 0.9  # the new controls drive the picture
    assert v.state["opacity"] == 0.9


def test_the_gallery_dropdown_follows_select_and_a_case_that_fails_is_said(array_result, failure_rows):
    """select(1) from code showed case 1 under a dropdown that still said case 0; a case that
    could not be drawn raised inside the dropdown's callback (lost in the log): the dropdown said
    the new case over the old picture."""
    rows = failure_rows(2)
    g = FailureGallery(Evaluation(rows), cases=[rows[0], {"id": "no path", "case": "fake", "reason": "x"}, rows[1]])
    dropdown = g.widget.children[0]
    g.select(2)
    assert dropdown.value == 2 and g.index == 2
    shown = g._image.value
    dropdown.value = 1  # the broken case
    assert g.index == 2 and dropdown.value == 2 and g._image.value == shown
    assert "case 1: KeyError" in g._message.value and "\n" not in g._message.value
    dropdown.value = 0
    assert g.index == 0 and g._message.value == ""
    with pytest.raises(KeyError):
        g.select(1)
    assert g.index == 0 and dropdown.value == 0


@pytest.fixture(scope="module")
def np_model(shared_dir):
    """Noiseprint++ alone (what load() gives without a TruFor checkpoint): fast."""
    from trufor_lab.inference.load import load_noiseprint

    return load_noiseprint(shared_dir / "weights" / "noiseprint++.th", device="cpu")


def test_the_explorer_of_noiseprint_alone_refuses_side_by_side_in_one_line(np_model, small_image):
    """The 'RGB | Noiseprint++ | fused' box on a Noiseprint++-only model raised matplotlib's
    'Number of columns must be a positive integer, not 0'."""
    fe = FeatureExplorer(np_model, small_image[:48, :48])
    assert fe.state["branch"] == "dncnn"
    with pytest.raises(ValueError, match="^side by side shows the RGB and Noiseprint\\+\\+ encoder stages"):
        fe.set(side_by_side=True)
    box = fe.controls["side_by_side"]
    assert box.disabled
    box.value = True  # a click that gets through: put back, said in one line
    assert box.value is False and fe.state["side_by_side"] is False
    assert "side by side shows" in fe._message.value


def test_the_explorer_leaves_side_by_side_for_a_stage_without_it(recipe_model, small_image):
    fe = FeatureExplorer(recipe_model, small_image[:64, :64], layers=["rgb.stage1.out", "noiseprint.dncnn.level1"])
    fe.set(side_by_side=True)
    assert not fe.controls["side_by_side"].disabled
    fe.set(branch="dncnn")  # no encoder stage there: the single map, and the box says so
    assert fe.state["side_by_side"] is False and fe.controls["side_by_side"].value is False
    assert fe.png.startswith(b"\x89PNG")


def test_large_maps_are_drawn_as_block_means_not_strided(array_result):
    """Above 2048 pixels the viewers drew every second pixel: a map hot on every odd column of
    its right half (a forged area that is 50% hot) was drawn all cold, a thin mask line vanished."""
    h, w = 2400, 3000
    heat = np.zeros((h, w), np.float32)
    heat[:, w // 2 + 1 :: 2] = 1.0
    mask = np.zeros((h, w), bool)
    mask[:, 1001] = True  # a seam one pixel wide
    r = array_result(h, w, map=heat, conf=np.ones((h, w), np.float32))
    fig = ResultViewer(r, masks=[mask]).render()
    drawn = np.asarray(fig.axes[1].images[0].get_array())
    assert drawn.shape == (1200, 1500)
    assert drawn[:, 800:].mean() == pytest.approx(0.5) and drawn[:, :700].max() == 0
    assert fig.axes[0].collections  # the seam is still outlined
    fig = CompareViewer([r], panel="map").render()
    assert np.asarray(fig.axes[0].images[0].get_array())[:, 800:].mean() == pytest.approx(0.5)
    fig = CompareViewer([r], panel="overlay").render()
    assert np.asarray(fig.axes[0].images[1].get_array())[:, 800:].mean() == pytest.approx(0.5)


def test_the_gallery_draws_a_large_map_as_block_means(tmp_path, failure_rows):
    """The failure gallery strided a large map like the viewers did: a half-hot striped area drawn cold."""
    from PIL import Image

    h, w = 2400, 3000
    heat = np.zeros((h, w), np.float32)
    heat[:, w // 2 + 1 :: 2] = 1.0
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / "big.png")
    np.savez(tmp_path / "big.npz", map=heat, conf=np.ones((h, w), np.float32))
    row = dict(
        failure_rows(1)[0], image_path=str(tmp_path / "big.png"), npz=str(tmp_path / "big.npz"), height=h, width=w
    )
    fig = FailureGallery(Evaluation([row]), cases=[row]).figure()
    drawn = np.asarray(fig.axes[2].images[0].get_array())
    assert fig.axes[2].get_title() == "Localization map" and drawn.shape == (1200, 1500)
    assert drawn[:, 800:].mean() == pytest.approx(0.5) and drawn[:, :700].max() == 0


def test_viewers_name_files_by_their_base_name_and_say_a_picture_is_as_stored(array_result):
    """CompareViewer's columns, NoiseprintViewer's title and ResultViewer's image list showed the
    full path as given (the user's folders, a bidi override as is), and only ResultViewer said
    that a picture on its file's stored grid is shown turned by viewers."""
    name = "/home/alice/cases/evil\u202egpj.png"
    r = array_result(40, 60, exif_orientation=6, name=name)
    fig = CompareViewer([r, r]).render()
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["evil?gpj.png"] * 2
    assert "as stored: viewers show it turned (EXIF orientation 6" in fig._suptitle.get_text()
    assert "as stored" not in CompareViewer([r.as_shown()]).render()._suptitle.get_text()
    v = NoiseprintViewer(r)
    for mode in ("overview", "compare"):
        v.set(mode=mode)
        title = v.render()._suptitle.get_text()
        assert title.startswith("evil?gpj.png\nas stored: viewers show it turned"), mode
    assert "/home/alice" not in repr(ResultViewer([r, r]).controls["index"].options)


def test_the_explorer_says_its_maps_are_on_the_stored_grid(recipe_model, small_image, tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.fromarray(small_image[:48, :64]).save(path, exif=exif, quality=95)
    fe = FeatureExplorer(
        recipe_model, str(path), layers=["rgb.stage1.out", "noiseprint.stage1.out", "fusion.stage1.ffm"]
    )
    for change in ({}, {"mode": "grid"}, {"side_by_side": True}):
        fe.set(**change)
        assert "as stored: viewers show it turned (EXIF orientation 6" in fe.render()._suptitle.get_text(), change


def test_block_means_are_computed_once_per_view(array_result, monkeypatch):
    """Block means of a large map were recomputed at every move of the opacity slider."""
    import trufor_lab.widgets.display as display

    calls = []
    real = display.for_display
    monkeypatch.setattr(display, "for_display", lambda a, step: calls.append(step) or real(a, step))
    v = ResultViewer(array_result(2100, 2100))
    v.png  # noqa: B018
    first = len(calls)
    assert first == 2  # map and confidence
    for opacity in (0.2, 0.7, 0.9):
        v.set(opacity=opacity)
    assert len(calls) == first
    v.set(zoom=(0, 0, 2100, 2060))  # another view: new means
    assert len(calls) == 2 * first
    assert np.asarray(v.render().axes[1].images[0].get_array()).shape == (1050, 1030)


def test_a_failed_picks_message_goes_when_code_selects_another_case(array_result, failure_rows):
    """After a case that could not be drawn, select() from code showed the next case with the old
    red message still above it (only the dropdown's callback cleared it)."""
    rows = failure_rows(2)
    g = FailureGallery(Evaluation(rows), cases=[rows[0], {"id": "no path", "case": "fake", "reason": "x"}, rows[1]])
    dropdown = g.widget.children[0]
    dropdown.value = 1  # the broken case: said in one line
    assert "case 1: KeyError" in g._message.value
    g.select(2)
    assert g.index == 2 and g._message.value == ""


def test_a_forged_region_thinner_than_a_display_block_is_still_outlined(array_result):
    """Above 2048 px the mask is averaged over blocks and was outlined where half a block is
    forged: a forged line one pixel wide (a third of each 3-pixel block) got no outline, while
    ResultViewer's title said "(ground truth in yellow)"."""
    import matplotlib.pyplot as plt

    from trufor_lab.viz.figures import draw_overlay

    h, w = 4200, 90  # display step 3
    mask = np.zeros((h, w), bool)
    mask[1000:3000, 40] = True  # one pixel wide
    r = array_result(h, w)
    fig = ResultViewer(r, masks=[mask]).render()
    assert "(ground truth in yellow)" in fig.axes[0].get_title()
    outlined = [c for c in fig.axes[0].collections if type(c).__name__ in ("QuadContourSet", "ContourSet")]
    assert outlined and len(outlined[0].get_paths()[0].vertices) > 0
    fig2, ax = plt.subplots()
    draw_overlay(ax, r.image, r.map, mask=mask)
    assert [c for c in ax.collections if type(c).__name__ in ("QuadContourSet", "ContourSet")]
    full = np.zeros((60, 60), bool)  # at full size a 0/1 mask is outlined at 0.5, as before
    full[10:20, 10:20] = True
    fig3, ax3 = plt.subplots()
    draw_overlay(ax3, r.image[:60, :60], r.map[:60, :60], mask=full)
    (cs,) = [c for c in ax3.collections if type(c).__name__ in ("QuadContourSet", "ContourSet")]
    assert list(cs.levels) == [0.5]
