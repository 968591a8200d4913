"""Results derived from a model (attributions, ablation studies, robustness sweeps, evaluations)
say which weights made them, as a Result does: two models' studies, sweeps or attributions could
not be told apart afterwards, and a figure putting them together said nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import trufor_lab as tl
from trufor_lab.inference import weights as W
from trufor_lab.interpret import ablate as A
from trufor_lab.interpret import attribute as T
from trufor_lab.interpret.attribution import Attribution, plot_modality_shares
from trufor_lab.lab import perturb as P
from trufor_lab.model import TruFor, TruForConfig

DEMO = f"demo weights trufor_demo.pt, sha256 {W.DEMO_SHA256[:12]}"
TINY = TruForConfig(
    embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), decoder_embed_dim=16, np_levels=3
)


@pytest.fixture(scope="module")
def demo():
    m = tl.load(device="cpu")
    assert m.weights_info.kind == "demo"
    return m


@pytest.fixture(scope="module")
def changed(demo):
    """The demo model changed in memory after loading: no longer the file's weights."""
    m = copy.deepcopy(demo)
    with torch.no_grad():
        m.detection[0].weight.mul_(2)
    assert m.weights_info.kind == "custom"
    return m


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    m = np.zeros((64, 64), bool)
    m[10:40, 12:44] = True
    return m


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), *(t.get_text() for t in ax.get_yticklabels())]
        legend = ax.get_legend()
        parts += [t.get_text() for t in legend.get_texts()] if legend else []
    return "\n".join(parts)


def test_an_attribution_records_the_weights_of_the_model_it_explained(demo, changed, img):
    import matplotlib.pyplot as plt

    a = T.attribute(demo, img, "saliency")
    assert a.weights == demo.weights_info
    assert f"weights={DEMO!r}" in repr(a) and a.title.endswith(f"by {DEMO}")
    fig = a.plot()
    assert DEMO in fig.axes[0].get_title()
    plt.close(fig)
    assert a.to_result().weights == demo.weights_info  # a comparison of two attributions can tell
    c = T.LayerAttribution(changed, stage=4).attribute(img)
    assert c.weights.kind == "custom" and "changed in memory after loading trufor_demo.pt" in c.title
    assert W.DEMO_SHA256[:12] not in repr(c)  # not the file's weights: not its checksum
    torch.manual_seed(0)
    tiny = T.attribute(TruFor(TINY).eval(), img, "saliency")
    assert tiny.weights is None and "weights=" not in repr(tiny)


def test_modality_shares_of_different_weights_are_said_to_be(demo, changed):
    import matplotlib.pyplot as plt

    def shares(name, info):
        rng = np.random.default_rng(0)
        return Attribution(
            image=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
            map=rng.standard_normal((16, 16)),
            method="modality_ig",
            target="score",
            name=name,
            extras={"shares": {"rgb": 0.3, "noiseprint": 0.7}},
            weights=info,
        )

    same = plot_modality_shares([shares("a.png", demo.weights_info), shares("b.png", demo.weights_info)])
    assert "different weights" not in _texts(same) and f"by {DEMO}" in _texts(same)
    mixed = plot_modality_shares([shares("a.png", demo.weights_info), shares("a.png", changed.weights_info)])
    text = _texts(mixed)
    assert "from different weights" in text
    assert f"a.png\n{DEMO}" in text and "a.png\ncustom weights changed in memory after loading trufor_demo.pt" in text
    plt.close("all")


def test_an_ablation_study_records_the_studied_weights_and_refuses_another_models_rows(demo, changed, img):
    import matplotlib.pyplot as plt

    study = A.ablation_study(demo, [img], ablations=["rgb_only"], names=["x.png"])
    assert study.weights == demo.weights_info
    assert repr(study).endswith(f", weights={DEMO!r})")
    assert [r["weights"] for r in study.table] == [DEMO, DEMO]  # rows of two studies put together still say
    assert study.to_csv().splitlines()[0].endswith(",weights")
    assert DEMO in study._repr_html_() and DEMO in _texts(study.plot())
    plt.close("all")
    other = A.ablation_study(changed, [img], ablations=["rgb_only"], names=["x.png"])
    assert other.weights != study.weights and "changed in memory" in repr(other)
    # an analyze_fn that analyses another model: its rows were the studied model's, unsaid
    with pytest.raises(ValueError, match="analyze_fn returned the analysis of custom weights changed in memory"):
        A.ablation_study(demo, [img], ablations=["rgb_only"], analyze_fn=lambda m, im: tl.analyze(changed, im))
    # the model inside DataParallel: its own weights (read on the wrapper, none: its rows were refused)
    wrapped = A.ablation_study(torch.nn.DataParallel(demo), [img], ablations=[], names=["x.png"])
    assert wrapped.weights == demo.weights_info and [r["weights"] for r in wrapped.table] == [DEMO]


def test_a_sweep_records_the_swept_weights_and_two_on_one_axes_name_theirs(demo, changed, img, mask):
    import matplotlib.pyplot as plt

    a = P.sweep(demo, img, mask, "jpeg", [90, 70])
    assert a.weights == demo.weights_info and repr(a).endswith(f", weights={DEMO!r})")
    assert all(r["weights"] == DEMO for r in a.table) and DEMO in a._repr_html_()
    fig = a.plot()
    assert fig.axes[0].get_title() == f"by {DEMO}"
    b = P.sweep(changed, img, mask, "jpeg", [90, 70])
    assert b.weights.kind == "custom"
    b.plot(ax=fig.axes[0])  # two models' curves on one axes
    text = _texts(fig)
    assert "sweeps of different weights" in text
    assert f"score\n{DEMO}" in text and "score\ncustom weights changed in memory" in text
    again = a.plot()
    a.plot(ax=again.axes[0])  # the same weights twice: nothing to say
    assert "different weights" not in _texts(again)
    plt.close("all")
    with pytest.raises(ValueError, match="not of the model swept"):
        P.sweep(demo, img, mask, "jpeg", [90], analyze_fn=lambda m, im: tl.analyze(changed, im))


def test_an_evaluation_says_whose_numbers_and_when_rows_of_several_models_are_pooled():
    from trufor_lab.lab.evaluate import Evaluation

    row = {"dataset": "d", "id": "a", "image_path": "a.png", "label": 0, "status": "ok", "score": 0.2}
    one = Evaluation([dict(row, weights_sha256=W.DEMO_SHA256), dict(row, id="b", weights_sha256=W.DEMO_SHA256)])
    assert repr(one).endswith(f"weights={W.DEMO_SHA256[:12]})")
    assert "different weights" not in one.summary_lines()[0]
    both = Evaluation([dict(row, weights_sha256=W.DEMO_SHA256), dict(row, id="b", weights_sha256="values:" + "f" * 40)])
    assert repr(both).endswith("weights=mixed (2))")
    assert "rows of different weights pooled (mixed (2)): not one model's numbers" in both.summary_lines()[0]


def test_the_noiseprint_download_failing_names_its_own_file_and_how_to_install_it(tmp_path):
    dest = tmp_path / "weights"
    with pytest.raises(W.WeightsError) as e:
        W.download_noiseprint(dest, url=(tmp_path / "missing.th").as_uri(), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "TruFor_weights.zip" not in msg and "weights install" not in msg
    assert f"download noiseprint++.th elsewhere ({W.NOISEPRINT_URL}, sha256 {W.NOISEPRINT_SHA256})" in msg
    assert f"copy it to {dest / 'noiseprint++.th'}" in msg and "$TRUFOR_NOISEPRINT_WEIGHTS" in msg


def test_rows_a_classic_detector_made_do_not_name_the_models_weights(demo, img, mask):
    """A sweep or study whose analyze_fn runs a classic detector (its Result records no weights)
    labelled every row, and the sweep's title, with the model's weights: rows no model made."""
    from trufor_lab.lab.classic import detect

    ela = lambda m, im: detect(im, method="ela")  # noqa: E731
    s = P.sweep(demo, img, mask, "jpeg", [90, 70], analyze_fn=ela)
    assert [r["weights"] for r in s.table] == ["classic:ela (a classic detector, no weights)"] * 2
    assert s.weights is None and "demo weights" not in repr(s) and "demo weights" not in s.plot().axes[0].get_title()
    study = A.ablation_study(demo, img, ablations=[], analyze_fn=ela)
    assert all(r["weights"].startswith("classic:ela") for r in study.table)
    mixed = P.sweep(demo, img, mask, "jpeg", [90], analyze_fn=lambda m, im: tl.analyze(m, im))
    assert mixed.weights == demo.weights_info and mixed.table[0]["weights"] == DEMO
