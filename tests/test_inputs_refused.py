"""What predict/analyze and the model refuse in one line rather than answer wrongly: a model cast
to half precision, NaN or mean/std-normalised inputs, a config that loads but cannot run, a
non-positive attention chunk, a Noiseprint++ map of another shape; and what they follow (the
model's attention setting) or ignore (a global reduced-precision float32 setting)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

import trufor_lab as tl
import trufor_lab.model.lean as lean_mod
import trufor_lab.model.segformer as segformer_mod
from trufor_lab.inference.load import load_trufor
from trufor_lab.inference.predict import InferenceMode, predict
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.model import CheckpointError, HalfPrecisionWarning, TruFor, TruForConfig
from trufor_lab.model.attention import attention
from trufor_lab.model.lean import LeanConfig, lean_forward
from trufor_lab.model.trufor import MIN_TRUFOR_SIDE

SMALL = dict(embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), decoder_embed_dim=16, np_levels=3)


@pytest.fixture(scope="module")
def small() -> TruFor:
    """A small TruFor with the official patch sizes, strides and reductions (random weights)."""
    torch.manual_seed(0)
    return TruFor(TruForConfig(**SMALL)).eval()


def _rgb(h: int = 48, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), generator=g).float() / 256


# -- precision -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_model_cast_to_half_precision_is_refused(small, dtype):
    """``model.to(torch.bfloat16)`` ran Noiseprint++ and the whole network in bfloat16 without a
    word (demo score 0.059 where float32 says 0.288); float16 gave a NonFiniteOutput."""
    low = copy.deepcopy(small).to(dtype)
    name = str(dtype).removeprefix("torch.")
    image = (_rgb()[0].permute(1, 2, 0).numpy() * 256).astype(np.uint8)
    for call in (lambda: predict(low, _rgb()), lambda: tl.analyze(low, image), lambda: predict(low.dncnn, _rgb())):
        with pytest.raises(ValueError, match=rf"model parameters are {name}; .*float32 or float64: model.float\(\)"):
            call()
    # the raw forward still runs a cast model (experiments), but says that Noiseprint++ is not
    # the official one; a float32 model's forward says nothing
    with pytest.warns(HalfPrecisionWarning, match=rf"Noiseprint\+\+ weights are {name}: .*model.float\(\)"):
        with torch.no_grad():
            low(_rgb().to(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            small(_rgb())
    mixed = copy.deepcopy(small).double()
    mixed.dncnn.float()
    with pytest.raises(ValueError, match="mix float32 and float64"):
        predict(mixed, _rgb())
    # float32 and float64 run, and the fast mode's own bfloat16 encoder (autocast) still does
    for m in (small, copy.deepcopy(small).double()):
        assert torch.isfinite(predict(m, _rgb()).map).all()
    out = predict(small, _rgb(), InferenceMode.fast(amp_on_cpu=True))
    assert out.map.dtype == torch.float32 and torch.isfinite(out.map).all()


# -- input values -----------------------------------------------------------------------------
def test_nan_and_normalised_inputs_are_refused_by_the_bound_that_failed(small):
    """A NaN pixel gave a NaN score and a 100 % NaN map; a torchvision-normalised batch
    (-2.1..1.8) was analysed as if it were RGB / 256; a bright normalised one was told to
    divide by 256."""
    x = _rgb()
    nan = x.clone()
    nan[0, 0, 5, 5] = float("nan")
    inf = x.clone()
    inf[0, 2, 0, 0] = float("inf")
    for bad in (nan, inf):
        with pytest.raises(ValueError, match=r"has 1 NaN or Inf value") as e:
            predict(small, bad)
        assert "\n" not in str(e.value)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (x * 256 / 255 - mean) / std
    with pytest.raises(ValueError, match=r"down to -2\.\d+ \(looks mean/std-normalised"):
        predict(small, normalised)
    bright = (torch.full_like(x, 0.98) - mean) / std  # min above -0.5, max 2.5
    assert bright.min() > -0.5
    with pytest.raises(ValueError, match=r"up to 2\.\d+ \(looks mean/std-normalised") as e:
        predict(small, bright)
    assert "divide by 256" not in str(e.value)
    with pytest.raises(ValueError, match=r"up to 255 \(0\.\.255\? divide by 256 first\)"):
        predict(small, x * 256)
    # a little outside [0, 1) (noise, an attribution path) still runs
    assert torch.isfinite(predict(small, (x + 0.2 * torch.randn_like(x)).clamp(-0.3, 1.3)).map).all()


def test_a_noiseprint_map_of_another_shape_is_refused(small):
    """``noiseprint=`` was not checked: a (1, 1, 32, 64) or (1, 2, 64, 64) map for a 64x64
    image gave raw RuntimeErrors from inside the encoder, in predict and in the model."""
    x = _rgb(64, 64)
    for bad in (torch.zeros(1, 1, 32, 64), torch.zeros(1, 2, 64, 64), torch.zeros(2, 1, 64, 64), torch.zeros(64, 64)):
        for call in (
            lambda: predict(small, x, noiseprint=bad),
            lambda: predict(small, x, InferenceMode.exact(lean=True), noiseprint=bad),
            lambda: small(x, noiseprint=bad),
            lambda: lean_forward(small, x, bad),
        ):
            with pytest.raises(ValueError, match=r"noiseprint= must be \(1, 1, 64, 64\) or \(1, 3, 64, 64\)"):
                call()
    nan = torch.zeros(1, 1, 64, 64)
    nan[..., 3, 3] = float("nan")
    with pytest.raises(ValueError, match="noiseprint= has 1 NaN"):
        predict(small, x, noiseprint=nan)
    with pytest.raises(ValueError, match="Noiseprint takes none"):
        predict(small.dncnn, x, noiseprint=torch.zeros(1, 1, 64, 64))
    np1 = predict(small.dncnn, x)
    one = predict(small, x, noiseprint=np1)
    three = predict(small, x, noiseprint=np1.expand(-1, 3, -1, -1))
    assert torch.equal(one.logits, three.logits) and torch.equal(one.logits, predict(small, x).logits)


# -- configs ----------------------------------------------------------------------------------
def test_a_config_with_one_class_is_refused_at_load(tmp_path):
    """num_classes=1 loaded, then every image failed with a raw reshape RuntimeError."""
    with pytest.raises(ValueError, match="num_classes = 1: .*at least 2"):
        TruForConfig(**SMALL, num_classes=1)
    cfg = TruForConfig(**SMALL).to_dict()
    path = tmp_path / "one_class.pt"
    state = TruFor(TruForConfig(**SMALL)).state_dict()
    state["decode_head.linear_pred.weight"] = state["decode_head.linear_pred.weight"][:1]
    state["decode_head.linear_pred.bias"] = state["decode_head.linear_pred.bias"][:1]
    torch.save({"state_dict": state, "config": dict(cfg, num_classes=1)}, path)
    with pytest.raises(CheckpointError, match=r"num_classes = 1") as e:
        load_trufor(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "sizes,side",
    [
        ({}, 29),  # the official patch sizes, strides and reductions
        ({"sr_ratios": (16, 4, 2, 1)}, 61),
        ({"sr_ratios": (4, 2, 2, 1)}, 17),
        ({"sr_ratios": (1, 1, 1, 1)}, 1),
        ({"strides": (4, 2, 2, 4), "sr_ratios": (1, 1, 1, 4)}, 193),
        ({"patch_sizes": (4, 3, 3, 3), "sr_ratios": (8, 4, 4, 1)}, 48),
    ],
)
def test_the_smallest_side_follows_the_config(sizes, side):
    """The smallest side was a constant (29) for every config: sr_ratios (16, 4, 2, 1) loaded and
    a 45x45 image failed inside a convolution. At ``min_side`` the network runs; one pixel less
    and its own layers fail (the bound is exact), so the model refuses it in one line."""
    torch.manual_seed(0)
    m = TruFor(TruForConfig(**{**SMALL, **sizes})).eval()
    assert m.min_side == side
    with torch.no_grad():
        out = m(_rgb(side, side + 3))
        assert out.map.shape == (1, side, side + 3)
        if side > 1:
            x = _rgb(side - 1, side + 3)
            with pytest.raises(ValueError, match=rf"image is {side + 3}x{side - 1}; TruFor needs at least {side}"):
                m(x)
            with pytest.raises(RuntimeError):  # the network itself, past the check
                m.forward_heads(m.forward_features(x, m.forward_noiseprint(x)), x.shape[2:])
    assert MIN_TRUFOR_SIDE == TruForConfig().min_side == 29


def test_a_loaded_config_with_a_larger_smallest_side_refuses_small_images(tmp_path):
    """analyze of a 45x45 image with sr_ratios (16, 4, 2, 1) raised a raw RuntimeError."""
    cfg = TruForConfig(**SMALL, sr_ratios=(16, 4, 2, 1))
    path = tmp_path / "sr16.pt"
    torch.save({"state_dict": TruFor(cfg).state_dict(), "config": cfg.to_dict()}, path)
    m = load_trufor(path)
    image = np.full((45, 45, 3), 100, np.uint8)
    with pytest.raises(ImageError, match="image is 45x45; TruFor needs at least 61 pixels"):
        tl.analyze(m, image)
    for mode in ("exact", InferenceMode.exact(lean=True)):
        with pytest.raises(ValueError, match="needs at least 61"):
            predict(m, _rgb(45, 45), mode)
    assert tl.analyze(m, np.full((61, 64, 3), 100, np.uint8)).map.shape == (61, 64)


# -- attention --------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [-1, 0, 2.5, True])
def test_an_attention_chunk_must_be_a_positive_number_of_queries(small, chunk):
    """``set_attention("plain", chunk=-1)`` was accepted and left the output uninitialised (score
    0.70 for 0.03); ``LeanConfig(attn_chunk=-1)`` gave NaN maps."""
    m = copy.deepcopy(small)
    with pytest.raises(ValueError, match="attention chunk must be a positive number of queries"):
        m.set_attention("plain", chunk=chunk)
    assert all(a.chunk is None for a in (b.attn for b in m.backbone.block1))
    with pytest.raises(ValueError, match="attention chunk must be a positive number of queries"):
        LeanConfig(attn_chunk=chunk)
    q = torch.rand(1, 1, 10, 4)
    with pytest.raises(ValueError, match="attention chunk must be a positive number of queries"):
        attention(q, q, q, 0.5, chunk=chunk)
    with pytest.raises(ValueError, match="LeanConfig.tile must be a positive integer"):
        LeanConfig(tile=-1)


def test_predict_and_analyze_follow_set_attention(small, monkeypatch):
    """predict/analyze overrode the model's ``set_attention`` with the mode's defaults (SDPA, no
    chunks): ``set_attention("plain", chunk=64)`` never ran. Now the model's setting holds where
    the mode sets none, the mode's where it does, and the model's is restored afterwards."""
    seen: list[tuple[str, int | None]] = []
    orig = segformer_mod.attention

    def spy(q, k, v, scale, impl="sdpa", chunk=None):
        seen.append((impl, chunk))
        return orig(q, k, v, scale, impl=impl, chunk=chunk)

    monkeypatch.setattr(segformer_mod, "attention", spy)
    monkeypatch.setattr(lean_mod, "attention", spy)
    m = copy.deepcopy(small).set_attention("plain", chunk=4)
    x = _rgb(64, 64)
    runs = {
        "whole": lambda: predict(m, x, InferenceMode.exact(lean=False)),
        "fast": lambda: predict(m, x, "fast"),
        "analyze": lambda: tl.analyze(m, (x[0].permute(1, 2, 0).numpy() * 256).astype(np.uint8)),
    }
    for name, run in runs.items():
        seen.clear()
        run()
        assert seen and set(seen) == {("plain", 4)}, (name, set(seen))
    seen.clear()
    predict(m, x, InferenceMode.exact(lean=True))  # the lean forward chunks by its budget, at most 4
    assert seen and {impl for impl, _ in seen} == {"plain"} and all(c is None or c <= 4 for _, c in seen), set(seen)
    seen.clear()
    predict(m, x, InferenceMode.exact(lean=False, chunks=LeanConfig(attention="sdpa", attn_chunk=7)))
    assert set(seen) == {("sdpa", 7)}
    assert {(b.attn.impl, b.attn.chunk) for b in m.backbone.block1} == {("plain", 4)}
    # the same network: plain, chunked and SDPA differ by float32 rounding only
    ref = predict(small, x)
    assert (predict(m, x).map - ref.map).abs().max() <= 1e-5


# -- precision settings of the caller -------------------------------------------------------
def test_fast_mode_ignores_a_global_bf16_float32_setting(recipe_ckpt, tmp_path):
    """``torch.backends.mkldnn.fp32_precision = "bf16"`` (a user's global setting) reached the
    fast mode's float32 encoder (the map moved by ~1e-8 on a CPU without native bfloat16; more
    where oneDNN has bfloat16); exact was pinned, fast was not. Run in its own process: PyTorch's
    precision settings do not all come back from "bf16" (its legacy getters then raise)."""
    import subprocess
    import sys

    if not isinstance(getattr(torch.backends.mkldnn, "fp32_precision", None), str):
        pytest.skip("this PyTorch has no oneDNN fp32_precision setting")
    script = (
        "import sys, torch; from trufor_lab.inference.load import load_trufor; "
        "from trufor_lab.inference.predict import predict\n"
        "m = load_trufor(sys.argv[1]); x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))\n"
        "ref = predict(m, x, 'fast'); torch.backends.mkldnn.fp32_precision = 'bf16'\n"
        "out = predict(m, x, 'fast')\n"
        "assert torch.backends.mkldnn.fp32_precision == 'bf16', 'the caller setting is left as it was'\n"
        "assert torch.equal(out.logits, ref.logits) and torch.equal(out.conf_logits, ref.conf_logits)\n"
    )
    p = subprocess.run([sys.executable, "-c", script, str(recipe_ckpt)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]


def test_edge_inputs_get_one_line_or_the_same_picture(tmp_path):
    from trufor_lab.inference.preprocess import load_image

    with pytest.raises(ImageError, match="no pixels"):
        load_image(np.zeros((0, 5, 3), np.float32))
    rgb16 = np.random.default_rng(0).integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    assert np.array_equal(load_image(rgb16.astype(">u2")).rgb, load_image(rgb16).rgb)
    rgba = np.random.default_rng(1).integers(0, 256, (40, 41, 4), dtype=np.uint8)
    chw = torch.from_numpy(rgba).permute(2, 0, 1).contiguous()
    assert np.array_equal(load_image(chw).rgb, load_image(rgba).rgb)
    with pytest.raises(TypeError, match="must be a network.*str"):
        tl.analyze("weights/trufor_demo.pt", rgba[..., :3])
    with pytest.raises(ValueError, match="not a string"):
        InferenceMode.fast(keep_float32="fusion")
    with pytest.raises(ValueError, match="precision must be one of"):
        tl.load(precision="float16")
    r = tl.analyze(tl.load(device="cpu"), np.ascontiguousarray(rgba[..., :3]))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        r.save_npz(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: InferenceMode.fast(amp_dtype=torch.float64, amp_on_cpu=True), "amp_dtype"),
        (lambda: InferenceMode.fast(amp_dtype=torch.int8), "amp_dtype"),
        (lambda: InferenceMode.fast(amp_dtype="bfloat16"), "amp_dtype"),
        (lambda: InferenceMode.exact(amp_on_cpu=True), "fast mode only"),
        (lambda: InferenceMode.exact(keep_float32=("fusion",)), "fast mode only"),
        (lambda: InferenceMode.exact(noiseprint_winograd=True), "fast mode only"),
        (lambda: InferenceMode.exact(noiseprint_channels_last=True), "fast mode only"),
        (lambda: InferenceMode.exact(lean="no"), "lean: True, False or None"),
        (lambda: InferenceMode.exact(chunks={"rows": 2}), "chunks: a LeanConfig"),
    ],
)
def test_mode_options_that_would_be_ignored_or_change_exact_are_refused(make, why):
    """Each was accepted: an autocast dtype PyTorch drops (recorded as run), exact running
    Winograd or ignoring fast-only options, a truthy string taken as lean=True."""
    with pytest.raises(ValueError, match=why):
        make()


def test_a_list_of_parts_is_a_tuple_and_the_mode_stays_hashable():
    m = InferenceMode.fast(keep_float32=["fusion"])
    assert m.keep_float32 == ("fusion",) and hash(m) == hash(InferenceMode.fast(keep_float32=("fusion",)))


def test_untrained_with_another_noiseprint_depth_is_one_line():
    import dataclasses

    from trufor_lab.model import MIT_B2

    with pytest.raises(ValueError, match=r"real Noiseprint\+\+ has 17 levels; this config asks for 5"):
        tl.untrained(dataclasses.replace(MIT_B2, np_levels=5))
