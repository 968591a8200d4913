"""The network is the official one: parity with outputs of the official implementation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import trufor_lab as tl
from trufor_lab.inference.preprocess import to_tensor

FUSED = [f"fused_stage{i}" for i in range(1, 5)]


@pytest.fixture(scope="module")
def expected(parity_dir):
    return dict(np.load(parity_dir / "parity_expected.npz"))


def _outputs(model, rgb):
    x = to_tensor(rgb, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x, out.noiseprint)
    got = {
        "pred_logits": out.logits[0],
        "conf_logits": out.conf_logits[0],
        "det_logit": out.det_logit[0],
        "noiseprint": out.noiseprint[0, 0],
        "map": out.map[0],
        "conf": out.conf[0],
        "score": out.score[0],
    }
    got.update({k: f[0] for k, f in zip(FUSED, feats)})
    return {k: v.double().numpy() for k, v in got.items()}


def test_float64_parity_all_outputs(recipe_model, parity_input, expected):
    m64 = copy.deepcopy(recipe_model).double()
    got = _outputs(m64, parity_input)
    for k, ref in expected.items():
        assert got[k].shape == np.shape(ref), k
        err = np.abs(got[k] - ref).max()
        assert err <= 1e-6, f"{k}: max error {err:.2e}"


def test_float32_parity_within_shared_tolerances(recipe_model, parity_input, expected):
    got = _outputs(recipe_model, parity_input)
    tol = {"noiseprint": (5e-3, 2e-4), "map": (1e-3, 1e-4), "conf": (1e-3, 1e-4)}
    tol.update({k: (1e-2, 1e-3) for k in FUSED})  # ../shared/README.md
    for k, (tmax, tmean) in tol.items():
        err = np.abs(got[k] - expected[k])
        assert err.max() <= tmax and err.mean() <= tmean, f"{k}: max {err.max():.2e} mean {err.mean():.2e}"
    assert abs(float(got["score"]) - float(expected["score"])) <= 2e-4


def test_analyze_float64_matches_official_outputs(recipe_model, parity_dir, expected):
    """The whole path (file -> RGB/256 -> model -> Result) in the reference precision."""
    m64 = copy.deepcopy(recipe_model).double()
    r = tl.analyze(m64, parity_dir / "parity_input.png")
    assert r.map.dtype == np.float64
    assert np.abs(r.map - expected["map"]).max() <= 1e-6
    assert np.abs(r.conf - expected["conf"]).max() <= 1e-6
    assert np.abs(r.noiseprint - expected["noiseprint"]).max() <= 1e-6
    assert abs(r.score - float(expected["score"])) <= 1e-6
    d = r.official_dict()
    assert d["map"].dtype == np.float32 and tuple(d["imgsize"]) == parity_dir_size(parity_dir)


def parity_dir_size(parity_dir):
    from PIL import Image

    w, h = Image.open(parity_dir / "parity_input.png").size
    return (h, w)


@pytest.mark.parametrize("name,precision", [("pristine1", "float64"), ("tampered2", "float32")])
def test_real_noiseprint_of_official_samples(shared_dir, parity_dir, name, precision):
    ext = "jpg" if name.startswith("pristine") else "png"
    net = tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th", precision=precision)
    r = tl.analyze(net, shared_dir / "images" / f"{name}.{ext}")
    ref = np.load(parity_dir / f"noiseprint_{name}.npz")["noiseprint"]
    assert r.map is None and r.score is None and "checkpoint" in r.notice
    err = np.abs(r.noiseprint.astype(np.float64) - ref)
    if precision == "float64":
        assert err.max() <= 1e-6
    else:
        assert err.max() <= 5e-3 and err.mean() <= 2e-4


def test_noiseprint_loads_from_full_checkpoint(recipe_ckpt, shared_dir, parity_input):
    """The `dncnn.` part of a full checkpoint and noiseprint++.th give the same network."""
    a = tl.load_noiseprint(recipe_ckpt)
    b = tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th")
    x = to_tensor(parity_input[:64, :64])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_noiseprint_stays_float32_under_autocast(shared_dir, parity_input):
    net = tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th")
    x = to_tensor(parity_input[:48, :48])
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = net(x)
    assert got.dtype == torch.float32
    assert torch.equal(got, ref)


def test_attention_implementations_are_exact(recipe_model, parity_input):
    """SDPA and query chunking compute the plain formula (float32, tiny rounding only)."""
    rgb = parity_input[:64, :96]
    ref = _outputs(copy.deepcopy(recipe_model).set_attention("plain", None), rgb)
    for impl, chunk in (("sdpa", None), ("sdpa", 37), ("plain", 50)):
        got = _outputs(copy.deepcopy(recipe_model).set_attention(impl, chunk), rgb)
        for k in ("map", "conf", "fused_stage1", "fused_stage4"):
            assert np.abs(got[k] - ref[k]).max() <= 2e-5, (impl, chunk, k)


def test_attention_chunking_matches_plain_formula():
    from trufor_lab.model.attention import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 16, generator=g, dtype=torch.float64) for n in (301, 40, 40))
    ref = (q @ k.transpose(-2, -1) * 0.25).softmax(-1) @ v
    for impl in ("plain", "sdpa"):
        for chunk in (None, 64, 300, 1000):
            assert torch.allclose(attention(q, k, v, 0.25, impl=impl, chunk=chunk), ref, atol=1e-12)
    with pytest.raises(ValueError, match="unknown attention"):
        attention(q, k, v, 0.25, impl="flash-ish")


def test_state_dict_keys_match_manifest_in_order(parity_dir):
    import json

    keys = json.loads((parity_dir / "trufor_state_dict_manifest.json").read_text())["keys"]
    sd = tl.TruFor().state_dict()
    assert [k for k, _, _ in keys] == list(sd)
    assert all(list(sd[k].shape) == s for k, s, _ in keys)
