"""How results word the weights that made them: an unverified file is never called "not the
official TruFor", weights of unknown origin are never called untrained, and reused outputs
name the weights as a fresh load names them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trufor_lab.casebook.reading import plain_reading
from trufor_lab.casebook.report import weights_line
from trufor_lab.cli import main
from trufor_lab.inference import weights as W
from trufor_lab.inference.load import load, model_notice, selected_info
from trufor_lab.inference.result import Result
from trufor_lab.model import MIT_B0, TruFor
from trufor_lab.viz.figures import result_title


def _result(info: W.WeightsInfo | None) -> Result:
    """Half the map flagged with high confidence, score 0.9: the official reading's strong case."""
    m = np.zeros((64, 64), np.float32)
    m[:32] = 0.9
    return Result(
        image=np.zeros((64, 64, 3), np.uint8),
        noiseprint=np.zeros((64, 64), np.float32),
        map=m,
        conf=np.full((64, 64), 0.9, np.float32),
        score=0.9,
        name="photo.png",
        weights=info,
    )


def _meta_trufor(info: W.WeightsInfo | None) -> TruFor:
    with torch.device("meta"):  # model_notice reads attributes only
        m = TruFor(MIT_B0)
    m.weights_info = info
    return m


@pytest.fixture()
def env_checkpoint(tmp_path, monkeypatch) -> Path:
    """A checkpoint in the official layout (no config entry) named by $TRUFOR_WEIGHTS, with no
    download record of this installation: what the real official file is when used so."""
    p = tmp_path / "elsewhere" / W.TRUFOR_FILE
    p.parent.mkdir()
    torch.save({"epoch": 81, "state_dict": {"x": torch.zeros(2)}}, p)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(p))
    return p


def test_an_unverified_checkpoint_is_never_said_not_to_be_the_official_one(env_checkpoint):
    """The official file named by $TRUFOR_WEIGHTS (as HOW_TO_GET suggested) read "A custom TruFor
    checkpoint (not the official one)"; its figure title "(custom weights, not the official
    TruFor)": a claim the checksum check cannot make, with no word on how to verify it."""
    info = W.describe(*W.select())  # what tl.load() records of a file without a config entry
    assert info.kind == "custom" and not info.verified
    r = _result(info)
    said = {
        "reading": plain_reading(r),
        "weights line": weights_line(info),
        "notice": model_notice(_meta_trufor(info)),
        "title": result_title(r),
        "note": info.note,
    }
    for where, text in said.items():
        assert "not the official" not in text, (where, text)
    for where in ("reading", "weights line", "notice", "note"):
        assert "not verified as the official" in said[where], (where, said[where])
    for where in ("reading", "notice", "note"):
        assert "trufor-lab weights install TruFor_weights.zip" in said[where], (where, said[where])
    assert "(unverified checkpoint)" in said["title"]
    # the advice that leads there says what such a file shows as
    assert "$TRUFOR_WEIGHTS" in W.HOW_TO_GET and "is not verified" in W.HOW_TO_GET


def test_weights_of_unknown_origin_are_not_called_untrained_or_meaningless():
    """``m = TruFor(); m.load_state_dict(sd)`` (or a trained model) has no weights_info: its
    results read "UNTRAINED weights (no TruFor checkpoint installed)" and "Weights: unknown (not
    loaded from a checkpoint: results are meaningless)", whatever weights it holds."""
    notice = model_notice(_meta_trufor(None))
    line = weights_line(None)
    reading = plain_reading(_result(None))
    for text in (notice, line, reading):
        assert "not loaded with tl.load" in text and "unknown origin" in text, text
        assert not any(w in text.lower() for w in ("untrained", "meaningless", "random")), text
    assert "tl.load(path)" in notice and "not verified as the official TruFor" in line
    untrained = model_notice(_meta_trufor(W.WeightsInfo("untrained", "-", "-", False)))
    assert untrained.startswith("UNTRAINED weights")  # tl.untrained keeps its word


def test_reused_outputs_name_the_demo_model_as_a_fresh_load_does(tmp_path, monkeypatch, capsys):
    """`analyze --weights weights/trufor_demo.pt` noted "Demo weights" when it ran and, its
    outputs reused, "custom weights (trufor_demo.pt): TruFor checkpoint (no verified download
    record)": the note took the kind the search gives a named file, not the file's own."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    demo = W.find_demo()
    assert demo is not None
    fresh = load(demo, device="cpu").weights_info
    said = selected_info(demo)
    assert (said.kind, said.verified, said.note) == (fresh.kind, fresh.verified, fresh.note)
    assert fresh.kind == "demo" and fresh.verified
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(img)
    args = ["analyze", "--weights", str(demo), str(img), "-o", str(tmp_path / "out" / "x.npz"), "--device", "cpu"]
    assert main(args) == 0
    first = capsys.readouterr().err
    assert main(args) == 0
    again = capsys.readouterr().err
    assert "Demo weights" in first
    assert "made with demo weights (trufor_demo.pt)" in again and "custom" not in again, again


def test_a_checkpoint_trained_with_trufor_lab_is_never_offered_as_the_official_one(tmp_path, monkeypatch):
    """A file with its own 'config' entry (``export_checkpoint``, a training run's ``last.pt``) can
    never be the official trufor.pth.tar, yet its banner, reading and report advised "if this
    checkpoint is the official trufor.pth.tar, install TruFor_weights.zip ...". They now say
    whose it is; reused outputs (selected_info) word it as a fresh load does."""
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sd = TruFor(MIT_B0).state_dict()
    path = tmp_path / "mine.pt"
    torch.save({"state_dict": sd, "config": MIT_B0.to_dict(), "kind": "custom"}, path)
    fresh = load(path, device="cpu")
    info = fresh.weights_info
    assert info.kind == "custom" and not info.verified and info.note == W.OWN_CONFIG_NOTE
    said = selected_info(path)
    assert (said.kind, said.note) == (info.kind, info.note)
    r = _result(info)
    texts = {
        "notice": model_notice(fresh),
        "reading": plain_reading(r),
        "weights line": weights_line(info),
        "title": result_title(r),
    }
    for where, text in texts.items():
        assert "if this checkpoint is the official" not in text, (where, text)
        assert "trufor_lab" in text and "not the official trufor" in text.lower(), (where, text)
    assert W.HOW_TO_GET in texts["notice"]
    # a file without a config entry keeps its advice (it may be the official one)
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {k: v for k, v in sd.items()}}, plain)
    assert W.describe(plain, "official").note != W.OWN_CONFIG_NOTE


def test_a_checkpoint_exported_as_demo_but_not_the_shipped_one_is_not_offered_as_the_official_one(
    tmp_path, monkeypatch
):
    """``export_checkpoint(..., kind="demo")`` of one's own run, or another demo-style model put
    where the demo model is looked for: not the shipped file, so 'custom', but its banner and
    reading advised installing TruFor_weights.zip "if this checkpoint is the official
    trufor.pth.tar", which a file with its own 'config' entry never is."""
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sd = TruFor(MIT_B0).state_dict()
    (tmp_path / "cache").mkdir()
    for path in (tmp_path / "mine.pt", tmp_path / "cache" / W.DEMO_FILE):  # given, and found as the demo model
        torch.save({"state_dict": sd, "config": MIT_B0.to_dict(), "kind": "demo"}, path)
    for model in (load(tmp_path / "mine.pt", device="cpu"), load(device="cpu")):
        info = model.weights_info
        assert info.kind == "custom" and not info.verified and info.note == W.OWN_CONFIG_NOTE, info
        for text in (model_notice(model), plain_reading(_result(info)), weights_line(info)):
            assert "if this checkpoint is the official" not in text and "trufor_lab" in text, text
