"""The fast mode's Winograd Noiseprint++ (CPU float32, NNPACK): the same network within the shared
float32 tolerance, used where it applies and nowhere else."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trufor_lab as tl
from trufor_lab.inference.predict import InferenceMode, predict
from trufor_lab.inference.preprocess import load_image, to_tensor
from trufor_lab.model import winograd as winograd_module
from trufor_lab.model.lean import LeanConfig
from trufor_lab.model.winograd import conv_one_channel, nnpack_available, winograd_conv, winograd_usable

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="this PyTorch has no NNPACK")


@pytest.fixture(scope="module")
def net(shared_dir):
    return tl.load_noiseprint(shared_dir / "weights" / "noiseprint++.th")


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("shape", [(1, 64, 1, 1), (2, 64, 2, 7), (1, 8, 37, 41), (1, 64, 5, 300)])
def test_one_channel_layer_is_the_convolution(shape, k):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    w = torch.randn(1, shape[1], k, k, generator=g, dtype=torch.float64)
    b = torch.randn(1, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, b, padding=k // 2)
    b0 = b.clone()
    got = conv_one_channel(x, w, b, k // 2)
    assert torch.equal(b, b0)  # the bias is read, never written (a 1x1 map once aliased it)
    assert got.shape == ref.shape and (got - ref).abs().max() <= 1e-12
    got32 = conv_one_channel(x.float(), w.float(), b.float(), k // 2)
    assert (got32.double() - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_one_channel_layer_leaves_other_convolutions_to_conv2d():
    x, w, b = torch.randn(1, 4, 9, 9), torch.randn(2, 4, 3, 3), torch.randn(2)
    assert torch.equal(conv_one_channel(x, w, b, 1), F.conv2d(x, w, b, padding=1))


@needs_nnpack
@pytest.mark.parametrize("shape", [(1, 64, 1, 1), (2, 64, 3, 300), (1, 64, 37, 41), (1, 3, 20, 33)])
def test_winograd_conv_is_the_convolution_within_float32(shape):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(shape, generator=g)
    w = torch.randn(64, shape[1], 3, 3, generator=g) * 0.05
    b = torch.randn(64, generator=g) * 0.1
    assert winograd_usable(x, w, 1)
    ref = F.conv2d(x.double(), w.double(), b.double(), padding=1).relu_()
    got = winograd_conv(x, w, b, relu=True)
    assert got.dtype == torch.float32 and got.shape == ref.shape and got.min() >= 0
    # a few float32 roundings of the tile transforms: well under 1e-4 of the output's scale
    assert (got.double() - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_winograd_applies_to_float32_cpu_3x3_only():
    w = torch.randn(64, 64, 3, 3)
    x = torch.rand(1, 64, 8, 8)
    assert not winograd_usable(x.double(), w.double(), 1)
    assert not winograd_usable(x, w, 0)
    assert not winograd_usable(x, torch.randn(1, 64, 3, 3), 1)  # the one-channel layer
    assert not winograd_usable(x, torch.randn(64, 64, 5, 5), 2)


@needs_nnpack
@pytest.mark.parametrize("name", ["pristine1", "tampered2"])
def test_winograd_noiseprint_within_shared_tolerance(net, shared_dir, parity_dir, name):
    ext = "jpg" if name.startswith("pristine") else "png"
    x = to_tensor(load_image(shared_dir / "images" / f"{name}.{ext}").rgb)
    ref = np.load(parity_dir / f"noiseprint_{name}.npz")["noiseprint"]
    got = net.forward_folded(x, winograd=True)[0, 0].double().numpy()
    err = np.abs(got - ref)
    assert err.max() <= 5e-3 and err.mean() <= 2e-4, (err.max(), err.mean())
    # it is another computation, not the direct one under another name
    assert not torch.equal(net.forward_folded(x, winograd=True), net.forward_folded(x))


@needs_nnpack
def test_fast_mode_runs_winograd_noiseprint(recipe_model, tampered2):
    x = to_tensor(tampered2[:96, :128])
    dncnn = recipe_model.dncnn
    out = predict(recipe_model, x, mode="fast")
    assert torch.equal(out.noiseprint, dncnn.forward_folded(x, winograd=True))
    exact = predict(recipe_model, x)
    assert (out.map - exact.map).abs().max() <= 1e-2 and (out.score - exact.score).abs().max() <= 1e-2
    # Noiseprint++ alone, and the lean forward in halo tiles: the same algorithm
    assert torch.equal(predict(dncnn, x, mode="fast"), out.noiseprint)
    lean = predict(recipe_model, x, InferenceMode.fast(lean=True, chunks=LeanConfig(tile=40, rows=8)))
    ref = copy.deepcopy(dncnn).double().forward_folded(x.double())
    for got in (lean.noiseprint, out.noiseprint):  # Winograd's tiles fall elsewhere in a halo tile
        err = (got.double() - ref).abs()
        assert err.max() <= 5e-3 and err.mean() <= 2e-4
    assert (lean.map - out.map).abs().max() <= 1e-3
    # exact never does
    assert torch.equal(exact.noiseprint, dncnn.forward_folded(x))


def test_without_nnpack_fast_mode_keeps_channels_last(recipe_model, tampered2, monkeypatch):
    monkeypatch.setattr(winograd_module, "nnpack_available", lambda: False)
    x = to_tensor(tampered2[:64, :80])
    out = predict(recipe_model, x, mode="fast")
    assert torch.equal(out.noiseprint, recipe_model.dncnn.forward_folded(x, channels_last=True))


def test_float64_fast_mode_has_no_winograd(recipe_model, tampered2):
    m64 = copy.deepcopy(recipe_model).double()
    x = to_tensor(tampered2[:40, :48], dtype=torch.float64)
    out = predict(m64, x, mode="fast")
    assert out.noiseprint.dtype == torch.float64
    assert torch.equal(out.noiseprint, m64.dncnn.forward_folded(x, channels_last=True))


@needs_nnpack
def test_nnpack_workspace_is_given_back(tmp_path):
    """PyTorch keeps NNPACK's workspace (~3.6 times a convolution's input) per thread until the
    thread ends: whole-map calls in the caller's thread left ~700 MiB (3.5 maps) allocated for good
    after a 0.8 MP map. In bands, in a thread of its own, what stays is the allocator's reusable
    heap (measured 0.5-1.2 maps)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import time
        import torch
        torch.set_num_threads(1)
        import trufor_lab as tl
        net = tl.load_noiseprint()
        x = torch.rand(1, 3, 768, 1024)
        net.forward_folded(x[:, :, :64, :64], winograd=True)
        rss = lambda: [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:")][0]
        before = rss()
        y = net.forward_folded(x, winograd=True)
        # the thread's C++ thread-locals are destroyed as it exits, just after join() returns
        deadline = time.time() + 5
        while rss() - before > 2 * 64 * 768 * 1024 * 4 and time.time() < deadline:
            time.sleep(0.05)
        print(rss() - before)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    grown = int(r.stdout.split()[-1])
    one_map = 64 * 768 * 1024 * 4
    assert grown < 2 * one_map, (grown, one_map)


@pytest.mark.parametrize("h,w", [(1, 5), (2, 3), (7, 40), (866, 1155), (97, 13)])
def test_bands_cover_the_map_at_least_two_rows_each(h, w, monkeypatch):
    for band_bytes in (1, 64 * 4 * w * 3, winograd_module.BAND_BYTES):
        monkeypatch.setattr(winograd_module, "BAND_BYTES", band_bytes)
        spans = winograd_module.band_rows(h, w, 64)
        assert spans[0][0] == 0 and spans[-1][1] == h
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert all(r1 - r0 >= 2 for r0, r1 in spans) or spans == [(0, h)]


@needs_nnpack
@pytest.mark.parametrize("band_bytes", [64 * 4 * 45 * 2, 64 * 4 * 45 * 5, 2**30])
def test_banded_winograd_is_the_whole_map_convolution(net, tampered2, monkeypatch, band_bytes):
    """Bands of 2 and 5 rows (every row next to a boundary) and one band: the same map within the
    float32 tolerance of the float64 direct convolutions, batch of two included."""
    monkeypatch.setattr(winograd_module, "BAND_BYTES", band_bytes)
    x = to_tensor(tampered2[:37, :45]).repeat(2, 1, 1, 1)
    x[1] = x[1].flip(-1)
    ref = copy.deepcopy(net).double().forward_folded(x.double())
    got = winograd_module.winograd_forward(x, net.folded())
    err = (got.double() - ref).abs()
    assert got.shape == ref.shape and err.max() <= 5e-3 and err.mean() <= 2e-4, (err.max(), err.mean())
    w, b, pad, _ = net.folded()[-1]
    feats = torch.rand(2, 64, 37, 45)
    parts = [feats[:, :, :10], feats[:, :, 10:12], feats[:, :, 12:]]
    assert (conv_one_channel(parts, w, b, pad) - conv_one_channel(feats, w, b, pad)).abs().max() <= 1e-6


def test_a_failure_in_the_worker_thread_is_raised_in_the_caller(net):
    w, b, pad, relu = net.folded()[1]
    with pytest.raises(RuntimeError):
        winograd_module.winograd_forward(torch.rand(1, 3, 8, 8), [(w, b, pad, relu)])  # 64 channels expected


_INTERRUPTED = """
import signal, sys, threading, time, torch
from trufor_lab.model import winograd as W
import trufor_lab as tl
calls = []
conv = W.winograd_conv
def slow_conv(*a, **k):
    calls.append(1)
    time.sleep(0.02)
    return conv(*a, **k)
W.winograd_conv, W.BAND_BYTES = slow_conv, 64 * 4 * 48 * 4  # 4-row bands: 8 per 32-row map
layers = tl.load_noiseprint(sys.argv[1]).folded()
total = 8 * sum(W.winograd_usable(torch.zeros(1, w.shape[1], 4, 48), w, p) for w, _, p, _ in layers)
signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C (a background suite ignores it)
threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
try:
    W.winograd_forward(torch.rand(1, 3, 32, 48), layers)
except KeyboardInterrupt:
    n = len(calls)
    time.sleep(0.5)
    print(n, len(calls), total, flush=True)
    raise
"""


@needs_nnpack
def test_ctrl_c_stops_the_worker_thread_before_the_caller_gives_up(shared_dir, tmp_path):
    """Ctrl-C interrupted the caller at once but left the worker computing the whole map (a few
    seconds at 1 MP, in the background of the next notebook cell), and a script that then exited
    aborted ('terminate called without an active exception'). The worker now stops after its band,
    before the interrupt reaches the caller, and the script exits as interrupted."""
    import subprocess
    import sys

    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED)
    r = subprocess.run(
        [sys.executable, str(script), str(shared_dir / "weights" / "noiseprint++.th")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "KeyboardInterrupt" in r.stderr and "terminate called" not in r.stderr, r.stderr[-2000:]
    assert r.returncode in (1, -2, 130), (r.returncode, r.stderr[-2000:])  # an interrupted Python, not an abort (-6)
    at_interrupt, later, total = map(int, r.stdout.split())
    assert 0 < at_interrupt == later < total / 2, r.stdout
