"""Redraw time of the FeatureExplorer on a 1 MP image: the model runs once, then every control
change only redraws from the captured tensors. Prints the one-off forward and the redraw time
per kind of change (median of the repeats).

    python bench/bench_widgets.py [--mp 1.0] [--repeat 5] [--weights demo|recipe] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# each step: the controls changed, as a person would move them one after the other
STEPS = [
    ("channel slider", {"mode": "channel", "channel": 5}),
    ("channel slider", {"channel": 9}),
    ("grid mode", {"mode": "grid"}),
    ("PCA mode", {"mode": "pca"}),
    ("other stage", {"stage": 2, "layer": "out"}),
    ("other branch", {"branch": "noiseprint"}),
    ("side by side", {"side_by_side": True}),
]


def build(weights: str, device: str):
    import trufor_lab as tl

    if weights == "demo":
        from trufor_lab.inference import weights as W

        return tl.load_trufor(W.find_demo(), kind="demo", device=device)
    from bench.bench_hooks import build_model

    return build_model("recipe", REPO.parent / "shared").to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=float, default=1.0, help="image size in megapixels (4:3)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--weights", choices=("demo", "recipe"), default="demo")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from trufor_lab.widgets.feature_explorer import FeatureExplorer
    from bench.case import image_size, shared_dir, synthetic_image

    h, w = image_size(args.mp)
    img = synthetic_image(h, w, shared_dir())
    model = build(args.weights, args.device)
    t0 = time.perf_counter()
    fe = FeatureExplorer(model, img)
    _ = fe.png  # first picture
    first = time.perf_counter() - t0
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        fe.set(branch="rgb", stage=1, layer="out", mode="pca", channel=0, side_by_side=False)
        for label, change in STEPS:
            t = time.perf_counter()
            fe.set(**change)
            times.setdefault(label, []).append(time.perf_counter() - t)
    print(
        f"FeatureExplorer, {w}x{h} ({w * h / 1e6:.2f} MP), {args.weights} weights, {args.device}, "
        f"torch {torch.__version__}"
    )
    print(f"  model run once + first picture: {first:8.2f} s")
    for label, ts in times.items():
        print(
            f"  redraw after {label:<15} median {1000 * statistics.median(ts):7.1f} ms   max {1000 * max(ts):7.1f} ms"
        )
    allt = [t for ts in times.values() for t in ts]
    print(
        f"  all redraws: median {1000 * statistics.median(allt):.1f} ms, max {1000 * max(allt):.1f} ms, "
        f"{np.mean(np.array(allt) < 1.0) * 100:.0f}% under 1 s"
    )


if __name__ == "__main__":
    main()
