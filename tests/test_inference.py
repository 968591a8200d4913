"""Inference modes: the lean exact forward is the network (chunking changes rounding only)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import trufor_lab as tl
from trufor_lab.inference.predict import (
    InferenceMode,
    attention_override,
    deviation,
    deviation_quantiles,
    predict,
    predict_result,
    resolve_mode,
)
from trufor_lab.inference.preprocess import to_tensor
from trufor_lab.model.decoder import folded_decode
from trufor_lab.model.lean import LeanConfig, estimate_lean_peak, estimate_plain_peak, lean_features, noiseprint_halo

# float32 rounding of a reordered computation: far below the shared float32 tolerances (1e-3)
TOL = 2e-5


@pytest.fixture(scope="module")
def crops(tampered2) -> torch.Tensor:
    """Two 40x52 crops of an official sample, as a batch (sizes not multiples of 32)."""
    return torch.cat([to_tensor(tampered2[r : r + 40, r : r + 52]) for r in (40, 130)])


@pytest.fixture(scope="module")
def reference(recipe_model, crops):
    with torch.no_grad():
        return recipe_model(crops)


@pytest.mark.parametrize(
    "cfg,given_np",
    [
        (LeanConfig(rows=1, attn_chunk=5, tile=24), False),
        (LeanConfig(rows=2, attn_chunk=37, attention="plain"), True),
    ],
    ids=["rows1-sdpa-tiles", "rows2-plain"],
)
def test_lean_forward_matches_model_with_tiny_chunks(recipe_model, crops, reference, cfg, given_np):
    """Every chunked path (tiles, row chunks with halos, query chunks, decoder rows) is taken."""
    np_in = reference.noiseprint if given_np else None
    out = predict(recipe_model, crops, InferenceMode.exact(lean=True, chunks=cfg), noiseprint=np_in)
    if not given_np:
        # Noiseprint++ tiles with a 17-pixel halo: the full-image (folded) map
        assert (out.noiseprint - recipe_model.dncnn.forward_folded(crops)).abs().max() <= 1e-6
    with torch.no_grad():
        ref = recipe_model(crops, noiseprint=out.noiseprint)
    assert out.map.shape == ref.map.shape == (2, 40, 52)
    d = deviation(out, ref)
    assert d["map"] <= TOL and d["conf"] <= TOL and d["score"] <= TOL, d
    assert (out.logits - ref.logits).abs().max() <= 1e-4
    if given_np:
        with torch.no_grad():
            feats = lean_features(recipe_model, crops, ref.noiseprint, cfg)
            ref_feats = recipe_model.forward_features(crops, ref.noiseprint)
        for i, (a, b) in enumerate(zip(feats, ref_feats)):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-4, f"fused stage {i + 1}"


def test_noiseprint_tiles_are_the_full_convolution(shared_dir, tampered2):
    net = tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th")
    assert noiseprint_halo(net) == 17
    x = to_tensor(tampered2[:36, :60])
    with torch.no_grad():
        full = net.forward_folded(x)
        unfolded = net(x)
    got = predict(net, x, InferenceMode.exact(chunks=LeanConfig(tile=20)))  # 2 x 3 tiles
    assert got.shape == full.shape
    assert (got - full).abs().max() <= 1e-6
    assert (got - unfolded).abs().max() <= 5e-3  # BatchNorm folding: float32 rounding only
    r = predict_result(net, tampered2[:36, :60])  # Noiseprint++ alone: map only, with the notice
    assert r.map is None and r.score is None and "checkpoint" in r.notice
    assert np.abs(r.noiseprint - full[0, 0].numpy()).max() <= 1e-6


def test_exact_mode_meets_parity_fixture(recipe_model, parity_dir, parity_input):
    """The lean path with moderate chunks against the official float64 outputs (the fixture's
    Noiseprint++ map is given: its tiling is checked above, its parity in test_parity.py)."""
    expected = np.load(parity_dir / "parity_expected.npz")
    x = to_tensor(parity_input.copy())
    np_map = torch.from_numpy(expected["noiseprint"]).float()[None, None]
    mode = InferenceMode.exact(chunks=LeanConfig(rows=16, attn_chunk=300))
    out = predict(recipe_model, x, mode, noiseprint=np_map)
    for k, (tmax, tmean) in {"map": (1e-3, 1e-4), "conf": (1e-3, 1e-4)}.items():
        err = np.abs(getattr(out, k)[0].double().numpy() - expected[k])
        assert err.max() <= tmax and err.mean() <= tmean, (k, err.max(), err.mean())
    assert abs(float(out.score[0]) - float(expected["score"])) <= 2e-4


def test_exact_mode_in_float64_is_the_official_network(recipe_model, parity_dir, parity_input):
    """Chunked and in float64, the lean path reproduces the official outputs to 1e-6."""
    expected = np.load(parity_dir / "parity_expected.npz")
    m64 = copy.deepcopy(recipe_model).double()
    x = to_tensor(parity_input.copy(), dtype=torch.float64)
    np_map = torch.from_numpy(expected["noiseprint"])[None, None]
    out = predict(m64, x, InferenceMode.exact(chunks=LeanConfig(rows=20, attn_chunk=500)), noiseprint=np_map)
    assert out.logits.dtype == torch.float64
    for k in ("map", "conf"):
        assert np.abs(getattr(out, k)[0].numpy() - expected[k]).max() <= 1e-6, k
    assert abs(float(out.score[0]) - float(expected["score"])) <= 1e-6


def test_fast_mode_is_close_but_opt_in(recipe_model, tampered2):
    """Fast mode on a real sample image: Noiseprint++ IEEE float32 (channels-last) and, on the
    CPU, a float32 encoder: within the float32 parity tolerances, whatever the CPU."""
    assert resolve_mode("exact").name == "exact" and resolve_mode("fast").name == "fast"
    x = to_tensor(tampered2[40:200, 24:232])  # 160 x 208 of an official sample
    exact = predict(recipe_model, x)
    out = predict(recipe_model, x, "fast")
    assert out.logits.dtype == torch.float32 and out.noiseprint.dtype == torch.float32
    d = deviation(out, exact)
    assert 0 < d["noiseprint"] <= 5e-3, d  # float32 both, summed in another order
    assert d["map"] <= 1e-3 and d["conf"] <= 1e-3 and d["score"] <= 2e-4, d
    q = deviation_quantiles(out, exact)
    assert q["map"]["q99"] <= d["map"] and q["conf"]["q50"] <= q["conf"]["q99.9"], q
    with pytest.raises(ValueError, match="keep_float32"):
        InferenceMode.fast(keep_float32=("decoder",))
    # bfloat16 autocast through the lean forward (row chunks, float32 context sums)
    mode = InferenceMode.fast(lean=True, amp_on_cpu=True, chunks=LeanConfig(rows=7))
    lean = predict(recipe_model, x, mode, noiseprint=exact.noiseprint)
    assert lean.logits.dtype == torch.float32 and torch.isfinite(lean.logits).all()
    d = deviation(lean, exact)
    assert d["noiseprint"] == 0 and d["map"] <= 1e-2 and d["score"] <= 1e-2, d


def test_fast_noiseprint_meets_the_float32_tolerance(shared_dir, parity_dir, tampered2):
    """The fast mode's channels-last Noiseprint++, whole and in halo tiles, against the official
    float64 map of a whole sample: the shared float32 tolerance."""
    net = tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th")
    ref = np.load(parity_dir / "noiseprint_tampered2.npz")["noiseprint"]
    x = to_tensor(tampered2)
    for mode in (InferenceMode.fast(), InferenceMode.fast(chunks=LeanConfig(tile=96))):
        got = predict(net, x, mode)[0, 0].double().numpy()
        err = np.abs(got - ref)
        assert err.max() <= 5e-3 and err.mean() <= 2e-4, (mode.chunks, err.max(), err.mean())


def test_exact_whole_image_path_meets_parity_fixture(recipe_model, parity_dir, parity_input):
    """The default exact path (whole image: folded Noiseprint++ and decoders, SDPA, channels-last)
    against the official float64 outputs: float32 tolerances, and 1e-6 in float64."""
    expected = np.load(parity_dir / "parity_expected.npz")
    for dtype in (torch.float32, torch.float64):
        m = recipe_model if dtype == torch.float32 else copy.deepcopy(recipe_model).double()
        out = predict(m, to_tensor(parity_input.copy(), dtype=dtype), InferenceMode.exact(lean=False))
        assert out.logits.dtype == dtype
        tol = {"noiseprint": (5e-3, 2e-4), "map": (1e-3, 1e-4), "conf": (1e-3, 1e-4)}
        if dtype == torch.float64:
            tol = {k: (1e-6, 1e-6) for k in tol}
        for k, (tmax, tmean) in tol.items():
            got = getattr(out, k)[0, 0] if k == "noiseprint" else getattr(out, k)[0]
            err = np.abs(got.double().numpy() - expected[k])
            assert err.max() <= tmax and err.mean() <= tmean, (dtype, k, err.max(), err.mean())
        assert abs(float(out.score[0]) - float(expected["score"])) <= (2e-4 if dtype == torch.float32 else 1e-6)


def test_folded_batchnorm_is_the_unfolded_network(recipe_model, tampered2):
    """Noiseprint++ with BatchNorm folded into its convolutions, and the folded decoders, equal
    the modules as written: 1e-9 in float64, float32 rounding in float32."""
    x = to_tensor(tampered2[:64, :80])
    for dtype, tol_np, tol_dec in ((torch.float64, 1e-9, 1e-9), (torch.float32, 2e-3, 1e-4)):
        m = copy.deepcopy(recipe_model).to(dtype)
        xd = x.to(dtype)
        with torch.no_grad():
            np_plain, np_folded = m.dncnn(xd), m.dncnn.forward_folded(xd)
            feats = m.forward_features(xd, np_plain)
            plain = [m.decode_head(feats), m.decode_head_conf(feats)]
            folded = folded_decode((m.decode_head, m.decode_head_conf), feats)
        assert (np_plain - np_folded).abs().max() <= tol_np, dtype
        for a, b in zip(plain, folded):
            assert a.shape == b.shape and (a - b).abs().max() <= tol_dec, dtype
    with pytest.raises(ValueError, match="eval"):
        copy.deepcopy(recipe_model.dncnn).train().forward_folded(x)


@pytest.mark.parametrize("channels_last", [False, True])
def test_noiseprint_relu_inside_the_convolution_changes_no_value(recipe_model, tampered2, channels_last):
    """On the CPU the folded Noiseprint++ runs each ReLU as oneDNN's post-op of its convolution:
    the same values, bit for bit, as the convolution followed by a ReLU, in both layouts."""
    from trufor_lab.model.noiseprint import conv_relu, exact_float32

    net = recipe_model.dncnn
    x = to_tensor(tampered2[:70, :90]).repeat(2, 1, 1, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with exact_float32(True), torch.no_grad():
        ref = x.contiguous(memory_format=fmt)
        for w, b, pad, relu in net.folded():
            ref = torch.nn.functional.conv2d(ref, w.contiguous(memory_format=fmt), b, padding=pad)
            if relu:
                ref = ref.relu_()
        w, b, pad, _ = net.folded()[1]
        y = torch.rand(1, 64, 33, 47).contiguous(memory_format=fmt)
        single = conv_relu(y, w.contiguous(memory_format=fmt), b, pad)
        assert torch.equal(single, torch.nn.functional.conv2d(y, w, b, padding=pad).relu_())
        assert single.min() == 0 and single.is_contiguous(memory_format=fmt)
    assert torch.equal(net.forward_folded(x, True, channels_last), ref.contiguous())
    # float64 (no oneDNN) takes the unfused path and still applies the ReLU
    y64 = torch.randn(1, 64, 9, 11, dtype=torch.float64)
    w64, b64 = w.double(), b.double()
    assert torch.equal(
        conv_relu(y64, w64, b64, pad), torch.nn.functional.conv2d(y64, w64, b64, padding=pad).clamp_min(0)
    )


def test_modes_validate_and_model_settings_are_restored(recipe_model, crops):
    with pytest.raises(ValueError):
        resolve_mode("turbo")
    with pytest.raises(ValueError):
        InferenceMode.exact(amp_dtype=torch.bfloat16)
    attn = recipe_model.backbone.block1[0].attn
    before = (attn.impl, attn.chunk)
    with attention_override(recipe_model, "plain", 7):
        assert (attn.impl, attn.chunk) == ("plain", 7)
    assert (attn.impl, attn.chunk) == before
    recipe_model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            predict(recipe_model, crops)
    finally:
        recipe_model.eval()


@pytest.mark.parametrize("asked", ["torch.backends.fp32_precision", "torch.backends.cudnn.fp32_precision"])
def test_ieee_context_turns_off_tf32_asked_above_the_conv_setting(asked):
    """`torch.backends.fp32_precision = "tf32"` (PyTorch's newer API): the legacy flag the
    context set wrote 'none' to the conv setting, which inherits TF32 from above, so cuDNN
    convolutions (Noiseprint++, the exact encoder) stayed TF32 on Ampere GPUs. Settable and
    readable without a GPU."""
    code = textwrap.dedent(f"""
        import torch
        from trufor_lab.model.precision import ieee_float32
        torch.cuda.is_available = lambda: True  # cuDNN's settings are only touched where CUDA runs
        c = torch.backends.cudnn
        {asked} = "tf32"
        assert c.conv.fp32_precision == c.rnn.fp32_precision == "tf32"
        with ieee_float32():
            assert c.conv.fp32_precision == c.rnn.fp32_precision == "ieee"
            with ieee_float32():
                pass
            assert c.conv.fp32_precision == c.rnn.fp32_precision == "ieee", "after a nested context"
        assert c.conv.fp32_precision == c.rnn.fp32_precision == "tf32" and c.allow_tf32
        print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_ieee_context_restores_flags_for_legacy_and_new_tf32_apis():
    """No global state: TF32 flags come back as they were, whichever API the user set them with."""
    code = textwrap.dedent("""
        import torch
        from trufor_lab.model.lean import ieee_float32
        torch.cuda.is_available = lambda: True  # cuDNN's settings are only touched where CUDA runs
        m, c, mk = torch.backends.cuda.matmul, torch.backends.cudnn, torch.backends.mkldnn
        m.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        with ieee_float32(onednn=False):
            assert not m.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
            assert not c.allow_tf32 and not mk.enabled
        assert m.allow_tf32 and torch.get_float32_matmul_precision() == "high" and c.allow_tf32
        assert mk.enabled
        torch.set_float32_matmul_precision("medium")  # its getter raised after one analysis
        with ieee_float32():
            pass
        assert torch.get_float32_matmul_precision() == "medium"
        m.allow_tf32 = False
        m.fp32_precision = "tf32"        # new API, now at odds with the legacy flag
        c.conv.fp32_precision = "ieee"   # conv and rnn apart: legacy reads refuse
        with ieee_float32():
            assert m.fp32_precision == "ieee" and c.conv.fp32_precision == c.rnn.fp32_precision == "ieee"
        assert m.fp32_precision == "tf32" and c.conv.fp32_precision == "ieee" and c.rnn.fp32_precision == "tf32"
        print("ok")
    """)
    p = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_ieee_context_leaves_every_fp32_precision_setting_as_it_was_and_overrides_onednn_leaves():
    """After one analysis the matmul settings (cuda, oneDNN) read 'ieee' instead of 'none', so a
    later `torch.backends.fp32_precision = "tf32"` of the user's left matmuls in IEEE; and a
    user's `mkldnn.conv.fp32_precision = "bf16"` stayed in force inside the exact context
    (oneDNN's conv setting takes precedence over its general one)."""
    code = textwrap.dedent("""
        import torch
        from trufor_lab.model.precision import ieee_float32
        b = torch.backends
        leaves = lambda: (b.fp32_precision, b.cuda.matmul.fp32_precision, b.mkldnn.fp32_precision,
                          b.mkldnn.matmul.fp32_precision, b.mkldnn.conv.fp32_precision, b.cudnn.conv.fp32_precision)
        fresh = leaves()
        with ieee_float32():
            pass
        assert leaves() == fresh, (fresh, leaves())
        b.fp32_precision = "tf32"
        assert b.cuda.matmul.fp32_precision == b.mkldnn.matmul.fp32_precision == "tf32"
        b.fp32_precision = "none"
        b.mkldnn.conv.fp32_precision = "bf16"
        with ieee_float32():
            assert b.mkldnn.conv.fp32_precision == b.mkldnn.matmul.fp32_precision == "ieee"
        assert b.mkldnn.conv.fp32_precision == "bf16"
        print("ok")
    """)
    p = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


_USER_SETTINGS = [
    ("torch.backends.mkldnn.fp32_precision = 'bf16'", "torch.backends.mkldnn.fp32_precision = 'none'"),
    ("torch.backends.fp32_precision = 'tf32'", "torch.backends.fp32_precision = 'none'"),
    ("torch.backends.cudnn.conv.fp32_precision = 'ieee'", "torch.backends.cudnn.fp32_precision = 'ieee'"),
    ("torch.set_float32_matmul_precision('high')", "torch.backends.fp32_precision = 'bf16'"),
    ("torch.backends.cudnn.allow_tf32 = False", "torch.backends.fp32_precision = 'tf32'"),
    ("torch.backends.mkldnn.matmul.fp32_precision = 'bf16'", "torch.backends.mkldnn.fp32_precision = 'ieee'"),
    ("pass", "torch.backends.fp32_precision = 'ieee'"),
]


def test_ieee_context_leaves_no_trace_a_later_setting_meets():
    """A user who set ``mkldnn.fp32_precision = "bf16"``, ran an analysis and set it back to
    "none" found oneDNN still at bf16 and ``torch.get_float32_matmul_precision()`` raising: the
    context wrote back what it had read, pinning settings that followed their parent. Each user
    sequence (set, analysis, set again) must end where it ends without the analysis; each runs in
    a forked child of one process (precision settings are process-wide)."""
    if not hasattr(torch._C, "_get_fp32_precision_getter"):
        pytest.skip("this PyTorch has no fp32_precision settings")
    code = textwrap.dedent("""
        import json, os, sys, torch
        from trufor_lab.model.precision import ieee_float32
        b = torch.backends

        def state():
            out = {n: o.fp32_precision for n, o in [
                ("general", b), ("cudnn", b.cudnn), ("cudnn.conv", b.cudnn.conv), ("cudnn.rnn", b.cudnn.rnn),
                ("cuda.matmul", b.cuda.matmul), ("mkldnn", b.mkldnn), ("mkldnn.conv", b.mkldnn.conv),
                ("mkldnn.matmul", b.mkldnn.matmul), ("mkldnn.rnn", b.mkldnn.rnn)]}
            for n, f in [("legacy matmul", torch.get_float32_matmul_precision),
                         ("cudnn.allow_tf32", lambda: b.cudnn.allow_tf32),
                         ("matmul.allow_tf32", lambda: b.cuda.matmul.allow_tf32)]:
                try:
                    out[n] = f()
                except RuntimeError:
                    out[n] = "raises"
            return out

        def run(first, then, analysis):
            r, w = os.pipe()
            if os.fork() == 0:
                exec(first)
                if analysis:
                    with ieee_float32():
                        pass
                    with ieee_float32(onednn=False):
                        pass
                exec(then)
                os.write(w, json.dumps(state()).encode())
                os._exit(0)
            os.close(w)
            os.wait()
            return json.loads(os.read(r, 65536))

        for first, then in json.loads(sys.argv[1]):
            print(json.dumps([first, then, run(first, then, False), run(first, then, True)]))
    """)
    p = subprocess.run(
        [sys.executable, "-c", code, json.dumps(_USER_SETTINGS)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == len(_USER_SETTINGS)
    for first, then, plain, analysed in rows:
        assert analysed == plain, f"{first}; analysis; {then}"


def test_ieee_context_works_with_a_pytorch_without_the_onednn_precision_api(monkeypatch):
    """PyTorch releases whose ``mkldnn.flags`` take no ``fp32_precision`` still switch oneDNN."""
    import contextlib

    from trufor_lab.model.lean import ieee_float32

    mk = torch.backends.mkldnn
    real = mk.flags
    calls = []

    @contextlib.contextmanager
    def old_flags(enabled=False):  # the signature of those releases
        calls.append(enabled)
        with real(enabled=enabled, deterministic=mk.deterministic, allow_tf32=None):
            yield

    monkeypatch.setattr(mk, "flags", old_flags)
    before = mk.enabled
    with ieee_float32(onednn=False):
        assert not mk.enabled
    assert mk.enabled == before and calls == [False]


def test_memory_estimates_for_a_24_megapixel_photo():
    """The lean forward's analytic peak fits 24 GB with room to spare; the plain one cannot."""
    lean = estimate_lean_peak(4000, 6000)
    assert lean["peak"] < 8e9 and set(lean) >= {"noiseprint", "stage1", "ffm1", "decoders", "heads"}
    assert estimate_plain_peak(4000, 6000, device_type="cuda", attention_impl="sdpa") > 24e9
    assert estimate_plain_peak(4000, 6000, device_type="cpu") > 24e9
    # float64 on a GPU: SDPA's fused kernels do not take it, the formula's scores do count (about
    # 70 GB of stage-1 scores at 12 MP were left out: the plain forward was picked and ran out)
    f64 = estimate_plain_peak(3000, 4000, device_type="cuda", attention_impl="sdpa", element_size=8)
    assert f64 > 60e9 > 2 * estimate_plain_peak(3000, 4000, device_type="cuda", attention_impl="sdpa")
    # chunk sizes follow the budget: a tiny budget still runs (one row, one query at a time)
    assert estimate_lean_peak(64, 64, budget_bytes=0)["peak"] > 0


def _pretend_free(monkeypatch, free: int) -> None:
    import trufor_lab.inference.analyze as an
    import trufor_lab.inference.predict as inf
    import trufor_lab.model.lean as lean_mod

    for mod in (an, inf, lean_mod):
        monkeypatch.setattr(mod, "free_memory_bytes", lambda device: free)


def test_lean_chunks_leave_room_for_the_lean_forwards_own_tensors(recipe_model, monkeypatch):
    """A 24 MP photo with 2.5 GiB free: its lean tensors take 2.15 GiB, so the chunk working set
    must fit in what is left (a quarter of free memory, 0.62 GiB, ran past it: killed)."""
    import trufor_lab.model.lean as lean_mod

    free, (h, w) = int(2.5 * 2**30), (6000, 4000)
    _pretend_free(monkeypatch, free)
    seen = []

    def spy(model, rgb, noiseprint, cfg):
        seen.append(cfg.budget_bytes)
        raise KeyboardInterrupt  # stop before the work: the budget is what is checked

    monkeypatch.setattr(lean_mod, "lean_features", spy)
    rgb, np_map = torch.zeros(1, 3, 1, 1).expand(1, 3, h, w), torch.zeros(1, 1, 1, 1).expand(1, 1, h, w)
    with pytest.raises(KeyboardInterrupt):
        lean_mod.lean_forward(recipe_model, rgb, np_map)
    tensors = estimate_lean_peak(h, w, budget_bytes=0)["peak"]
    assert tensors < free and 32 * 2**20 <= seen[0] <= (free - tensors) // 2


def test_analyze_refuses_an_image_the_lean_forward_cannot_fit_in_one_line(recipe_model, small_image, monkeypatch):
    """Too little free memory even for the lean forward: refused before any work, naming the image
    and the sizes (it ran into the allocator's error or the kernel's OOM killer instead)."""
    _pretend_free(monkeypatch, 8 * 2**20)
    with pytest.raises(tl.ImageError, match=r"^crop: a 96x96 image needs about 3\d MiB even with the memory-lean"):
        tl.analyze(recipe_model, small_image, name="crop")
    with pytest.raises(tl.ImageError, match="memory-lean forward, 8 MiB free"):
        tl.analyze(recipe_model.dncnn, small_image, name="crop")
    # the estimate ran 7-10% under the measured peak RSS: a margin, as for the plain forward
    from trufor_lab.inference.predict import lean_peak_bytes

    _pretend_free(monkeypatch, int(1.1 * lean_peak_bytes(recipe_model, to_tensor(small_image))))
    with pytest.raises(tl.ImageError, match="even with the memory-lean forward"):
        tl.analyze(recipe_model, small_image, name="crop", lean=True)  # the plain one fits: forced


def test_where_free_memory_is_only_guessed_nothing_is_refused_and_chunks_are_as_before(
    recipe_model, small_image, monkeypatch
):
    """On macOS or Windows free memory is a guess (4 GiB without /proc/meminfo): a 12 MP photo,
    whose lean forward needs ~4.9 GiB and runs on a 16 GB laptop, was refused there, and its
    chunks were cut to 32 MiB. Only a measured figure refuses an image or lowers the budget."""
    import trufor_lab.inference.analyze as an
    import trufor_lab.model.lean as lean_mod

    _pretend_free(monkeypatch, 8 * 2**20)
    for mod in (an, lean_mod):
        monkeypatch.setattr(mod, "free_memory_measured", lambda device: False)
    r = tl.analyze(recipe_model, small_image, name="crop")  # the lean forward, not a refusal
    assert any("memory-lean" in n for n in r.notes), r.notes
    assert lean_mod.fitting_budget(6000, 4000, "cpu") == lean_mod.default_budget("cpu")


def test_analyze_routes_images_too_large_for_memory_to_the_lean_forward(recipe_model, small_image, monkeypatch):
    """analyze() picks the lean forward when the plain one would not fit (simulated here by
    pretending little memory is free): same answer, a note in the result; capture is refused
    with a one-line reason instead of exhausting memory."""
    import trufor_lab.inference.predict as inf

    plain = tl.analyze(recipe_model, small_image)
    assert not any("lean" in n for n in plain.notes)
    need = inf.plain_peak_bytes(recipe_model, to_tensor(small_image))
    monkeypatch.setattr(inf, "free_memory_bytes", lambda device: need // 2)
    lean = tl.analyze(recipe_model, small_image)
    assert any("memory-lean exact forward" in n for n in lean.notes)
    # the lean path folds Noiseprint++'s BatchNorms: float32 rounding, well inside the tolerances
    assert np.abs(lean.map - plain.map).max() < 1e-4 and abs(lean.score - plain.score) < 2e-5
    assert np.abs(lean.noiseprint - plain.noiseprint).max() < 1e-3
    with pytest.raises(tl.ImageError, match=r"cannot capture layers of a 96x96 image \(needs about"):
        tl.analyze(recipe_model, small_image, capture=["rgb.stage1.out"])
    forced_plain = tl.analyze(recipe_model, small_image, lean=False)  # the caller's choice wins
    assert not any("lean" in n for n in forced_plain.notes)
    # Noiseprint++ alone is routed too (tiled: the full folded convolution)
    np_only = tl.analyze(recipe_model.dncnn, small_image)
    assert np.array_equal(np_only.noiseprint, lean.noiseprint) and np_only.notes


def test_a_compiled_model_is_freed_with_its_model():
    """The compiled-module cache must not keep models alive (it once held them forever)."""
    import gc
    import weakref

    import torch

    from trufor_lab.inference import predict as inf

    class Net(torch.nn.Sequential):  # what _compiled compiles: the encoder's forward_features
        def forward_features(self, x, noiseprint):
            return [self(x)]

    model = Net(torch.nn.Linear(2, 2))
    compiled = inf._compiled(model)
    assert inf._compiled(model) is compiled  # compiled once per model
    assert "_trufor_lab_compiled" not in dict(model.named_modules()) and list(model.state_dict()) == [
        "0.weight",
        "0.bias",
    ]
    ref = weakref.ref(model)
    del model, compiled
    gc.collect()
    assert ref() is None


def test_a_copy_of_a_compiled_model_does_not_keep_the_original_alive():
    """``copy.deepcopy`` copied the cached compiled encoder as itself: bound to the original
    model, it kept that model (its weights, on a GPU too) alive as long as the copy lived, after
    ``del model``. The copy gets no compiled encoder, and compiles its own when asked."""
    import gc
    import weakref

    import torch

    from trufor_lab.inference import predict as inf

    class Net(torch.nn.Sequential):  # what _compiled compiles: the encoder's forward_features
        def forward_features(self, x, noiseprint):
            return [self(x)]

    model = Net(torch.nn.Linear(2, 2))
    compiled = inf._compiled(model)
    twin = copy.deepcopy(model)
    ref = weakref.ref(model)
    del model, compiled
    gc.collect()
    assert ref() is None
    again = inf._compiled(twin)
    assert inf._compiled(twin) is again


def test_a_copy_of_a_model_whose_encoder_was_compiled_runs_its_own_weights(monkeypatch, tiny):
    """``copy.deepcopy`` copies a function as itself: a copy of a model whose encoder the fast mode
    had compiled (``compile=True``) ran the original's compiled encoder, bound to the original
    model, so a copy moved to a GPU (``copy.deepcopy(model).to("cuda")``: a device mismatch) or
    changed (its own weights never read: the original's answer, unsaid) did not run itself.
    ``torch.compile`` is replaced by a wrapper function, what it returns for a method."""
    from trufor_lab.inference import predict as inf

    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: lambda *args, **kw: fn(*args, **kw))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mode = inf.InferenceMode.fast(compile=True)
    try:
        inf.predict(tiny, x, mode)  # the original's encoder compiled, cached on it
        twin = copy.deepcopy(tiny)
        with torch.no_grad():
            for p in twin.backbone.parameters():
                p.add_(0.05)
        got = inf.predict(twin, x, mode)
        eager = inf.predict(twin, x, inf.InferenceMode.fast())
        assert not torch.equal(eager.logits, inf.predict(tiny, x, inf.InferenceMode.fast()).logits)
        for k in ("logits", "conf_logits", "det_logit"):
            assert torch.equal(getattr(got, k), getattr(eager, k)), k
    finally:
        tiny.__dict__.pop(inf._COMPILED_ATTR, None)  # the module's model, as it was


def test_non_finite_output_is_an_error_not_a_score(small_image):
    """A network that overflows (here: a weight set to Inf after loading) must not report
    'score nan' as an analysis: the error names the image."""
    from trufor_lab.inference.result import NonFiniteOutput
    from trufor_lab.model import MIT_B0, TruFor

    model = TruFor(MIT_B0).eval()
    assert np.isfinite(tl.analyze(model, small_image, name="ok.png").score)
    with torch.no_grad():
        model.decode_head.linear_pred.bias[1] = float("inf")
    with pytest.raises(NonFiniteOutput, match=r"^bad\.png: the network's output is not finite .*logits"):
        tl.analyze(model, small_image, name="bad.png")


def test_a_callers_autocast_does_not_lower_the_fast_mode(recipe_model, tampered2):
    """Inside a user's ``torch.autocast("cpu", bfloat16)`` the fast mode ran its encoder (without
    the parts it keeps float32) and decoders in bfloat16: map 1.7e-2 off, as an option it never
    offered. It now computes what it computes outside; exact already did."""
    x = to_tensor(tampered2[:96, :96].copy())
    ref = predict(recipe_model, x, "fast")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = predict(recipe_model, x, "fast")
        assert torch.is_autocast_enabled("cpu")  # the caller's autocast comes back
    for f in ("logits", "conf_logits", "det_logit", "noiseprint"):
        assert torch.equal(getattr(out, f), getattr(ref, f)), f


def test_fast_mode_uses_bfloat16_on_a_cpu_only_when_asked(recipe_model, tampered2, monkeypatch):
    """On CPUs with native bfloat16 the fast mode used it by default and moved the map by ~2e-2,
    twice the 1e-2 it promises (bench/RESULTS.md); it is now opt-in there (``amp_on_cpu``).
    Native support is pretended, so this runs on any CPU."""
    from trufor_lab.inference import modes as M
    from trufor_lab.inference import predict as P

    monkeypatch.setattr(M, "cpu_has_native_bf16", lambda: True)
    fast, f32 = InferenceMode.fast(), InferenceMode.fast(amp_dtype=None)
    assert not P.uses_autocast(fast, "cpu") and P.uses_autocast(fast, "cuda")
    assert P.uses_autocast(InferenceMode.fast(amp_on_cpu=None), "cpu")
    assert P.uses_autocast(InferenceMode.fast(amp_on_cpu=True), "cpu") and not P.uses_autocast("exact", "cuda")
    x = to_tensor(tampered2[40:136, 24:152])
    np_map = predict(recipe_model, x).noiseprint
    out, out32 = (predict(recipe_model, x, m, noiseprint=np_map) for m in (fast, f32))
    bf16 = predict(recipe_model, x, InferenceMode.fast(amp_on_cpu=None), noiseprint=np_map)
    assert torch.equal(out.logits, out32.logits) and torch.equal(out.det_logit, out32.det_logit)
    assert not torch.equal(bf16.logits, out32.logits)
    monkeypatch.setattr(M, "cpu_has_native_bf16", lambda: False)
    assert not P.uses_autocast(InferenceMode.fast(amp_on_cpu=None), "cpu")
    # a GPU older than Ampere emulates bfloat16 (slower than float32): float32 there (pretended)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert P.uses_autocast(fast, "cuda:1") is native, capability
        assert P.uses_autocast(InferenceMode.fast(amp_dtype=torch.float16), "cuda")  # float16: every GPU


def test_bench_skips_a_mode_that_computes_what_an_earlier_one_computes(monkeypatch):
    """``python -m bench`` runs ``fast32`` and ``fast-bf16`` only where they differ from ``fast``."""
    from bench.cli import MODES, same_arithmetic
    from trufor_lab.inference import modes as M

    monkeypatch.setattr(M, "cpu_has_native_bf16", lambda: False)
    assert same_arithmetic(MODES, "cpu") == {"fast32": "fast", "fast-bf16": "fast"}
    assert same_arithmetic(["exact", "fast-bf16"], "cpu") == {}
    monkeypatch.setattr(M, "cpu_has_native_bf16", lambda: True)
    assert same_arithmetic(MODES, "cpu") == {"fast32": "fast"}
    assert same_arithmetic(MODES, "cuda:0") == {"fast-bf16": "fast"}


def test_fast_mode_keeps_the_key_value_reduction_float32_on_cpus(shared_dir):
    """On one CPU with native bfloat16 oneDNN's bfloat16 key/value reduction (an 8x8, stride-8
    convolution in stage 1) moved the demo model's map by up to 0.79 on a real sample (on an AMD
    Zen 4 it does not: how a bfloat16 convolution rounds depends on the CPU's kernel). Under the
    bfloat16 encoder (forced with ``amp_on_cpu``, so on any CPU) the reduction computes in
    float32 by default and in bfloat16 when not kept; the whole stays within the fast bound."""
    from trufor_lab.inference.predict import DEFAULT_KEEP_FLOAT32, _reduced_precision

    assert "reduction" in DEFAULT_KEEP_FLOAT32["cpu"] and InferenceMode.fast().keep_float32 is None
    model = tl.load(device="cpu")
    assert model.weights_info.kind == "demo"
    img = tl.load_image(shared_dir / "images" / "tampered1.png").rgb[256:640, 384:896]
    x = to_tensor(np.ascontiguousarray(img))
    sr = next(m.sr for m in model.backbone.modules() if hasattr(m, "sr") and hasattr(m, "impl"))
    tokens = torch.rand(1, sr.in_channels, 64, 64)
    for keep, dtype in ((None, torch.float32), (("patch_embed", "fusion"), torch.bfloat16)):
        with torch.no_grad(), _reduced_precision(model, x, InferenceMode.fast(amp_on_cpu=True, keep_float32=keep)):
            assert sr(tokens).dtype == dtype, keep
    exact = predict(model, x)
    fast = predict(model, x, InferenceMode.fast(amp_on_cpu=True))
    d, q = deviation(fast, exact), deviation_quantiles(fast, exact)
    assert d["score"] <= 1e-2 and q["map"]["q99.9"] <= 1e-2, (d, q)


def test_sample_images_are_looked_up_one_by_one_and_stand_ins_keep_their_own_name(tmp_path, shared_dir, monkeypatch):
    """A folder holding some official samples serves those; a missing one is replaced by a
    scikit-image picture that is never called by the official name (notebook 01 saved the
    astronaut as ``pristine1.jpg.npz``)."""
    import shutil

    from PIL import Image

    from trufor_lab.inference import samples

    (tmp_path / "images").mkdir()
    shutil.copy(shared_dir / "images" / "tampered2.png", tmp_path / "images")
    monkeypatch.setattr(samples, "official_dirs", lambda: [tmp_path / "images"])
    found = samples.sample("tampered2.png")
    assert found.official and found.name == "tampered2.png"
    rgb, desc = found  # notebooks unpack two values
    assert found[0] is rgb and found[1] == desc
    assert desc == "official sample tampered2.png"
    assert np.array_equal(rgb, np.asarray(Image.open(shared_dir / "images" / "tampered2.png").convert("RGB")))
    stand_in = samples.sample("pristine1.jpg", max_side=64)
    assert not stand_in.official and stand_in.name == "astronaut" and stand_in.rgb.shape == (64, 64, 3)
    assert "stand-in" in stand_in.desc and "pristine1.jpg" in stand_in.desc
    with pytest.raises(ValueError, match="unknown sample"):
        samples.sample("holiday.jpg")


def test_predict_refuses_tensors_it_would_misread(recipe_model, tampered2):
    """An integer tensor of 0..255 ran as if it were RGB / 256 (map off by up to 0.98); a tiny,
    empty or unbatched tensor gave a convolution traceback or killed the process."""
    from trufor_lab.model.lean import lean_forward

    x = to_tensor(tampered2[:64, :64].copy())
    as_uint8 = torch.from_numpy(tampered2[:64, :64].copy()).permute(2, 0, 1)[None]
    for bad, match in (
        (as_uint8, "floating point"),
        (as_uint8.float(), r"takes RGB / 256; got values up to \d+ \(0\.\.255\? divide by 256 first\)"),
        (x[0], r"batch of RGB images .* got shape \(3, 64, 64\)"),
        (x[:0], r"got shape \(0, 3, 64, 64\)"),
        (x[:, :, :20], "64x20; TruFor needs at least 29"),
        (x[:, :, :0], "empty image"),
    ):
        with pytest.raises(ValueError, match=match):
            predict(recipe_model, bad)
    for bad in (x[:0], x[:, :, :20]):
        with pytest.raises(ValueError, match="B >= 1|at least 29"):
            lean_forward(recipe_model, bad)
    with pytest.raises(ValueError, match="floating point"):
        predict(recipe_model.dncnn, as_uint8)
    with pytest.raises(ValueError, match="empty image"):
        predict(recipe_model.dncnn, x[:, :, :0])


def test_fast_mode_of_a_float64_model_runs_in_float64(recipe_model, tampered2):
    """Autocast lowers float32 only: the fast mode's float32-kept parts cast float64 inputs down
    and failed on every image ("Input type (float) and bias type (double)")."""
    m64 = copy.deepcopy(recipe_model).double()
    x = to_tensor(tampered2[:64, :80].copy(), dtype=torch.float64)
    fast = predict(m64, x, InferenceMode.fast(amp_on_cpu=True))
    exact = predict(m64, x, "exact")
    assert fast.logits.dtype == torch.float64
    assert torch.allclose(fast.logits, exact.logits, atol=1e-9)
    assert torch.allclose(fast.det_logit, exact.det_logit, atol=1e-9)


def test_memory_choices_respect_the_process_limit(tmp_path):
    """Under ``ulimit -v`` (as under a container's memory limit) the machine's free memory is
    not this process's: the whole-image forward was chosen and failed to allocate."""
    script = textwrap.dedent(
        """
        import resource, numpy as np, torch
        torch.set_num_threads(1)
        import trufor_lab as tl
        from trufor_lab.common.memory import free_memory_bytes
        m = tl.load(device="cpu")
        img = np.random.default_rng(0).integers(0, 256, (512, 640, 3), dtype=np.uint8)
        tl.analyze(m, img[:64, :64])  # libraries loaded before the limit
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 150 * 2**20, resource.RLIM_INFINITY))
        assert free_memory_bytes("cpu") <= 150 * 2**20
        print("score", tl.analyze(m, img).score)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and "score" in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_whole_image_memory_estimate_is_safe_but_not_wildly_high(tmp_path, mode):
    """The estimate decides whether the faster whole-image forward runs: it must not be below the
    measured peak, and it counted a 9x im2col copy that oneDNN (the default) never makes, so
    images that fit took the slower lean path (estimate 3.8x the measured peak). The fast mode's
    Winograd Noiseprint++ holds NNPACK's workspace (~3.6 maps): counted when it runs."""
    script = textwrap.dedent(
        f"""
        import numpy as np, torch
        torch.set_num_threads(1)
        import trufor_lab as tl
        from trufor_lab.inference import predict as P
        from trufor_lab.inference.preprocess import to_tensor
        m = tl.load(device="cpu")
        img = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
        P.predict(m, to_tensor(img[:64, :64]))
        x = to_tensor(img)
        status = lambda key: [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key)][0]
        with open("/proc/self/clear_refs", "w") as f:  # peak RSS from here (ru_maxrss keeps the parent's)
            f.write("5")
        rss = status("VmRSS:")
        mode = P.InferenceMode.{mode}(lean=False)
        P.predict(m, x, mode)
        print(status("VmHWM:") - rss, P.plain_peak_bytes(m, x, winograd=mode.noiseprint_winograd))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    measured, estimate = map(int, r.stdout.split()[-2:])
    assert measured < estimate < 2.5 * measured, (measured, estimate)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_exif_transpose_turns_the_outputs_of_the_stored_grid_analysis(recipe_model, tampered2, tmp_path, orientation):
    from PIL import Image

    from trufor_lab.inference.predict import predict_result
    from trufor_lab.inference.preprocess import load_image

    path = tmp_path / "turned.jpg"
    im = Image.fromarray(tampered2[40:136, 16:144])  # 128x96: a wrong turn changes the shape
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, quality=90, exif=exif)
    stored = tl.analyze(recipe_model, path)
    shown = tl.analyze(recipe_model, path, exif_transpose=True)
    turned_pixels = load_image(path, exif_transpose=True).rgb
    assert shown.image.shape == turned_pixels.shape and np.array_equal(shown.image, turned_pixels)
    assert shown.score == stored.score  # the network read the same (stored) grid
    for key in ("map", "conf", "noiseprint"):
        got, ref = getattr(shown, key), getattr(stored, key)
        assert got.shape == shown.image.shape[:2]
        assert np.array_equal(got, np.asarray(turned_like(ref, orientation)))
    assert any("analysed as stored, then image and maps" in n for n in shown.notes)
    # turning the pixels first reads a moved JPEG grid: a different answer
    other = tl.analyze(recipe_model, turned_pixels)
    assert not np.allclose(other.map, shown.map, atol=1e-5)
    via_predict = predict_result(recipe_model, path, exif_transpose=True)
    assert np.array_equal(via_predict.map, shown.map) and via_predict.notes == shown.notes
    assert shown.as_shown() is shown
    # pixels turned on loading are analysed turned, and never turned again
    from trufor_lab.inference.result import make_result

    loaded = load_image(path, exif_transpose=True)
    with torch.no_grad():
        pre = make_result(recipe_model, loaded, recipe_model(to_tensor(loaded.rgb)))
    assert pre.shown and pre.as_shown() is pre and pre.map.shape == shown.map.shape
    if shown.size != stored.size:
        with pytest.raises(ValueError, match="turned as viewers show the file"):
            shown.plot(mask=np.zeros(stored.size))  # a stored-grid mask on a turned result
    # an output with turned maps is never reused as one on the stored grid
    from trufor_lab.inference.stored import reuse_problem

    shown.save_npz(tmp_path / "shown.npz", input_sha256="abc", computed="exact float32")
    assert "turned as viewers show" in reuse_problem(tmp_path / "shown.npz", "abc", None, (), "exact float32")
    stored.save_npz(tmp_path / "stored.npz", input_sha256="abc", computed="exact float32")
    assert reuse_problem(tmp_path / "stored.npz", "abc", None, (), "exact float32") is None


def test_a_result_without_confidence_summarises_and_saves(tmp_path, small_image):
    r = tl.Result(
        image=small_image,
        noiseprint=np.zeros(small_image.shape[:2], np.float32),
        map=np.zeros(small_image.shape[:2], np.float32),
        score=0.25,
        name="x",
    )
    assert r.summary() == "x: score 0.250, map max 0.000"
    r.save_npz(tmp_path / "x.npz")
    assert float(np.load(tmp_path / "x.npz")["score"]) == 0.25


def turned_like(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` turned by Pillow's own EXIF transpose (the reference for the numpy turn)."""
    from PIL import Image, ImageOps

    im = Image.fromarray(a.astype(np.float32), mode="F")
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    return np.asarray(ImageOps.exif_transpose(im))


def test_a_submodule_left_in_training_mode_is_refused_by_name(recipe_model, crops):
    """Only the top-level `model.training` was checked: a BatchNorm put back in training mode
    (MC-style experiments) gave lean, whole-image and plain answers that silently differed, and
    the lean forward updated its running statistics."""
    from trufor_lab.model.lean import lean_forward

    model = recipe_model
    fuse = model.decode_head_conf.linear_fuse
    bn = fuse[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    fuse.train()
    try:
        assert not model.training
        for lean in (True, False):
            with pytest.raises(ValueError, match=r"decode_head_conf\.linear_fuse .*training mode.*eval\(\)"):
                predict(model, crops, InferenceMode.exact(lean=lean, chunks=LeanConfig(rows=4)))
        with pytest.raises(ValueError, match=r"decode_head_conf\.linear_fuse .*training mode"):
            lean_forward(model, crops)
        with torch.no_grad():
            feats = model.forward_features(crops, model.dncnn(crops))
        with pytest.raises(ValueError, match=r"linear_fuse .*training mode"):
            folded_decode((model.decode_head, model.decode_head_conf), feats)
        # every analyze path, the capture one included (it ran the model in training mode, answered
        # otherwise and overwrote the running statistics)
        for capture in (None, ["fusion.stage1.ffm"]):
            with pytest.raises(ValueError, match=r"decode_head_conf\.linear_fuse .*training mode"):
                tl.analyze(model, np.zeros((40, 52, 3), np.uint8), capture=capture)
        assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    finally:
        model.eval()


def test_a_wrapped_trufor_is_analysed_as_the_model_itself(recipe_model, tampered2):
    """tl.analyze(nn.DataParallel(model)) ran the unknown-module path and failed in make_result
    with 'tuple indices must be integers or slices, not tuple'; a module returning something else
    gets one line naming what it returned."""
    import trufor_lab as tl

    crop = tampered2[:64, :64]
    ref = tl.analyze(recipe_model, crop)
    r = tl.analyze(torch.nn.DataParallel(recipe_model).eval(), crop)
    np.testing.assert_array_equal(r.map, ref.map)
    assert r.score == ref.score and r.weights == ref.weights
    from trufor_lab.lab.evaluate import evaluate

    with pytest.raises(AttributeError):  # past the model check ("Noiseprint++ only" before), to the dataset
        evaluate(torch.nn.DataParallel(recipe_model), None, "unused", progress=False)

    class Pair(torch.nn.Module):
        def forward(self, x):
            return (x, x)

    with pytest.raises(TypeError, match=r"^Pair returned tuple: analyze\(\) reads TruFor's output or a Noiseprint"):
        tl.analyze(Pair().eval(), crop)


def test_the_float64_memory_estimate_counts_im2col():
    """oneDNN does not run float64 convolutions (PyTorch's GEMM path does: measured 10x the input,
    not float32's 2x), yet the estimate took oneDNN's one copy for every dtype: 2.79 GiB for a
    float64 megapixel where 5.65 GiB are needed, so the plain forward could be chosen where it
    does not fit."""
    import torch

    from trufor_lab.inference.predict import plain_peak_bytes
    from trufor_lab.model.lean import estimate_plain_peak, gemm_convolution
    from trufor_lab.model.noiseprint import Noiseprint

    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        pytest.skip("no oneDNN here: every dtype runs the GEMM path")
    assert gemm_convolution(True, torch.float64) and not gemm_convolution(True, torch.float32)
    assert estimate_plain_peak(1000, 1000, element_size=8) == estimate_plain_peak(
        1000, 1000, element_size=8, im2col=True
    )
    assert estimate_plain_peak(1000, 1000) == estimate_plain_peak(1000, 1000, im2col=False)
    net = Noiseprint().double().eval()
    x = torch.zeros(1, 3, 100, 120, dtype=torch.float64)
    assert plain_peak_bytes(net, x) == 64 * (2 + 9) * 100 * 120 * 8


def test_a_result_in_the_console_is_one_line_of_shapes_and_numbers(array_result):
    """repr(result) printed every array (about 100 lines for one image, more in a list of them);
    it is one line now: name, size, score as exactly as it is stored, arrays by dtype and shape.
    The notebook view (a figure) is unchanged."""
    from trufor_lab.inference.weights import WeightsInfo

    info = WeightsInfo("official", "trufor.pth.tar", "ab" * 32, True)
    r = array_result(480, 640, score=float(np.float32(0.49999997)), weights=info, notes=("a note", "another"))
    text = repr([r, r])
    assert "\n" not in text and len(text) < 500, text
    assert repr(r) == (
        "Result(name='synthetic', size=640x480, score=0.49999997, map=float32 (480, 640), conf=float32 (480, 640), "
        "noiseprint=float32 (480, 640), weights='official', notes=2 (see .notes))"
    )
    assert "<img" in r._repr_html_()
