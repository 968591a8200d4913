"""``python -m bench`` (bench/cli.py, bench/bench_hooks.py): what it decides, runs and reports.

No case here runs at more than a few thousand pixels: the children are replaced where only the
driver's decisions are checked."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bench.case as case
import bench.cli as cli
from trufor_lab.inference import predict as P
from trufor_lab.inference.preprocess import to_tensor
from trufor_lab.model.lean import estimate_plain_peak, gemm_convolution

REPO = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def _fake_child(calls: list):
    """A stand-in for one case's subprocess: records (mode, h, w) and returns a result."""

    def run(mode, h, w, args, save):
        calls.append((mode, h, w))
        return {
            "status": "ok",
            "time_s": 1.0,
            "times_s": [1.0],
            "peak_bytes": 1 << 20,
            "peak_above_baseline_bytes": 1 << 20,
            "lean": False,
            "device_name": "test",
            "torch": torch.__version__,
        }

    return run


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this PyTorch")
def test_cpu_plain_estimate_follows_onednn_and_a_3mp_baseline_runs_with_10_gib_free(monkeypatch):
    """The plain-forward estimate assumed the GEMM path's 9 im2col copies on every CPU, but the
    baseline runs oneDNN convolutions (as the official code): the bench skipped the 3 MP baseline
    as needing ~9.36 GiB with 10 GiB free, where its measured peak is ~5.8-5.9 GiB in total."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", True)  # PyTorch's default
    assert not gemm_convolution()
    on = estimate_plain_peak(1500, 2000, device_type="cpu", attention_impl="plain")
    assert on == estimate_plain_peak(1500, 2000, device_type="cpu", attention_impl="plain", im2col=False)
    assert cli.estimate_bytes("baseline", 1500, 2000, "cpu", 10 * GiB) < 8 * GiB
    calls: list = []
    monkeypatch.setattr(cli, "_free_bytes", lambda device: 10 * GiB)
    monkeypatch.setattr(cli, "_run_child", _fake_child(calls))
    assert cli.main(["--sizes", "3", "--modes", "baseline", "--device", "cpu", "--no-hooks", "-q"]) == 0
    assert calls == [("baseline", 1500, 2000)]
    # where oneDNN does not run, the GEMM path's copies are counted (an underestimate is an OOM)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert gemm_convolution()
    off = estimate_plain_peak(1500, 2000, device_type="cpu", attention_impl="plain")
    assert off == estimate_plain_peak(1500, 2000, device_type="cpu", attention_impl="plain", im2col=True) > on


def test_budget_mib_forces_the_lean_forward_and_each_case_says_which_forward_ran(monkeypatch, recipe_model):
    """``--budget-mib`` set only the lean forward's budget, and the lean forward runs only where
    the whole image does not fit: on an image that fits the option did nothing, though documented
    to show the memory bound. Nor did a case say which forward it ran."""
    calls: list = []
    lean_forward = P.lean_forward
    monkeypatch.setattr(P, "lean_forward", lambda *a, **k: (calls.append(1), lean_forward(*a, **k))[1])
    monkeypatch.setattr(case, "build_model", lambda shared, weights="recipe": recipe_model)
    h, w = case.image_size(0.003)
    res = case.run_case("exact", h, w, "cpu", 1, 0, False, None, budget_bytes=1 << 20)
    assert calls and res["lean"] is True
    calls.clear()
    res = case.run_case("fast", h, w, "cpu", 1, 0, False, None)
    assert not calls and res["lean"] is False
    assert case.run_case("baseline", h, w, "cpu", 1, 0, False, None)["lean"] is False
    assert cli.estimate_bytes("exact", h, w, "cpu", 8 * GiB, 1 << 20) < cli.estimate_bytes(
        "exact", h, w, "cpu", 8 * GiB
    )


def test_the_table_labels_deviations_vs_exact_and_names_the_forward():
    """The deviation headers said "max Δmap" without "vs exact" (the baseline row is baseline
    minus exact), and no row said whether exact and fast ran the whole-image or the lean forward."""
    case = {"size_mp": 1, "height": 3, "width": 4, "status": "ok", "time_s": 1.0, "peak_bytes": 1}
    case["peak_above_baseline_bytes"] = 1
    dev = {"map": 1e-4, "map_q99.9": 1e-5, "map_q99": 1e-6, "score": 0.0, "conf": 0.0, "noiseprint": 0.0}
    rows = [
        {**case, "mode": "baseline", "lean": False, "deviation_vs_exact": dev},
        {**case, "mode": "exact", "lean": True},
        {**case, "mode": "fast", "lean": False, "deviation_vs_exact": dev},
        {**case, "mode": "fast32", "status": "skipped", "reason": "same arithmetic as fast on this device"},
    ]
    table = cli.format_table({"cases": rows}).splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    assert head[3] == "forward" and "max Δmap vs exact" in head and "Δscore vs exact" in head
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert [line.split("|")[4].strip() for line in table[2:]] == ["plain module", "lean", "whole-image", "-"]


def test_cuda_asked_for_without_cuda_is_one_line_and_a_failure(monkeypatch, capsys):
    """``--device cuda`` without CUDA reported every case "skipped: needs ~556 MiB, 0 MiB free"
    and exited 0."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cli, "_free_bytes", lambda device: 0)
    monkeypatch.setattr(cli, "_run_child", _fake_child([]))
    assert cli.main(["--sizes", "0.003", "--device", "cuda", "--no-hooks"]) != 0
    out, err = capsys.readouterr()
    assert "skipped" not in out and err.strip().count("\n") == 0 and "CUDA is not available" in err


@pytest.mark.parametrize("option", ["--repeat", "--runs", "--budget-mib", "--hooks-repeat"])
def test_counts_below_one_are_refused_by_the_parser(option, capsys):
    """``--repeat 0`` ended in a KeyError traceback and ``--runs 0`` failed every case with
    "min() arg is an empty sequence"."""
    parser = cli.add_arguments(argparse.ArgumentParser(prog="python -m bench"))
    with pytest.raises(SystemExit) as e:
        parser.parse_args([option, "0"])
    assert e.value.code == 2
    assert f"argument {option}: must be a whole number >= 1, got '0'" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(SystemExit, match="--sizes 'a,1'"):
        cli.main(["--sizes", "a,1", "--device", "cpu", "--no-hooks"])


def test_hook_overhead_reads_trufor_lab_shared_and_its_failure_fails_the_bench(tmp_path, monkeypatch, capsys):
    """bench/bench_hooks.py looked only in ../shared (not $TRUFOR_LAB_SHARED, as the rest of the
    project), and ``python -m bench`` printed the script's traceback as the "hook overhead"
    result and exited 0."""
    shared = tmp_path / "shared"  # the bench's image, but no recipe fixtures: the hook bench must fail
    (shared / "images").mkdir(parents=True)
    (shared / "images" / "tampered1.png").symlink_to(case.shared_dir() / "images" / "tampered1.png")
    monkeypatch.setenv("TRUFOR_LAB_SHARED", str(shared))
    monkeypatch.setattr(cli, "_free_bytes", lambda device: 10 * GiB)
    monkeypatch.setattr(cli, "_run_child", _fake_child([]))
    args = ["--sizes", "0.003", "--modes", "exact", "--device", "cpu", "--hooks-size", "64", "--hooks-repeat", "1"]
    assert cli.main(args) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "hook overhead" not in out
    assert err.strip().count("\n") == 0 and f"reference data not found at {shared}" in err
    # run directly, the script says the same in one line
    env = {**os.environ, "TRUFOR_LAB_SHARED": str(shared)}
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_hooks.py"), "--weights", "recipe", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert (
        p.returncode != 0
        and p.stderr.strip() == f"error: reference data not found at {shared} (set TRUFOR_LAB_SHARED or --shared)"
    )


def test_compiled_fast_mode_computes_what_the_eager_one_does(monkeypatch, recipe_model, shared_dir):
    """With ``compile=True`` the fast mode compiled and ran the whole plain forward inside its
    autocast, so the decoders ran unfolded in bfloat16 (map 3.8e-3 off exact instead of 2.0e-3).
    ``torch.compile`` is replaced by the identity: what the compiled code must compute."""
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: fn)
    x = to_tensor(case.synthetic_image(64, 96, shared_dir))
    try:
        for amp_on_cpu in (True, False):  # bfloat16 encoder (decoders float32), float32 throughout
            eager = P.predict(recipe_model, x, P.InferenceMode.fast(amp_on_cpu=amp_on_cpu))
            compiled = P.predict(recipe_model, x, P.InferenceMode.fast(amp_on_cpu=amp_on_cpu, compile=True))
            for k in ("logits", "conf_logits", "det_logit", "noiseprint"):
                assert torch.equal(getattr(compiled, k), getattr(eager, k)), (amp_on_cpu, k)
    finally:
        recipe_model.__dict__.pop("_trufor_lab_compiled", None)  # the session's model, as it was
