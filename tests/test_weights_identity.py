"""A loaded model's record of its weights stays true only while it holds the loaded values:
changed in memory, its results are neither worded, recorded nor reused as the file's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import trufor_lab as tl
from trufor_lab.lab.datasets import folder_dataset
from trufor_lab.lab.evaluate import evaluate
from trufor_lab.model.identity import values_digest


@pytest.fixture()
def demo():
    return tl.load(device="cpu")


def _image(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_training_step_makes_the_weights_custom(demo):
    info = demo.weights_info
    assert info.kind == "demo" and info.verified and info.sha256
    opt = torch.optim.SGD(demo.detection.parameters(), lr=1e-2)
    x = torch.from_numpy(_image()).permute(2, 0, 1)[None].float() / 256
    demo(x).det_logit.sum().backward()
    opt.step()
    now = demo.weights_info
    assert (now.kind, now.sha256, now.verified) == ("custom", "", False)
    assert info.path in now.note and "changed in memory" in now.note
    r = tl.analyze(demo, _image())
    assert r.weights.kind == "custom" and r.notice.startswith("Weights changed in memory after loading")
    assert "trufor_demo.pt (demo): not that file's weights" in r.notice and "install" not in r.notice


def test_a_changed_model_is_not_worded_as_a_checkpoint_file(demo):
    """The report, its reading and the figure titles named the loaded file with an empty sha256
    ("trufor_demo.pt, sha256 , file checksum NOT verified") and told how to verify that file as
    the official checkpoint, for weights no file holds (the banner alone said 'changed in memory')."""
    from trufor_lab.casebook.reading import plain_reading
    from trufor_lab.casebook.report import weights_line
    from trufor_lab.viz.figures import result_title

    with torch.no_grad():
        demo.detection[0].weight.mul_(1.5)
    r = tl.analyze(demo, _image())
    line, reading, title = weights_line(r.weights), plain_reading(r), result_title(r)
    assert line.startswith("Weights: changed in memory after loading trufor_demo.pt, not that file's weights")
    assert "sha256" not in line and "checkpoint" not in line and "/" not in line  # no folders in a report
    assert reading.startswith("A TruFor model whose weights were changed in memory after loading trufor_demo.pt")
    assert "install" not in reading and "verified as the same bytes" not in reading
    assert "(weights changed in memory)" in title and "checkpoint" not in title


@pytest.mark.parametrize(
    "change",
    ["noise_no_grad", "data_assigned", "state_dict", "train_mode_forward"],
)
def test_every_way_of_changing_values_is_seen(demo, change):
    p = demo.detection[0].weight
    if change == "noise_no_grad":
        with torch.no_grad():
            p.add_(0.01)
    elif change == "data_assigned":
        p.data = p.data + 0.01
    elif change == "state_dict":
        sd = demo.state_dict()
        sd = {k: (v + 0.01 if v.is_floating_point() and k.startswith("decode_head.") else v) for k, v in sd.items()}
        demo.load_state_dict(sd)
    else:  # BatchNorm statistics move in a forward in training mode
        demo.train()
        with torch.no_grad():
            demo(torch.from_numpy(_image()).permute(2, 0, 1)[None].float() / 256)
        demo.eval()
    assert demo.weights_info.kind == "custom", change


def test_same_values_keep_the_record(demo):
    """Moves, copies and a restore of the loaded values are still the file's weights."""
    sd = {k: v.clone() for k, v in demo.state_dict().items()}
    with torch.no_grad():
        next(demo.parameters()).mul_(2)
    assert demo.weights_info.kind == "custom"
    demo.load_state_dict(sd)  # an ablation's restore
    assert demo.weights_info.kind == "demo"
    assert copy.deepcopy(demo).weights_info.kind == "demo"
    wide = copy.deepcopy(demo).double()
    assert wide.weights_info.kind == "demo"
    assert wide.float().weights_info.kind == "demo"
    assert copy.deepcopy(demo).half().weights_info.kind == "custom"  # float16 rounds the values


def test_an_edited_model_is_not_given_the_files_outputs(demo, tmp_path):
    """evaluate reused outputs made before the edit (keyed by the file's sha256); now the values
    name weights of no known file, and the same edited weights reuse their own outputs."""
    folder = tmp_path / "img"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_image(seed=i)).save(folder / f"{i}.png")
    before = evaluate(demo, folder_dataset(folder), tmp_path / "out", progress=False)
    with torch.no_grad():
        for p in demo.detection.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 3)
    after = evaluate(demo, folder_dataset(folder), tmp_path / "out", progress=False)
    assert not any(r["reused"] for r in after.rows)
    assert [r["score"] for r in after.rows] != [r["score"] for r in before.rows]
    again = evaluate(demo, folder_dataset(folder), tmp_path / "out", progress=False)
    assert all(r["reused"] for r in again.rows)
    assert [r["score"] for r in again.rows] == pytest.approx([r["score"] for r in after.rows], abs=1e-6)
    assert {r["weights_sha256"] for r in again.rows} == {values_digest(demo)}


def test_models_of_no_known_file_do_not_share_outputs(tmp_path):
    """Two untrained-from-scratch networks (no ``weights_info``) written to one folder."""
    folder = tmp_path / "img"
    folder.mkdir()
    Image.fromarray(_image()).save(folder / "0.png")
    a, b = tl.untrained(seed=0), tl.untrained(seed=1)
    a.weights_info = b.weights_info = None
    ra = evaluate(a, folder_dataset(folder), tmp_path / "out", progress=False).rows[0]
    rb = evaluate(b, folder_dataset(folder), tmp_path / "out", progress=False).rows[0]
    assert not rb["reused"] and rb["score"] != ra["score"]
    assert values_digest(a) != values_digest(b)


def test_classic_label_round_trip_and_network_results_are_not_classic():
    from trufor_lab.lab.classic import detect
    from trufor_lab.model.identity import classic_label, classic_method

    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    r = detect(img, "ela")
    assert r.label == classic_label("ela") and classic_method(r) == "ela" and classic_method(r.label) == "ela"
    assert (
        classic_method(None) is None
        and classic_method("demo") is None
        and classic_method(r.label[:-3]) == ""
        and classic_method("classic") is None
    )
