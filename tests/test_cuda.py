"""The GPU paths on a real CUDA GPU (skipped where there is none; run by ``.ci/gpu``).

The official test code runs on CUDA with cuDNN disabled; the exact path runs cuDNN with TF32
off. Both are IEEE float32, so both must meet the shared float32 tolerances, and float64 the
1e-6 one. Measured deviations are printed as ``CUDA_MEASURE name value`` lines (``pytest -s``)
for bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import trufor_lab as tl
from trufor_lab.inference.predict import InferenceMode, deviation, deviation_quantiles, predict
from trufor_lab.inference.preprocess import to_tensor
from trufor_lab.model.lean import LeanConfig, estimate_plain_peak
from trufor_lab.model.precision import ieee_float32

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
ROOT = Path(__file__).resolve().parent.parent
FUSED = [f"fused_stage{i}" for i in range(1, 5)]
TOL32 = {"noiseprint": (5e-3, 2e-4), "map": (1e-3, 1e-4), "conf": (1e-3, 1e-4), **{k: (1e-2, 1e-3) for k in FUSED}}


def measure(name: str, value) -> None:
    print(f"CUDA_MEASURE {name} {json.dumps(value)}", flush=True)


@pytest.fixture(scope="module")
def expected(parity_dir):
    return dict(np.load(parity_dir / "parity_expected.npz"))


@pytest.fixture(scope="module")
def cuda_model(recipe_model):
    return copy.deepcopy(recipe_model).to(CUDA)


@pytest.fixture(scope="module")
def demo_pair():
    """The embedded demo model on the CPU and on CUDA."""
    cpu = tl.load(device="cpu")
    gpu = tl.load(device="cuda")
    assert cpu.weights_info.kind == gpu.weights_info.kind == "demo"
    return cpu, gpu


def _plain(model, x):
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x, out.noiseprint)
    return out, feats


def _arrays(out, feats=None) -> dict[str, np.ndarray]:
    got = {"noiseprint": out.noiseprint[0, 0], "map": out.map[0], "conf": out.conf[0], "score": out.score[0]}
    got.update({k: f[0] for k, f in zip(FUSED, feats or [])})
    return {k: v.double().cpu().numpy() for k, v in got.items()}


def _errors(got, expected) -> dict[str, tuple[float, float]]:
    return {k: (float(np.abs(v - expected[k]).max()), float(np.abs(v - expected[k]).mean())) for k, v in got.items()}


def _within_float32(errs, tag) -> None:
    for k, (tmax, tmean) in TOL32.items():
        if k in errs:
            assert errs[k][0] <= tmax and errs[k][1] <= tmean, (tag, k, errs[k])
    assert errs["score"][0] <= 2e-4, (tag, errs["score"])


def test_float64_on_cuda_is_the_official_network(recipe_model, parity_input, expected):
    m = copy.deepcopy(recipe_model).double().to(CUDA)
    x = to_tensor(parity_input, dtype=torch.float64, device=CUDA)
    errs = _errors(_arrays(*_plain(m, x)), expected)
    measure("float64_plain", errs)
    assert all(e[0] <= 1e-6 for e in errs.values()), errs
    errs = _errors(_arrays(predict(m, x)), expected)
    measure("float64_exact", errs)
    assert all(e[0] <= 1e-6 for e in errs.values()), errs


def test_exact_float32_on_cuda_ignores_the_users_tf32_and_restores_it(cuda_model, parity_input, expected):
    """PyTorch lets cuDNN use TF32 by default; the exact path turns it off for the call only."""
    x = to_tensor(parity_input, device=CUDA)
    c, m = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (c.allow_tf32, m.allow_tf32)
    try:
        c.allow_tf32 = m.allow_tf32 = True
        got = _arrays(predict(cuda_model, x))
        assert (c.allow_tf32, m.allow_tf32) == (True, True)  # restored
        with ieee_float32():
            _, feats = _plain(cuda_model, x)
        assert (c.allow_tf32, m.allow_tf32) == (True, True)
        tf32 = _arrays(*_plain(cuda_model, x))  # what PyTorch's defaults give with TF32 allowed
    finally:
        c.allow_tf32, m.allow_tf32 = saved
    got.update({k: f[0].double().cpu().numpy() for k, f in zip(FUSED, feats)})
    errs = _errors(got, expected)
    measure("float32_exact", errs)
    _within_float32(errs, "exact")
    tf32_errs = _errors(tf32, expected)
    measure("float32_tf32_all", tf32_errs)
    # Noiseprint++ keeps IEEE float32 whatever the user allows (../shared/README.md: TF32 visibly
    # changes it); the encoder follows the user's flags in model(x), the exact path does not
    assert tf32_errs["noiseprint"][0] <= 5e-3 and tf32_errs["noiseprint"][1] <= 2e-4, tf32_errs["noiseprint"]
    if torch.cuda.get_device_capability()[0] >= 8:  # TF32 exists from Ampere on
        assert errs["fused_stage1"][0] < tf32_errs["fused_stage1"][0], (errs, tf32_errs)


def test_official_cuda_configuration_meets_the_tolerances(cuda_model, parity_input, expected):
    """The official test code's CUDA setting (cuDNN off) and the exact path agree."""
    x = to_tensor(parity_input, device=CUDA)
    with torch.backends.cudnn.flags(enabled=False), ieee_float32():
        official = _arrays(*_plain(cuda_model, x))
    errs = _errors(official, expected)
    measure("float32_official_cudnn_off", errs)
    _within_float32(errs, "official")
    exact = _arrays(predict(cuda_model, x))
    d = {k: float(np.abs(exact[k] - official[k]).max()) for k in exact}
    measure("exact_vs_official_cuda", d)
    assert d["map"] <= 1e-3 and d["conf"] <= 1e-3 and d["score"] <= 2e-4 and d["noiseprint"] <= 5e-3, d


def test_cuda_is_as_faithful_as_the_cpu_and_the_official_setting_on_official_samples(demo_pair, shared_dir):
    """The trained demo weights amplify float32 rounding (a calibrated score, a few sensitive
    pixels), so fixed bounds between two devices say little: each float32 path is measured against
    the same network in float64 on the GPU, and the exact path on CUDA must be no less faithful
    than the official CUDA setting (cuDNN off) or the exact path on the CPU."""
    cpu, gpu = demo_pair
    ref64 = copy.deepcopy(gpu).double()
    report = {}
    for name in ("pristine1.jpg", "tampered2.png", "tampered1.png"):
        img = np.ascontiguousarray(tl.load_image(shared_dir / "images" / name).rgb[:768, :1024])
        x = to_tensor(img, device=CUDA)
        ref = predict(ref64, to_tensor(img, dtype=torch.float64, device=CUDA))
        with torch.backends.cudnn.flags(enabled=False), ieee_float32(), torch.no_grad():
            official = gpu(x)
        paths = {"cuda_exact": predict(gpu, x), "cpu_exact": predict(cpu, to_tensor(img)), "cuda_official": official}
        errs = {
            k: {
                f: float((getattr(o, f).double().cpu() - getattr(ref, f).double().cpu()).abs().max())
                for f in ("map", "conf", "score", "noiseprint")
            }
            for k, o in paths.items()
        }
        report[name] = errs
        for f in ("map", "conf", "score", "noiseprint"):
            worst_other = max(errs["cuda_official"][f], errs["cpu_exact"][f])
            assert errs["cuda_exact"][f] <= max(2 * worst_other, 1e-5), (name, f, errs)
    measure("demo_float32_paths_vs_float64_cuda", report)


def test_fast_mode_on_cuda(demo_pair, shared_dir):
    """bfloat16 encoder on CUDA: Noiseprint++ stays IEEE float32; the map moves by a measured amount."""
    _, gpu = demo_pair
    img = tl.load_image(shared_dir / "images" / "tampered1.png").rgb[:768, :1024]
    x = to_tensor(np.ascontiguousarray(img), device=CUDA)
    exact = predict(gpu, x)
    fast = predict(gpu, x, "fast")
    f32 = predict(gpu, x, InferenceMode.fast(amp_dtype=None))
    d, d32 = deviation(fast, exact), deviation(f32, exact)
    q = deviation_quantiles(fast, exact)
    measure("fast_vs_exact_demo_1024x768", {"max": d, "quantiles": q, "fast32": d32})
    assert fast.logits.dtype == torch.float32 and torch.isfinite(fast.logits).all()
    # bounds that catch a broken mode (measured on an H200: map max 1.1e-2, q99 2.6e-4, score
    # 1.2e-3); the measured values go to bench/RESULTS.md
    assert d["noiseprint"] <= 5e-3 and d["score"] <= 0.1 and q["map"]["q99"] <= 0.2, (d, q)
    assert d32["map"] <= 5e-3 and d32["score"] <= 2e-4, d32


def test_lean_forward_on_cuda_matches_the_whole_image(cuda_model, tampered2):
    x = to_tensor(tampered2[:200, :232], device=CUDA)
    whole = predict(cuda_model, x)
    lean = predict(cuda_model, x, InferenceMode.exact(lean=True, chunks=LeanConfig(rows=3, attn_chunk=41, tile=64)))
    d = deviation(lean, whole)
    measure("lean_vs_whole_cuda", d)
    assert d["map"] <= 1e-3 and d["conf"] <= 1e-3 and d["score"] <= 2e-4 and d["noiseprint"] <= 5e-3, d


@pytest.mark.parametrize("mp", [2, 12])
def test_memory_estimate_covers_the_measured_peak(cuda_model, mp):
    """The whole-image/lean decision rests on this estimate: it must not fall short on CUDA."""
    w = int((mp * 1e6 * 4 / 3) ** 0.5)
    h = w * 3 // 4
    x = torch.rand(1, 3, h, w, device=CUDA)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    out = predict(cuda_model, x)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base
    est = estimate_plain_peak(h, w, device_type="cuda", attention_impl="sdpa")
    measure(f"memory_{mp}mp", {"h": h, "w": w, "peak": peak, "estimate": est, "seconds_first_call": seconds})
    assert torch.isfinite(out.map).all() and out.map.shape == (1, h, w)
    assert est >= peak, (est, peak)


def test_capture_and_attribution_on_cuda(cuda_model, tampered2):
    from trufor_lab.interpret import attribute as A

    img = tampered2[80:144, 80:144].copy()
    r = tl.analyze(cuda_model, img, capture=["noiseprint", "fusion.stage1.ffm"])
    assert set(r.captures) == {"noiseprint", "fusion.stage1.ffm"}
    assert np.abs(np.asarray(r.captures["noiseprint"]).squeeze() - r.noiseprint).max() <= 1e-5
    x = to_tensor(img[16:48, 16:48].copy(), device=CUDA)
    b = x + 0.2 * (A.make_baseline(x, "blur") - x)
    a = A.attribute(cuda_model, x, "ig", target=A.ScoreTarget(), baselines=b, n_steps=64)
    diff = a.target_value - a.baseline_value
    measure("ig_completeness_cuda", {"diff": diff, "sum": float(a.map.sum())})
    assert abs(diff) > 1e-3 and a.map.sum() == pytest.approx(diff, rel=0.02)
    m = A.ModalityAttribution(cuda_model).attribute(img, n_steps=4)
    assert all(0 <= v <= 1 for v in m.extras["shares"].values()) and sum(m.extras["shares"].values()) == pytest.approx(
        1
    )
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    assert sum(len(getattr(mod, h)) for mod in cuda_model.modules() for h in hooks) == 0
    assert all(p.grad is None for p in cuda_model.parameters())


def test_training_on_cuda_runs_and_resumes(tmp_path, capsys):
    from trufor_lab import training as T
    from trufor_lab.model import TruForConfig

    tiny = TruForConfig(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), decoder_embed_dim=32)
    images = [T.synthetic_scene(96, i) for i in range(4)]

    def cfg(out, **kw):
        base = dict(
            model=tiny,
            batch_size=4,
            crop=64,
            pristine=images,
            precompute=8,
            precompute_size=64,
            cache_dir=str(tmp_path / "pool"),
            progress=False,
            lr=1e-3,
            warmup=1,
            checkpoint_every=2,
            device="cuda",
            out_dir=str(tmp_path / out),
        )
        return T.TrainConfig(**{**base, **kw})

    a = T.train(cfg("a", steps=6))
    assert a.step == 6 and np.isfinite(a.final_loss)
    assert next(a.model.parameters()).device.type == "cuda"
    T.train(cfg("b", steps=6, max_seconds=0))
    b = T.train(cfg("b", steps=6))
    la, lb = [r["loss"] for r in T.read_log(a.log)], [r["loss"] for r in T.read_log(b.log)]
    measure("train_cuda_losses", {"straight": la, "resumed": lb})
    assert len(lb) == 6 and np.allclose(la, lb, rtol=1e-3, atol=1e-4), (la, lb)
    # what a resume on another device keeps (meta.amp): bfloat16 autocast on a GPU that has it natively
    meta = torch.load(b.checkpoint, weights_only=True)["meta"]
    native = torch.cuda.get_device_capability()[0] >= 8
    assert meta["amp"] is native and meta["device"].startswith("cuda"), meta
    # a run begun on the CPU (no autocast), resumed here: it goes on as it began, and says so where
    # this GPU would have chosen bfloat16 (the optimizer state and the pool move to the GPU)
    T.train(cfg("c", steps=6, max_seconds=0, device="cpu"))
    capsys.readouterr()
    c = T.train(cfg("c", steps=6))
    said = capsys.readouterr().err
    meta = torch.load(c.checkpoint, weights_only=True)["meta"]
    assert c.step == 6 and np.isfinite(c.final_loss) and next(c.model.parameters()).device.type == "cuda"
    assert meta["amp"] is False and meta["device"].startswith("cuda"), meta
    assert ("the run began without bfloat16 autocast (on cpu)" in said) is native, said
    back = tl.load_trufor(a.checkpoint, device="cuda")
    assert next(back.parameters()).device.type == "cuda"


def test_command_line_writes_what_the_library_gives_on_each_device(shared_dir, tmp_path, demo_pair):
    img = shared_dir / "images" / "tampered2.png"
    report = {}
    for dev, model in zip(("cpu", "cuda"), demo_pair):
        o = tmp_path / dev
        r = subprocess.run(
            [sys.executable, "-m", "trufor_lab.cli", "analyze", str(img), "-o", str(o), "--device", dev],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        z = dict(np.load(next(o.rglob("*.npz"))))
        ref = tl.analyze(model, img)
        report[dev] = d = {
            "map": float(np.abs(z["map"] - ref.map).max()),
            "conf": float(np.abs(z["conf"] - ref.conf).max()),
            "score": abs(float(z["score"]) - ref.score),
        }
        assert d["map"] <= 1e-5 and d["conf"] <= 1e-5 and d["score"] <= 1e-6, (dev, d)
    measure("cli_vs_library", report)


def test_distributed_analyze_over_nccl(shared_dir, tmp_path, demo_pair):
    """One rank on the GPU through torchrun: NCCL for the work, gloo for the summary."""
    out = tmp_path / "dist"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "trufor_lab.cli.distributed",
        str(shared_dir / "images"),
        "-o",
        str(out),
        "--device",
        "cuda",
        "-q",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    s = json.loads((out / "distributed_summary.json").read_text())
    assert s["world_size"] == 1 and s["written"] == 4 and s["failed"] == 0, s
    z = np.load(out / "tampered2.png.npz")
    r = tl.analyze(demo_pair[1], shared_dir / "images" / "tampered2.png")
    assert np.abs(z["map"] - r.map).max() <= 1e-5 and abs(float(z["score"]) - r.score) <= 1e-6


# What a user's TF32 setting made before any call of ours does to each path, one fresh process
# per setting (PyTorch refuses the legacy flags in a process once the fp32_precision API was used)
_SETTINGS = {
    "default": "",
    "legacy_tf32": "torch.backends.cudnn.allow_tf32 = True; torch.backends.cuda.matmul.allow_tf32 = True",
    "general_tf32": "torch.backends.fp32_precision = 'tf32'",
    "leaf_tf32": "torch.backends.cudnn.conv.fp32_precision = 'tf32'; torch.backends.cuda.matmul.fp32_precision = 'tf32'",
}
_PROBE = """
import sys, numpy as np, torch
import trufor_lab as tl
from trufor_lab.inference.predict import InferenceMode, predict
from trufor_lab.inference.preprocess import to_tensor
{setting}
model = tl.load(device="cuda")
img = tl.load_image(sys.argv[1]).rgb[:512, :768]
x = to_tensor(np.ascontiguousarray(img), device="cuda")
outs = {{"exact": predict(model, x), "fast32": predict(model, x, InferenceMode.fast(amp_dtype=None))}}
with torch.no_grad():
    outs["raw"] = model(x)
np.savez(sys.argv[2], **{{f"{{k}}_{{f}}": getattr(o, f).double().cpu().numpy() for k, o in outs.items()
                        for f in ("map", "noiseprint", "score")}})
"""


def test_a_users_tf32_setting_reaches_neither_the_exact_nor_the_fast32_path(shared_dir, tmp_path):
    """Whatever API the user set TF32 with, the exact path and fast mode's float32 parts stay IEEE
    (equal to the untouched process), while the raw ``model(x)`` follows the setting."""
    if not hasattr(torch.backends, "fp32_precision"):
        pytest.skip("this PyTorch has no fp32_precision API")
    got = {}
    for name, setting in _SETTINGS.items():
        dst = tmp_path / f"{name}.npz"
        code = _PROBE.format(setting=setting)
        img = str(shared_dir / "images" / "tampered1.png")
        p = subprocess.run(
            [sys.executable, "-c", code, img, str(dst)], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        assert p.returncode == 0, (name, p.stderr[-2000:])
        got[name] = dict(np.load(dst))
    ref = got.pop("default")
    report = {
        name: {k: float(np.abs(v - ref[k]).max()) for k, v in arrays.items() if not k.endswith("score")}
        for name, arrays in got.items()
    }
    measure("user_tf32_settings_vs_default", report)
    for name, d in report.items():
        # IEEE in both processes: the same kernels (TF32 moves the demo map by ~1e-3)
        assert d["exact_map"] <= 1e-4 and d["exact_noiseprint"] <= 1e-4, (name, d)
        assert d["fast32_map"] <= 1e-4 and d["fast32_noiseprint"] <= 1e-4, (name, d)
        assert d["raw_noiseprint"] <= 1e-4, (name, d)  # Noiseprint++ keeps IEEE in model(x) too
    if torch.cuda.get_device_capability()[0] >= 8:  # the setting took effect where TF32 exists
        assert max(d["raw_map"] for d in report.values()) > 1e-4, report


def test_free_memory_counts_what_pytorch_keeps_cached():
    """After a large tensor is freed, PyTorch keeps its memory; the lean decision may use it."""
    from trufor_lab.common.memory import free_memory_bytes

    torch.cuda.empty_cache()
    block = torch.empty(2 << 30, dtype=torch.uint8, device=CUDA)
    del block
    free_driver, _ = torch.cuda.mem_get_info(CUDA)
    ours = free_memory_bytes("cuda")
    measure("free_memory_cached", {"driver": free_driver, "ours": ours})
    assert ours >= free_driver + (2 << 30) - (64 << 20), (ours, free_driver)
    torch.cuda.empty_cache()


def test_evaluation_helpers_run_where_the_model_is(demo_pair):
    """score_heldout and the calibration's logits on a CUDA model: its device kept, CPU's numbers."""
    from trufor_lab import training as T
    from trufor_lab.training.finetune_real import detection_logits

    cpu, gpu = demo_pair
    items = T.demo_heldout(n=4, size=128)
    a, b = detection_logits(cpu, items), detection_logits(gpu, items)
    measure("detection_logits_cpu_vs_cuda", float(np.abs(a - b).max()))
    assert np.abs(a - b).max() <= 5e-2, (a, b)  # model(x): the user's default TF32 on the GPU
    ev = T.score_heldout(gpu, items)
    assert next(gpu.parameters()).device.type == "cuda" and np.isfinite(ev.auc)


# -- a small GPU, pretended: free memory as read, and this process's allocator capped to it ----


def _pretend_free(monkeypatch, free: int) -> None:
    """``free_memory_bytes`` of every module that decides on it answers ``free``."""
    import trufor_lab.inference.analyze as an
    import trufor_lab.inference.predict as inf
    import trufor_lab.interpret.attribution_calls as calls
    import trufor_lab.model.lean as lean_mod

    for mod in (an, inf, lean_mod, calls):
        monkeypatch.setattr(mod, "free_memory_bytes", lambda device: free)


@contextlib.contextmanager
def _allocator_capped(free: int):
    """This process may allocate at most ``free`` bytes more than it holds now (its allocator's
    memory fraction; cuDNN then picks kernels whose workspace fits, as on a small GPU). Nothing
    is allocated: the notebooks ``.ci/gpu`` runs beside these tests keep the GPU's memory."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + free) / total))
    torch.cuda.reset_peak_memory_stats()
    try:
        yield torch.cuda.memory_allocated()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def test_analyze_runs_the_lean_forward_within_a_small_gpus_free_memory(cuda_model, tampered2, monkeypatch):
    """On a GPU whose free memory the plain forward does not fit in, analyze() takes the
    memory-lean forward, whose chunk budget follows that free memory (``fitting_budget``): it runs
    within it, with the whole-image answer; an image whose lean forward needs more than 90 % of
    it is refused in one line before any work."""
    from trufor_lab.inference.predict import lean_peak_bytes, plain_peak_bytes

    img = np.ascontiguousarray(np.tile(tampered2, (5, 7, 1))[:1224, :1632])  # 2 MP
    h, w = img.shape[:2]
    shape = torch.zeros(1, 3, 1, 1, device=CUDA).expand(1, 3, h, w)  # its size, device and dtype
    need = lean_peak_bytes(cuda_model, shape)
    free = int(2.5 * need)
    assert plain_peak_bytes(cuda_model, shape) > 0.8 * free  # the plain forward does not fit
    whole = tl.analyze(cuda_model, img)  # the GPU's real free memory: the plain forward
    assert not any("lean" in n for n in whole.notes), whole.notes
    _pretend_free(monkeypatch, free)
    with _allocator_capped(free) as base:
        lean = tl.analyze(cuda_model, img)
        peak = torch.cuda.max_memory_allocated() - base
    measure("lean_small_gpu_2mp", {"free": free, "lean_need": need, "peak": peak})
    assert any("memory-lean exact forward" in n for n in lean.notes), lean.notes
    assert peak <= free, (peak, free)
    d = {"map": float(np.abs(lean.map - whole.map).max()), "score": abs(lean.score - whole.score)}
    assert d["map"] <= 1e-3 and d["score"] <= 2e-4, d
    _pretend_free(monkeypatch, need // 2)
    with pytest.raises(tl.ImageError, match=r"^big: a 1632x1224 image needs about .* even with the memory-lean"):
        tl.analyze(cuda_model, img, name="big")


def test_attribution_lowers_its_path_points_to_a_small_gpus_free_memory(cuda_model, tampered2, monkeypatch):
    """On a GPU with room for one IG path point per pass (by the estimate), the points per pass
    not given are lowered to one and the attribution runs within that free memory; a count given
    that does not fit is refused in one line naming one that does."""
    from trufor_lab.interpret import attribute as A
    from trufor_lab.interpret.attribution_calls import attribution_bytes

    img = tampered2.copy()  # 256x256: two path points per pass unless memory is short
    shape = torch.zeros(1, 3, 1, 1, device=CUDA).expand(1, 3, *img.shape[:2])
    one = attribution_bytes(cuda_model, shape, 1, ("noiseprint", "encoder", "decoders"))
    free = int(1.5 * one)
    _pretend_free(monkeypatch, free)
    with _allocator_capped(free) as base:
        a = A.attribute(cuda_model, img, "ig", target=A.ScoreTarget(), n_steps=8)
        peak = torch.cuda.max_memory_allocated() - base
    measure("ig_small_gpu_256", {"free": free, "one_point": one, "peak": peak})
    assert a.extras["internal_batch_size"] == 1 and np.isfinite(a.map).all(), a.extras
    assert peak <= free, (peak, free)
    with pytest.raises(tl.ImageError, match=r"free \(cuda\); pass internal_batch_size=1 or less$"):
        A.attribute(cuda_model, img, "ig", target=A.ScoreTarget(), n_steps=8, internal_batch_size=2)


def test_capture_through_dataparallel_on_cuda(cuda_model, tampered2):
    """DataParallel around a CUDA model: analyze() records the captures of the model inside it,
    and a capture open on the model records a DataParallel forward of one image (one replica,
    run in the calling thread; a capture records only the thread that opened it)."""
    from trufor_lab.model.capture import capture

    img = tampered2[64:160, 32:160].copy()
    names = ["noiseprint", "fusion.stage1.ffm"]
    ref = tl.analyze(cuda_model, img, capture=names)
    dp = torch.nn.DataParallel(cuda_model)
    got = tl.analyze(dp, img, capture=names)
    assert set(got.captures) == set(names)
    for n in names:  # the same forward of the same model: equal up to the GPU's own run-to-run rounding
        assert np.abs(np.asarray(got.captures[n]) - np.asarray(ref.captures[n])).max() <= 1e-5, n
    x = to_tensor(img, device=CUDA)
    with capture(cuda_model, names) as cap, torch.no_grad():
        out = dp(x)
    assert cap.other_threads == 0 and not cap.missing, (cap.other_threads, cap.missing)
    assert np.abs(np.asarray(cap["noiseprint"]).squeeze() - out.noiseprint.cpu().numpy().squeeze()).max() == 0
