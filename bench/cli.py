"""``python -m bench``: the official-algorithm baseline vs the exact and fast modes, in one run.

    python -m bench [--sizes 0.25,1,3] [--device cpu|cuda] [--modes baseline,exact,fast,fast32,fast-bf16]
                    [--repeat N] [--runs N] [--warmup N] [--budget-mib MiB] [--compile]
                    [--weights recipe|demo] [--json out.json] [--no-hooks] [--timeout S]

For every size (megapixels, 4:3 images cut from an official sample, mirrored to size) and
mode, a subprocess builds TruFor with the deterministic recipe weights (no official
checkpoint needed), times the forward and measures its peak memory: CUDA
``max_memory_allocated`` above the baseline, or on the CPU the peak RSS (``VmHWM``, reset
after loading the model and trimming the heap) above the model's RSS and in total (the "total
peak vs baseline" ratio divides totals: runtime and weights included, so it understates how
much less the forward itself needs). One untimed run comes first (``--warmup``). With ``--repeat N`` the modes
run in N interleaved rounds (baseline, exact, fast, baseline, ...; one subprocess each) and the
best time is kept, so that ratios on a shared machine compare like with like. Modes:

- ``baseline``: the official algorithm as the official code runs it: the plain ``nn.Module``
  forward, ``model(x)`` under ``no_grad``, with PyTorch's default settings (oneDNN on), the
  attention formula as written (``set_attention('plain')``), NCHW, no chunking; on CUDA with
  cuDNN off, as the official test configuration sets it;
- ``exact``: ``trufor_lab.inference.predict.predict(model, x, 'exact')`` (IEEE float32);
- ``fast``: ``predict(model, x, 'fast')``: Noiseprint++ IEEE float32 but by Winograd in bands on
  CPUs whose PyTorch has NNPACK, channels-last elsewhere; the encoder in bfloat16 (patch
  embeddings and FFMs float32) on CUDA, float32 on CPUs; approximate;
- ``fast32``: the fast mode without bfloat16 (``InferenceMode.fast(amp_dtype=None)``): only the
  fast Noiseprint++ differs from exact, so it stays within the float32 tolerances;
- ``fast-bf16``: the fast mode with the bfloat16 encoder on CPUs with native bfloat16 too
  (``InferenceMode.fast(amp_on_cpu=None)``, opt-in).

A mode whose arithmetic on this device is that of a mode before it (``fast32`` and, without
native bfloat16, ``fast-bf16`` on CPUs; ``fast-bf16`` on CUDA) is skipped and says so.

``--weights demo`` runs the embedded demo model instead of the recipe weights (trained weights:
the deviations a user meets; a smaller network, so not for speed claims against the baseline).

It prints time, peak memory, speed-up vs baseline, which forward ran (the baseline's plain
module forward; for the other modes the whole-image or the memory-lean one, ``lean`` in the
JSON) and the deviation of every mode from ``exact`` (max |Δmap|, its 99th and 99.9th
percentiles over the pixels, max |Δconf|, |Δscore|, Noiseprint++ max |Δ|). A case whose
estimated peak does not fit in free memory is skipped and reported as such. ``--budget-mib``
runs every mode but the baseline through the lean forward with that chunk budget (without it,
the lean forward runs only where the whole image does not fit). ``bench/bench_hooks.py``
(capture overhead) runs afterwards when present; its failure fails the bench.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from bench.case import REPO, image_size, inference_modes, run_case, shared_dir

#: ``--help``'s description, for ``python -m bench`` and ``trufor-lab bench`` alike.
DESCRIPTION = (
    "Time the official-algorithm baseline against the exact and fast inference modes (speed, peak memory, "
    "deviation from exact), with the recipe MiT-B2 weights (or the demo model), one subprocess per case; see "
    "bench/README.md."
)

MODES = ("baseline", "exact", "fast", "fast32", "fast-bf16")
RESULT_TAG = "BENCH_RESULT "
GiB = 1 << 30
MODEL_BYTES = 300 << 20  # weights (68 M float32) and a little
RUNTIME_BYTES = 600 << 20  # CPU: Python, torch, allocator slack


def same_arithmetic(modes: Sequence[str], device: str) -> dict[str, str]:
    """Mode -> the earlier mode of ``modes`` that computes the same on ``device`` (autocast that
    does not apply there makes two modes equal)."""
    import dataclasses

    from trufor_lab.inference.predict import uses_autocast

    kind = "cuda" if device.startswith("cuda") else "cpu"
    known = inference_modes()

    def effective(m: Any) -> Any:  # amp_on_cpu matters only on a CPU, amp_dtype only under autocast
        if not uses_autocast(m, kind):
            return dataclasses.replace(m, amp_dtype=None, amp_on_cpu=None)
        return m if kind == "cpu" else dataclasses.replace(m, amp_on_cpu=None)

    same: dict[str, str] = {}
    for i, mode in enumerate(modes):
        for earlier in modes[:i]:
            if mode in known and earlier in known and effective(known[mode]) == effective(known[earlier]):
                same[mode] = earlier
                break
    return same


# -- the driver --------------------------------------------------------------------------------
def _free_bytes(device: str) -> int:
    if device.startswith("cuda"):
        p = subprocess.run(
            [sys.executable, "-c", f"import torch; print(torch.cuda.mem_get_info({device!r})[0])"],  # cuda:1 too
            capture_output=True,
            text=True,
            timeout=300,
        )
        return int(p.stdout.strip() or 0)
    from trufor_lab.model.lean import free_memory_bytes

    return free_memory_bytes("cpu")


def estimate_bytes(mode: str, h: int, w: int, device: str, free: int, budget: int | None = None) -> int:
    """Rough peak of a case (tensors + weights + runtime), to skip what cannot fit. ``budget``
    (``--budget-mib``) forces the lean forward for every mode but the baseline. On the CPU the
    convolutions are oneDNN's where it is on (as in the official code), else the GEMM path's."""
    import torch

    from trufor_lab.model.lean import estimate_lean_peak, estimate_plain_peak
    from trufor_lab.model.winograd import winograd_applies

    dtype = "cuda" if device.startswith("cuda") else "cpu"
    winograd = mode.startswith("fast") and winograd_applies(dtype, torch.float32)
    extra = MODEL_BYTES + (RUNTIME_BYTES if dtype == "cpu" else 0)
    if mode == "baseline":  # the module forward: attention as written, unfolded decoders
        return estimate_plain_peak(h, w, device_type=dtype, attention_impl="plain", unfolded_decoders=True) + extra
    lean = estimate_lean_peak(h, w, budget_bytes=budget or int(min(max(free // 4, 256 << 20), 4 * GiB)))["peak"]
    if budget:
        return lean + extra
    plain = estimate_plain_peak(h, w, device_type=dtype, attention_impl="sdpa", winograd=winograd)
    return (plain if plain < 0.8 * free else lean) + extra


def _deviation(a: Path, b: Path) -> dict[str, float]:
    import numpy as np

    za, zb = np.load(a), np.load(b)
    d = {k: np.abs(za[k].astype(np.float64) - zb[k].astype(np.float64)) for k in ("map", "conf", "score", "noiseprint")}
    out = {k: float(v.max()) for k, v in d.items()}
    out["map_q99"], out["map_q99.9"] = (float(q) for q in np.quantile(d["map"], [0.99, 0.999]))
    return out


def _run_child(mode: str, h: int, w: int, args: argparse.Namespace, save: Path | None) -> dict[str, Any]:
    cmd = (
        [
            sys.executable,
            "-m",
            "bench",
            "--case",
            mode,
            "--height",
            str(h),
            "--width",
            str(w),
            "--device",
            args.device,
            "--repeat",
            str(args.runs),
            "--warmup",
            str(args.warmup),
        ]
        + (["--save", str(save)] if save else [])
        + (["--compile"] if args.compile else [])
        + (["--budget-mib", str(args.budget_mib)] if args.budget_mib else [])
        + ["--weights", args.weights]
    )
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {args.timeout} s"}
    for line in p.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return {"status": "ok", **json.loads(line[len(RESULT_TAG) :])}
    why = "killed (out of memory?)" if p.returncode in (-9, 137) else f"exit {p.returncode}"
    tail = (p.stderr.strip().splitlines() or [""])[-1][:300]
    return {"status": "failed", "reason": f"{why}: {tail}"}


def _budget(args: argparse.Namespace) -> int | None:
    return args.budget_mib << 20 if args.budget_mib else None


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / (1 << 20):.0f} MiB"


def run_hooks_bench(device: str, size: int, repeat: int, timeout: float) -> dict[str, Any] | None:
    """Run bench/bench_hooks.py (capture overhead) if another engineer's script is there."""
    script = REPO / "bench" / "bench_hooks.py"
    if not script.is_file():
        return None
    cmd = [
        sys.executable,
        str(script),
        "--size",
        str(size),
        "--repeat",
        str(repeat),
        "--warmup",
        "1",
        "--device",
        device,
        "--weights",
        "recipe",
    ]
    run = {"cmd": " ".join(cmd)}
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**run, "rc": None, "status": "failed", "reason": f"timed out after {timeout} s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or [""])[-1][:300]
        return {**run, "rc": p.returncode, "status": "failed", "reason": f"exit {p.returncode}: {last}"}
    return {**run, "rc": 0, "status": "ok", "output": p.stdout.strip()}


def _sizes(text: str) -> list[float]:
    """``--sizes``: positive megapixels, comma-separated; a one-line ``SystemExit`` otherwise."""
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or not all(math.isfinite(mp) and mp > 0 for mp in sizes):
        raise SystemExit(f"error: --sizes {text!r}: give positive megapixels, comma-separated (e.g. 0.25,1,3)")
    return sizes


def device_error(device: str) -> str | None:
    """Why ``device`` cannot run the bench (one line), or ``None``: only ``cpu`` and an available
    ``cuda[:N]``; without CUDA every case would be skipped as if out of memory."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        return f"--device {device!r}: not a device; use cpu or cuda"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {device}: CUDA is not available (this PyTorch or machine has no usable GPU)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)"
    elif dev.type != "cpu":
        return f"--device {device}: the bench runs on cpu or cuda"
    return None


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _sizes(args.sizes)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"error: unknown mode(s) {bad}; choose from {MODES}")
    if not (shared_dir() / "images" / "tampered1.png").is_file():
        raise SystemExit(f"error: reference data not found at {shared_dir()} (set TRUFOR_LAB_SHARED)")
    free = _free_bytes(args.device)
    same = same_arithmetic(modes, args.device)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": args.device,
        "weights": args.weights,
        "budget_bytes": _budget(args),
        "free_bytes_at_start": free,
        "host_cpus": os.cpu_count(),
        "cases": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="trufor_bench_"))
    try:
        for mp in sizes:
            h, w = image_size(mp)
            saved: dict[str, Path] = {}
            rows: dict[str, dict[str, Any]] = {}
            for mode in modes:
                need = estimate_bytes(mode, h, w, args.device, free, _budget(args))
                rows[mode] = {"size_mp": mp, "height": h, "width": w, "mode": mode, "estimate_bytes": need}
                if mode in same:
                    rows[mode].update(status="skipped", reason=f"same arithmetic as {same[mode]} on this device")
                elif need > 0.9 * free:
                    rows[mode].update(status="skipped", reason=f"needs ~{_fmt_bytes(need)}, {_fmt_bytes(free)} free")
            for rnd in range(args.repeat):  # interleaved rounds: every mode sees the same machine load
                for mode in modes:
                    row = rows[mode]
                    if row.get("status") in ("skipped", "failed"):
                        continue
                    save = tmp / f"{mp}_{mode}.npz" if rnd == 0 else None
                    res = _run_child(mode, h, w, args, save)
                    if res["status"] != "ok":
                        row.update(res)
                        continue
                    if save:
                        saved[mode] = save
                    times = row.get("times_s", []) + res["times_s"]
                    peak = max(row.get("peak_bytes", 0), res["peak_bytes"])
                    above = max(row.get("peak_above_baseline_bytes", 0), res["peak_above_baseline_bytes"])
                    row.update(res, times_s=times, time_s=min(times), peak_bytes=peak, peak_above_baseline_bytes=above)
            for row in rows.values():
                _print_row(row, args)
            ref = rows.get("baseline")
            ref = ref if ref is not None and ref.get("status") == "ok" else None
            for row in rows.values():
                if row.get("status") != "ok":
                    continue
                if ref is not None:
                    row["speedup_vs_baseline"] = ref["time_s"] / row["time_s"]
                    row["peak_vs_baseline"] = row["peak_bytes"] / ref["peak_bytes"]
                if "exact" in saved and row["mode"] != "exact" and row["mode"] in saved:
                    row["deviation_vs_exact"] = _deviation(saved[row["mode"]], saved["exact"])
                report.setdefault("device_name", row.get("device_name"))
                report.setdefault("torch", row.get("torch"))
            report["cases"] += list(rows.values())
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()
    if not args.no_hooks:
        report["hooks"] = run_hooks_bench(args.device, args.hooks_size, args.hooks_repeat, args.timeout)
    return report


def forward_name(row: dict[str, Any]) -> str:
    """Which forward a case ran: the baseline's plain module forward, else the whole-image or
    the memory-lean one (``-`` when the case did not run)."""
    if row["mode"] == "baseline":
        return "plain module"
    return "-" if "lean" not in row else "lean" if row["lean"] else "whole-image"


def _print_row(row: dict[str, Any], args: argparse.Namespace) -> None:
    if args.quiet:
        return
    head = f"{row['size_mp']:>6g} MP {row['width']}x{row['height']:<6} {row['mode']:<9}"
    if row["status"] != "ok":
        print(f"{head} {row['status']}: {row['reason']}", flush=True)
        return
    print(
        f"{head} {row['time_s']:8.2f} s (best of {len(row['times_s'])}, {forward_name(row)} forward)  "
        f"peak {'CUDA memory' if args.device.startswith('cuda') else 'RSS'} {_fmt_bytes(row['peak_bytes'])} "
        f"({_fmt_bytes(row['peak_above_baseline_bytes'])} above the loaded model)",
        flush=True,
    )


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of the cases (time, memory, ratios to the baseline, deviation from exact)."""
    lines = [
        "| MP | W x H | mode | forward | time (s) | speed-up vs baseline | peak (total) | peak above model | "
        "total peak vs baseline | max Δmap vs exact | Δmap q99.9 vs exact | Δmap q99 vs exact | "
        "Δscore vs exact | max Δconf vs exact | max ΔNoiseprint++ vs exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:
        lead = f"| {r['size_mp']:g} | {r['width']}x{r['height']} | {r['mode']} | {forward_name(r)} |"
        if r.get("status") != "ok":
            lines.append(f"{lead} {r.get('status')}: {r.get('reason')} | | | | | | | | | | |")
            continue
        d = r.get("deviation_vs_exact")
        dev = (
            " | ".join(
                f"{d[k]:.1e}" if k in d else "-" for k in ("map", "map_q99.9", "map_q99", "score", "conf", "noiseprint")
            )
            if d
            else ("0 (is exact) | 0 | 0 | 0 | 0 | 0" if r["mode"] == "exact" else "- | - | - | - | - | -")
        )
        sp, pk = r.get("speedup_vs_baseline"), r.get("peak_vs_baseline")
        lines.append(
            f"{lead} {r['time_s']:.2f} | {'-' if sp is None else f'{sp:.2f}x'} | "
            f"{_fmt_bytes(r['peak_bytes'])} | {_fmt_bytes(r['peak_above_baseline_bytes'])} | "
            f"{'-' if pk is None else f'{pk:.2f}'} | {dev} |"
        )
    return "\n".join(lines)


def _whole_number(least: int) -> Any:
    """An argparse type: a whole number >= ``least`` (``--repeat 0`` ended in a KeyError, ``--runs 0``
    failed every case)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = least - 1
        if n < least:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}")
        return n

    return parse


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--sizes", default="0.25,1,3", help="image sizes in megapixels, comma-separated")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument(
        "--repeat",
        type=_whole_number(1),
        default=1,
        help="interleaved rounds, one subprocess per mode and round (the best time is reported)",
    )
    p.add_argument("--warmup", type=_whole_number(0), default=None, help="untimed runs first (default: 1)")
    p.add_argument(
        "--runs",
        type=_whole_number(1),
        default=None,
        help="timed runs in each subprocess, best kept (default: 5 on CUDA, 1 on CPU)",
    )
    p.add_argument("--compile", action="store_true", help="fast mode with torch.compile")
    p.add_argument(
        "--weights",
        choices=("recipe", "demo"),
        default="recipe",
        help="recipe weights (MiT-B2, the default) or the embedded demo model (trained; smaller)",
    )
    p.add_argument(
        "--budget-mib",
        type=_whole_number(1),
        default=None,
        help="run exact and fast through the lean forward with this chunk working set (default: the lean "
        "forward only where the whole image does not fit, budget 1/4 of free memory, <= 4 GiB)",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--no-hooks", action="store_true", help="skip bench/bench_hooks.py")
    p.add_argument("--hooks-size", type=_whole_number(1), default=256)
    p.add_argument("--hooks-repeat", type=_whole_number(1), default=5)
    p.add_argument("-q", "--quiet", action="store_true")
    # one case (internal: the driver runs every case in a subprocess of its own)
    p.add_argument("--case", choices=MODES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--height", type=_whole_number(1), default=None, help=argparse.SUPPRESS)
    p.add_argument("--width", type=_whole_number(1), default=None, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    why = device_error(args.device)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if args.compile and args.budget_mib:  # the fast rows were eager, labelled compiled
        print("error: --compile compiles the whole-image forward, which --budget-mib never runs", file=sys.stderr)
        return 2
    if args.warmup is None:  # the first run pays one-time costs (oneDNN primitives, allocator), unequally per mode
        args.warmup = 1
    if args.runs is None:
        args.runs = 5 if args.device.startswith("cuda") else 1
    if args.case:
        res = run_case(
            args.case,
            args.height,
            args.width,
            args.device,
            args.repeat,
            args.warmup,
            args.compile,
            args.save,
            _budget(args),
            args.weights,
        )
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0
    report = run_bench(args)
    print()
    print(format_table(report))
    hooks = report.get("hooks")
    if hooks and hooks["status"] == "ok":
        print(f"\nhook overhead ({hooks['cmd']}):\n{hooks['output']}")
    elif hooks:
        print(f"\nhook overhead: failed ({hooks['reason']}): {hooks['cmd']}", file=sys.stderr)
    if args.json:
        from trufor_lab.common.files import atomic_write_json

        atomic_write_json(args.json, report, indent=1)
        print(f"\nreport: {args.json}")
    failed = any(r["status"] == "failed" for r in report["cases"]) or bool(hooks and hooks["status"] != "ok")
    return 1 if failed else 0


def register_cli(subparsers: Any) -> None:
    """``trufor-lab bench`` (when the repository root is importable)."""
    add_arguments(
        subparsers.add_parser(
            "bench", help="time the official baseline vs exact vs fast inference", description=DESCRIPTION
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = add_arguments(argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)).parse_args(argv)
    return args.func(args)
