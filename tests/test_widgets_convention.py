"""Every viewer has one call shape (trufor_lab.widgets' docstring): built from what it shows, the
same keywords (masks=, titles=), set / state / figure / png / widget / close; the older call forms
still work. Driven headless, no browser."""

from __future__ import annotations


import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

ipywidgets = pytest.importorskip("ipywidgets")

from trufor_lab.lab.evaluate import Evaluation  # noqa: E402
from trufor_lab.widgets.compare_viewer import CompareViewer  # noqa: E402
from trufor_lab.widgets.feature_explorer import EXPLORER_LAYERS, FeatureExplorer  # noqa: E402
from trufor_lab.widgets.gallery import FailureGallery  # noqa: E402
from trufor_lab.widgets.noiseprint_viewer import NoiseprintViewer  # noqa: E402
from trufor_lab.widgets.result_viewer import ResultViewer  # noqa: E402


def _mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[h // 4 : h // 2, w // 4 : w // 2] = True
    return m


def _yellow_contours(fig) -> int:
    return sum(
        1
        for ax in fig.axes
        for c in ax.collections
        if getattr(c, "get_edgecolor", None) is not None
        and len(c.get_edgecolor())
        and np.allclose(c.get_edgecolor()[0][:3], matplotlib.colors.to_rgb("yellow"))
    )


@pytest.mark.parametrize("kind", ["result", "compare", "noiseprint", "gallery"])
def test_every_viewer_has_the_same_methods(array_result, kind, failure_rows):
    r = array_result(40, 60)
    v = {
        "result": lambda: ResultViewer([r, r]),
        "compare": lambda: CompareViewer([r, r]),
        "noiseprint": lambda: NoiseprintViewer([r]),  # results=, a list, as the others take them
        "gallery": lambda: FailureGallery(Evaluation(failure_rows(2)), k=2),
    }[kind]()
    assert isinstance(v.state, dict)
    fig = v.figure()  # a static Figure, no widget needed
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    assert v.png.startswith(b"\x89PNG")
    key, value = {"result": ("index", 1), "compare": ("panel", "map"), "noiseprint": ("mode", "compare")}.get(
        kind, ("index", 1)
    )
    assert v.set(**{key: value}).startswith(b"\x89PNG") and v.state[key] == value
    with pytest.raises(KeyError, match="unknown"):
        v.set(no_such_setting=1)
    box = v.widget
    assert box is not None and "application/vnd.jupyter.widget-view+json" in v._repr_mimebundle_()
    v.close()


def test_the_gallery_is_driven_by_set_and_its_dropdown_follows(failure_rows):
    g = FailureGallery(Evaluation(failure_rows(3)), k=3)
    g.widget  # noqa: B018  (builds the dropdown)
    g.set(index=2)
    assert g.state == {"index": 2} and g._dropdown.value == 2
    g.select(1)  # the older name
    assert g.state == {"index": 1}
    with pytest.raises(IndexError):
        g.set(index=7)
    assert g.state == {"index": 1}


def test_masks_and_titles_are_the_same_keywords_everywhere(array_result):
    r = array_result(48, 64)
    m = _mask(48, 64)
    rv = ResultViewer([r, r], masks=[m, None], titles=["first", "second"])
    assert "first" in rv.figure()._suptitle.get_text()
    assert [o[0] for o in rv.controls["index"].options] == ["0: first", "1: second"]
    cv = CompareViewer([r, r], masks=[m, m], titles=["full", "ablated"])
    fig = cv.figure()
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["full", "ablated"]
    assert _yellow_contours(fig) == 2 and "ground truth in yellow" in fig._suptitle.get_text()
    for panel in ("map", "conf", "noiseprint"):
        cv.set(panel=panel)
        assert _yellow_contours(cv.figure()) == 2, panel
    assert _yellow_contours(CompareViewer([r, r]).figure()) == 0
    nv = NoiseprintViewer(r, masks=m, titles="mine")
    fig = nv.figure()
    assert _yellow_contours(fig) == 1 and fig._suptitle.get_text() == "mine"
    assert _yellow_contours(NoiseprintViewer(r).figure()) == 0
    with pytest.raises(ValueError, match="3 titles for 2 results"):
        CompareViewer([r, r], titles=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 masks for 1 results"):
        CompareViewer([r], masks=[m, m])
    with pytest.raises(ValueError, match=r"mask is \(10, 10\), the result \(48, 64\)"):
        CompareViewer([r], masks=[_mask(10, 10)])
    with pytest.raises(ValueError, match="one result, got 2"):
        NoiseprintViewer([r, r])


def test_the_older_call_forms_still_work(array_result):
    r = array_result(40, 60)
    old = CompareViewer([r, r], ["full", "ablated"])  # labels, positional
    assert old.labels == ["full", "ablated"] == CompareViewer([r, r], titles=["full", "ablated"]).labels
    with pytest.raises(ValueError, match="not both"):
        CompareViewer([r, r], ["a", "b"], titles=["a", "b"])
    with pytest.raises(ValueError, match="1 labels for 2 results"):
        CompareViewer([r, r], ["a"])
    assert NoiseprintViewer(r, (0, 0, 20, 20), (20, 30, 40, 60), mode="compare").state["mode"] == "compare"


def test_the_feature_explorer_takes_a_result_with_captures(recipe_model, small_image):
    import trufor_lab as tl

    from trufor_lab.model.catalog import layer_catalog

    names = [n for n in layer_catalog(recipe_model) if n.startswith(("rgb.stage1.", "fusion.stage1."))]
    names = [n for n in names if "attention" not in n]
    result = tl.analyze(recipe_model, small_image, capture=names)
    fe = FeatureExplorer(result)  # the model does not run again
    assert fe.result is result and ("rgb", 1, "out") in fe.tree
    assert fe.set(mode="grid").startswith(b"\x89PNG") and isinstance(fe.figure(), matplotlib.figure.Figure)
    with pytest.raises(TypeError, match="model, image"):
        FeatureExplorer(recipe_model)
    assert EXPLORER_LAYERS  # the default capture for FeatureExplorer(result) built by hand
