"""Overhead of trufor_lab.capture: a TruFor forward with and without capturing 10 layers.

Runs the two variants interleaved (plain, captured, plain, captured, ...) so that machine
noise hits both alike, and prints median/min times and the overhead ratio.

    python bench/bench_hooks.py --size 256 --repeat 10 [--device cuda] [--weights recipe]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere without relying on the editable install

import torch  # noqa: E402

from bench.case import build_model as build_recipe_model, shared_dir  # noqa: E402
from trufor_lab.model.capture import capture  # noqa: E402
from trufor_lab.model import TruFor  # noqa: E402

LAYERS = [
    "noiseprint",
    "rgb.stage1.out",
    "noiseprint.stage1.out",
    "fusion.stage1.frm.rgb",
    "fusion.stage1.ffm",
    "rgb.stage2.block1",
    "fusion.stage2.ffm",
    "fusion.stage3.ffm",
    "fusion.stage4.ffm",
    "decoder.anomaly.fused",
]


def build_model(weights: str, shared: Path) -> TruFor:
    """Random weights, or the recipe weights as ``python -m bench`` builds them (from ``shared``)."""
    if weights == "recipe":
        return build_recipe_model(shared)
    return TruFor().eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="square input side (pixels)")
    ap.add_argument("--repeat", type=int, default=10, help="timed pairs")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--weights", choices=("random", "recipe"), default="random")
    ap.add_argument(
        "--shared", type=Path, default=None, help="reference data (default: $TRUFOR_LAB_SHARED, else ../shared)"
    )
    ap.add_argument("--no-to-cpu", action="store_true", help="keep captures on the device")
    args = ap.parse_args()

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    torch.manual_seed(0)
    shared = args.shared or shared_dir()
    if args.weights == "recipe" and not (shared / "fixtures" / "trufor_parity").is_dir():
        sys.exit(f"error: reference data not found at {shared} (set TRUFOR_LAB_SHARED or --shared)")
    model = build_model(args.weights, shared).to(device)
    x = torch.rand(1, 3, args.size, args.size, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def plain() -> None:
        model(x)

    def captured() -> None:
        with capture(model, LAYERS, to_cpu=not args.no_to_cpu) as cap:
            model(x)
        assert len(cap.tensors) == len(LAYERS)

    times: dict[str, list[float]] = {"plain": [], "captured": []}
    with torch.inference_mode():
        for _ in range(args.warmup):
            plain()
            captured()
        for _ in range(args.repeat):
            for name, fn in (("plain", plain), ("captured", captured)):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)

    print(
        f"TruFor forward, {args.size}x{args.size}, {device}, {args.weights} weights, "
        f"{len(LAYERS)} layers captured (to_cpu={not args.no_to_cpu}), {args.repeat} interleaved pairs"
    )
    for name, ts in times.items():
        print(f"  {name:9s} median {statistics.median(ts) * 1e3:9.2f} ms   min {min(ts) * 1e3:9.2f} ms")
    med = statistics.median(times["captured"]) / statistics.median(times["plain"])
    best = min(times["captured"]) / min(times["plain"])
    print(f"  overhead ratio: median {med:.3f} ({(med - 1) * 100:+.1f}%), min {best:.3f} ({(best - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
