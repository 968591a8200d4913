"""Pictures for the demo model card: reliability curve and examples on held-out real photos.

    python -m trufor_lab.training.card --photos /data/real --out weights/card [--eval eval.json]

The reliability curve comes from :func:`trufor_lab.training.finetune_real.evaluate_real` on the
test cameras' photos, computed here (and saved as ``OUT/eval.json``) unless ``--eval`` names a
JSON holding it under ``real_test``; the examples run the model given by ``--checkpoint``
(default: the shipped demo model) on photos of the test cameras. Files are written atomically.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from trufor_lab.common.files import atomic_write_bytes, atomic_write_json
from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.load import load_trufor
from trufor_lab.inference.weights import find_demo
from trufor_lab.training.finetune_real import data_splits, evaluate_real
from trufor_lab.training.photos import Photo, real_heldout

__all__ = ["reliability_figure", "examples_figure", "save_figure"]


def save_figure(fig, path: str | Path, dpi: int = 90) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt  # lazy: only drawing needs it

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _pooled(real_test: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per splice variant: (scores, labels) of its items."""
    out = {}
    for key, ev in real_test["splices"].items():
        rows = ev["per_item"]
        out[key] = (np.array([r["score"] for r in rows], float), np.array([r["label"] for r in rows], int))
    return out


def reliability_figure(real_test: dict, bins: Sequence[float] = (0, 0.2, 0.4, 0.6, 0.8, 1.0)):
    """Left: reliability curve (mean score vs fraction actually forged, per score bin, with the
    item counts) of the splice tests; right: scores of the pristine tiles of the test cameras
    against those of forged crops (0.5 marked)."""
    import matplotlib.pyplot as plt  # lazy: only drawing needs it

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--", label="perfectly calibrated")
    edges = np.asarray(bins, float)
    for (key, (s, y)), marker in zip(_pooled(real_test).items(), "os^"):
        idx = np.clip(np.digitize(s, edges[1:-1]), 0, len(edges) - 2)
        xs, ys, ns = [], [], []
        for b in range(len(edges) - 1):
            m = idx == b
            if m.any():
                xs.append(s[m].mean()), ys.append(y[m].mean()), ns.append(int(m.sum()))
        ax.plot(xs, ys, marker=marker, label=key.replace("_", " "))
        for x, v, n in zip(xs, ys, ns):
            ax.annotate(str(n), (x, v), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="demo score (bin mean)", ylabel="fraction forged")
    ax.set_title("Reliability on unseen cameras (numbers: items per bin)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    tiles = np.concatenate([np.asarray(v["scores"], float) for v in real_test["pristine_tiles"].values()])
    forged = np.concatenate([s[y == 1] for s, y in _pooled(real_test).values()])
    grid = np.linspace(0, 1, 21)
    bx.hist(tiles, grid, alpha=0.6, label=f"pristine tiles ({len(tiles)})", color="tab:blue")
    bx.hist(forged, grid, alpha=0.6, label=f"forged crops ({len(forged)})", color="tab:red")
    bx.axvline(0.5, color="k", lw=1)
    bx.set(xlabel="demo score", ylabel="items")
    bx.set_title(f"{(tiles < 0.5).mean():.0%} of pristine tiles below 0.5", fontsize=10)
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def examples_figure(model, photos: Sequence[Photo], size: int = 256, seed: int = 5):
    """Rows: a pristine crop of each test camera, a cross-camera splice (native) and the same
    kind re-saved at JPEG 70-90; columns: image, true mask, localization map (with the score)."""
    import matplotlib.pyplot as plt  # lazy: only drawing needs it

    images = [p.load() for p in photos]  # decoded once, for the crops and both splice draws
    rows = []
    for p, a in zip(photos[:2], images):
        y0, x0 = (a.shape[0] - size) // 16 * 8, (a.shape[1] - size) // 16 * 8  # grid-aligned centre crop
        rows.append((f"pristine, {p.camera}", a[y0 : y0 + size, x0 : x0 + size], None))
    for rec, what in ((None, "splice, native"), ((70, 90), "splice, JPEG 70-90")):
        it = next(i for i in real_heldout(photos, 0, 2, size, seed, rec, images) if i.label == 1)
        rows.append((what, it.image, it.mask))
    fig, axes = plt.subplots(len(rows), 3, figsize=(8, 2.7 * len(rows)), squeeze=False)
    for (title, img, mask), (a0, a1, a2) in zip(rows, axes):
        r = analyze(model, img)
        a0.imshow(img), a0.set_title(title, fontsize=9)
        a1.imshow(np.zeros(img.shape[:2]) if mask is None else mask, cmap="gray", vmin=0, vmax=1)
        a1.set_title("true mask" if mask is not None else "true mask (nothing forged)", fontsize=9)
        a2.imshow(r.map, cmap="RdBu_r", vmin=0, vmax=1)
        a2.set_title(f"map, score {r.score:.2f}", fontsize=9)
        for ax in (a0, a1, a2):
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def recorded_test_photos(splits: dict[str, list], splits_json: str | Path) -> list:
    """The photos of ``splits`` (any split) that a run's ``splits.json`` lists as test: the
    card's unseen-camera numbers come from the run's own split, never a recomputed one."""
    try:
        recorded = {tuple(x) for x in json.loads(Path(splits_json).read_text())["test"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{splits_json}: not a splits.json written by finetune_real ({e})") from None
    test = [p for ps in splits.values() for p in ps if (p.name, p.camera) in recorded]
    missing = recorded - {(p.name, p.camera) for p in test}
    if missing:
        raise ValueError(f"{splits_json}: {len(missing)} test photo(s) not found (e.g. {sorted(missing)[0]})")
    return test


def _cameras(photos: Sequence[Photo]) -> str:
    """The cameras of the camera photos in ``photos`` (not the scikit-image pictures), in a few words."""
    cams = sorted({p.camera for p in photos if not p.source.startswith("skimage:")})
    return f"are of {len(cams)} camera(s) {cams[:4]}" + (" ..." if len(cams) > 4 else "")


def _write_card(model, test: Sequence[Photo], eval_json: str | None, out: Path) -> None:
    """``reliability.png`` and ``examples.png`` (and ``eval.json`` unless ``eval_json`` is given)
    for ``model`` on the ``test`` photos; ``ValueError`` when they cannot be made from them."""
    if eval_json:
        real_test = json.loads(Path(eval_json).read_text())["real_test"]
    else:
        real_test = evaluate_real(model, test)
        plain = json.loads(json.dumps(real_test, default=lambda o: o.tolist() if hasattr(o, "tolist") else float(o)))
        atomic_write_json(out / "eval.json", {"real_test": plain}, indent=1)
    save_figure(reliability_figure(real_test), out / "reliability.png")
    cams = [p for p in test if not p.source.startswith("skimage:")]
    save_figure(examples_figure(model, cams), out / "examples.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trufor_lab.training.card", description=__doc__.splitlines()[0])
    ap.add_argument("--eval", default=None, help="JSON with a 'real_test' entry (default: computed, OUT/eval.json)")
    ap.add_argument("--photos", required=True, help="folder of fetched camera photos")
    ap.add_argument("--checkpoint", default=None, help="demo-style checkpoint (default: the shipped one)")
    ap.add_argument("--out", required=True, help="folder for reliability.png and examples.png")
    ap.add_argument(
        "--splits",
        default=None,
        help="the run's splits.json (finetune_real writes it): the test photos the model never saw; "
        "without it the default camera split is recomputed, which matches only a run made with defaults",
    )
    ap.add_argument("--camera-folders", action="store_true", help="photos are one sub-folder per camera")
    args = ap.parse_args(argv)
    import matplotlib  # lazy: only drawing needs it

    matplotlib.use("Agg")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_trufor(args.checkpoint or find_demo(), kind="demo", device="cpu")
    try:
        splits = {**data_splits(args.photos, camera_folders=args.camera_folders)}
        if args.splits:  # the run's own test split: a photo it trained on must never be scored as unseen
            splits["test"] = recorded_test_photos(splits, args.splits)
    except ValueError as e:
        ap.error(str(e))
    try:
        _write_card(model, splits["test"], args.eval, out)
    except ValueError as e:  # 'needs photos from at least two cameras' was a traceback
        hint = "" if args.splits else " (name the run's own test photos with --splits)"
        print(
            f"error: {args.photos}: the test split's camera photos {_cameras(splits['test'])}: {e}{hint}",
            file=sys.stderr,
        )
        return 2
    print(out / "reliability.png", out / "examples.png")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
