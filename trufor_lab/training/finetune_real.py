"""Fine-tune the demo model on real camera photos, calibrate its score, export it.

    python -m trufor_lab.training.fetch --dest /work/data/real
    python -m trufor_lab.training.finetune_real --photos /work/data/real --out /work/runs/real

(``--round 3`` by default: the shipped model's round, from the shipped model; the card's
recipe runs rounds 1-3 in sequence. Round 1 skips calibration, so it takes no ``--validation``.)

Recipe (CPU, one thread; rounds :data:`ROUND1` .. :data:`ROUND3`, the shipped model, each
starting from the previous one; :data:`ROUND4` .. :data:`ROUND9` are recorded but were not shipped, see the
model card): the three phases of :mod:`trufor_lab.training` run on a
:class:`~trufor_lab.training.photos.RealForgeryStream` of the training cameras (precomputed pool
of examples with their Noiseprint++ maps, grid-aligned crops); then Platt scaling of the
detection logit on the validation cameras (:func:`fit_platt`) moved to a stated base rate of
forgeries (:func:`prior_shift`), folded into the last detection layer (:func:`fold_calibration`)
so the checkpoint keeps exactly the model's keys and loads strictly; the values are recorded in
``meta["calibration"]``. Every phase checkpoints and resumes (``resume=True``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trufor_lab.common.errors import escaped
from trufor_lab.common.files import atomic_torch_save, unwritable_reason
from trufor_lab.lab.forgeries import Forgery
from trufor_lab.model import CheckpointError, extract_state_dict, read_checkpoint
from trufor_lab.training.config import TrainConfig
from trufor_lab.training.demo import DEMO_MODEL, score_heldout
from trufor_lab.training.loop import NAN_ADVICE, train_chain
from trufor_lab.training.phases import PHASES, build_model
from trufor_lab.training.scenes import HELDOUT_SKIMAGE
from trufor_lab.training.photos import (
    DEFAULT_SPLIT,
    SKIMAGE_PHOTOS,
    Photo,
    RealForgeryStream,
    real_heldout,
    scan_photos,
    skimage_photos,
    split_by_camera,
    tile_crops,
)

#: Starting point: the demo model trained on simulated cameras only (sha256 c7aae159...,
#: ``git show 2dfb272:weights/trufor_demo.pt``); today's ``weights/trufor_demo.pt`` is its fine-tune.
DEMO_INIT = str(Path(__file__).resolve().parents[2] / "weights" / "trufor_demo.pt")
#: Steps, learning rate and time cap (s) per phase of the real-photo fine-tune.
#: The localization cap includes precomputing the pool (about 3 s per example on 2 busy cores).
REAL_PHASES = {"localization": (400, 3e-4, 2100), "confidence": (100, 2e-3, 300), "detection": (250, 2e-3, 300)}


def real_config(
    out_dir: str, stream: RealForgeryStream, phase: str = "localization", init: str | None = DEMO_INIT, **overrides
) -> TrainConfig:
    """The fine-tune's :class:`TrainConfig` for ``phase`` (pool of 240 examples of 160 px with
    their Noiseprint++ maps, 128 px training crops, batch 10, one thread: on 2 shared, busy
    cores one thread is faster than two)."""
    steps, lr, cap = REAL_PHASES[phase]
    base = dict(
        phase=phase,
        out_dir=str(Path(out_dir) / phase),
        model=DEMO_MODEL,
        init=init,
        steps=steps,
        batch_size=10,
        crop=128,
        lr=lr,
        warmup=30,
        precompute=240,
        precompute_size=160,
        cache_dir=str(Path(out_dir) / "cache"),
        stream=stream,
        checkpoint_every=50,
        max_seconds=cap,
        num_threads=1,
        progress=False,
        seed=1,
    )
    base.update(overrides)
    return TrainConfig(**base)


def data_splits(photos_dir: str | Path, camera_folders: bool = False) -> dict[str, list[Photo]]:
    """Fetched photos + scikit-image photographs, split by camera (DEFAULT_SPLIT);
    ``camera_folders``: the photos are organised one sub-folder per camera (:func:`scan_photos`)."""
    return split_by_camera(scan_photos(photos_dir, camera_folders=camera_folders) + skimage_photos())


@torch.no_grad()
def detection_logits(model, items: Sequence[Forgery]) -> np.ndarray:
    """Raw detection logits of ``model`` on ``items`` (one forward each, float32)."""
    out, dev = [], next(model.parameters()).device  # the model's own device (a GPU-trained one)
    for it in items:
        rgb = torch.from_numpy(np.array(it.image, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(256)
        out.append(float(model(rgb.to(dev)).det_logit[0, 0]))
    return np.array(out)


def fit_platt(logits: np.ndarray, labels: np.ndarray, prior: float = 1e-2) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` by maximum likelihood with Platt's smoothed
    targets (L-BFGS on the mean log-loss; a small ridge ``prior`` on (a - 1, b) keeps it finite
    on separable data)."""
    from scipy.optimize import minimize  # lazy: scipy is only needed when calibrating

    x, y = np.asarray(logits, float), np.asarray(labels, float)
    if len(np.unique(y)) < 2:
        raise ValueError("fit_platt needs both pristine and forged examples")
    n1, n0 = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * x + w[1]
        nll = np.mean(np.logaddexp(0, z) - t * z)
        p = 1 / (1 + np.exp(-z))
        g = np.array([np.mean((p - t) * x), np.mean(p - t)])
        r = w - np.array([1.0, 0.0])
        return nll + 0.5 * prior * float(r @ r), g + prior * r

    w = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return float(w[0]), float(w[1])


def prior_shift(labels: np.ndarray, base_rate: float) -> float:
    """Logit offset that turns a posterior fitted on ``labels``' class balance into one for a
    population where a fraction ``base_rate`` of the images is forged (Bayes' rule on the odds)."""
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
    y = np.asarray(labels)
    n1, n0 = float((y == 1).sum()), float((y == 0).sum())
    return float(np.log(base_rate / (1 - base_rate)) - np.log(n1 / n0))


def fold_calibration(state_dict: dict[str, torch.Tensor], scale: float, bias: float) -> dict[str, torch.Tensor]:
    """Fold ``logit' = scale * logit + bias`` into the last detection layer (``detection.3``):
    same keys, so the calibrated checkpoint still loads strictly everywhere."""
    sd = dict(state_dict)
    sd["detection.3.weight"] = sd["detection.3.weight"].float() * scale
    sd["detection.3.bias"] = sd["detection.3.bias"].float() * scale + bias
    return sd


def calibrate(checkpoint: str | Path, items: Sequence[Forgery], dst: str | Path, base_rate: float = 0.5) -> dict:
    """Fit Platt scaling of ``checkpoint``'s detection logit on ``items`` (validation cameras) and
    write the calibrated checkpoint to ``dst``; returns the calibration record.

    ``base_rate``: the fraction of forged images the score's probabilities assume (the fit's own
    class balance is corrected to it with :func:`prior_shift`); 0.5 = "as many forged as not"."""
    model = build_model(init=checkpoint).eval()
    logits = detection_logits(model, items)
    labels = np.array([it.label for it in items])
    a, b = fit_platt(logits, labels)
    shift = prior_shift(labels, base_rate)
    b += shift
    obj = read_checkpoint(checkpoint)
    sd = fold_calibration(extract_state_dict(obj, str(checkpoint)), a, b)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    Path(dst).with_suffix(".logits.json").write_text(json.dumps({"logits": logits.tolist(), "labels": labels.tolist()}))
    rec = {
        "method": "platt",
        "scale": a,
        "bias": b,
        "base_rate": base_rate,
        "prior_shift": shift,
        "n_pristine": int((labels == 0).sum()),
        "n_forged": int((labels == 1).sum()),
        "fpr_at_0.5_before": float((logits[labels == 0] > 0).mean()),
        "fpr_at_0.5_after": float((p[labels == 0] > 0.5).mean()),
        "tpr_at_0.5_after": float((p[labels == 1] > 0.5).mean()),
        "cameras": sorted({str(it.params.get("camera")) for it in items}),
    }
    meta = {**obj.get("meta", {}), "calibration": rec}
    atomic_torch_save(Path(dst), {**obj, "state_dict": sd, "meta": meta})
    return rec


def validation_items(val: Sequence[Photo], n: int = 24, size: int = 256, seed: int = 7) -> list[Forgery]:
    """Calibration set: ``n`` pristine + ``n`` spliced native crops of the validation photos
    (splices between their cameras), half re-saved at JPEG 70-90 (platform chain), half native."""
    imgs = [p.load() for p in val]
    items: list[Forgery] = []
    for k, rec in enumerate(((70, 90), None)):
        items += real_heldout(val, n // 2, n // 2, size, seed + k, rec, imgs)
    return items


def _scores(model, images: Sequence[np.ndarray]) -> np.ndarray:
    return 1 / (1 + np.exp(-detection_logits(model, [Forgery(a, None, "x") for a in images])))


def reliability(
    scores: np.ndarray, labels: np.ndarray, bins: Sequence[float] = (0, 0.2, 0.4, 0.6, 0.8, 1.0)
) -> list[dict]:
    """Reliability curve: per score bin, the count, mean score and fraction actually forged."""
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (scores >= lo) & ((scores < hi) if hi < 1 else (scores <= hi))
        rows.append(
            {
                "bin": f"{lo:.1f}-{hi:.1f}",
                "n": int(m.sum()),
                "mean_score": float(scores[m].mean()) if m.any() else float("nan"),
                "fraction_forged": float(labels[m].mean()) if m.any() else float("nan"),
            }
        )
    return rows


def evaluate_real(model, test: Sequence[Photo], size: int = 256, n_splices: int = 24, seed: int = 0) -> dict:
    """Results on the test cameras: false-positive rate at 0.5 on native grid tiles (at most 16)
    of every test photo (per camera), and splice F1/AUC between the camera photos of the test
    split (not the scikit-image pictures), recompressed (JPEG 70-90) and native, against
    pristine crops treated the same way."""
    res: dict = {"pristine_tiles": {}, "splices": {}}
    imgs = {p.name: p.load() for p in test}
    every = []  # the scores themselves: the rounded ones of the record moved 0.5004 to 0.5, no alarm
    for p in test:
        a = imgs[p.name]
        tiles = tile_crops(a, size, limit=16) if min(a.shape[:2]) >= size else [a]
        s = _scores(model, tiles)
        every.append(s)
        res["pristine_tiles"][p.name] = {
            "camera": p.camera,
            "n": len(s),
            "fpr_at_0.5": float((s > 0.5).mean()),
            "median": float(np.median(s)),
            "scores": [round(float(x), 3) for x in s],
        }
    res["pristine_fpr_at_0.5"] = float((np.concatenate(every) > 0.5).mean())
    cams = [p for p in test if min(p.size) >= size and not p.source.startswith("skimage:")]
    for rec in ((70, 90), None):
        items = real_heldout(cams, n_splices, n_splices, size, seed, rec, [imgs[p.name] for p in cams])
        ev = evaluate_items(model, items)
        key = "recompressed_70_90" if rec else "native"
        res["splices"][key] = ev
    return res


def evaluate_items(model, items: Sequence[Forgery]) -> dict:
    """:func:`trufor_lab.training.demo.score_heldout` plus FPR/TPR at 0.5 and a reliability table."""
    ev = score_heldout(model, items)
    rows = ev.per_item
    s = np.array([r["score"] for r in rows])
    y = np.array([r["label"] for r in rows])
    return {
        **ev.as_dict(),
        "fpr_at_0.5": float((s[y == 0] > 0.5).mean()),
        "tpr_at_0.5": float((s[y == 1] > 0.5).mean()),
        "reliability": reliability(s, y),
        "per_item": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }


#: Round 3's platform chain: JPEG 60-98 on 60 % of the real examples, 35 % of the saves in 4:4:4.
_CHAIN3 = {"chain_prob": 0.6, "chain_quality": (60, 98), "chain_p444": 0.35}


def _like_round3(seed: int, **stream: Any) -> dict:
    """Round 3's chain, schedule and calibration with another seed and more stream settings."""
    return dict(
        seed=seed,
        stream_kwargs={**_CHAIN3, **stream},
        phases={"localization": (300, 1.5e-4, 1500), "confidence": (100, 2e-3, 300), "detection": (300, 2e-3, 420)},
        overrides={"detection": {"crop": 160}},
        calibration={"n": 48, "base_rate": 0.2},
    )


#: Round 3 (``run(..., init=<round 2>/detection/last.pt, **ROUND3)``): the round-2 model trained
#: on a platform chain that also re-saves at quality 95-98 and in 4:4:4 chroma (as photo editors
#: do: the Canon test photo's false positives), calibrated on 48 + 48 validation crops for a
#: population where one image in five is forged (``base_rate``).
ROUND3 = _like_round3(3)

#: Round 4 (``run(..., init=<round 3>/detection/last.pt, **ROUND4)``): as round 3 on a three
#: times larger pool of larger examples (720 of 192 px), four times the localization steps.
_POOL4 = {"precompute": 720, "precompute_size": 192}
ROUND4 = dict(
    _like_round3(4),
    phases={"localization": (1200, 1.5e-4, 2400), "confidence": (200, 2e-3, 400), "detection": (600, 2e-3, 900)},
    overrides={"localization": _POOL4, "confidence": _POOL4, "detection": {**_POOL4, "crop": 192}},
)

#: Round 5 (``run(..., init=<round 3>/detection/last.pt, **ROUND5)``, not shipped): round 3's
#: recipe with sources that had been saved again before the splice (``source_resave``: editors,
#: messengers), as both test cameras' photos were. Re-saved splices ranked no better and more
#: pristine test tiles scored above 0.5 (see the model card).
ROUND5 = _like_round3(5, source_resave=0.5)

#: Round 6 (``run(..., init=<round 3, shipped>, **ROUND6)``): round 5 with messenger-sized
#: sources: a re-saved source is downscaled by 0.2-0.6 half of the time (a 12 MP photo sent at
#: 800-2400 px), as both test cameras' photos were (by about 0.28), instead of 0.5-0.9.
ROUND6 = _like_round3(6, source_resave=0.5, source_scale=(0.2, 0.6))

#: Round 7 (``run(..., init=<round 3, shipped>, **ROUND7)``): fewer splices between the two
#: real training cameras (whose identities a model can learn) and, instead, splices between
#: photos of any cameras that were each saved again on their own (the fourth kind of
#: :class:`~trufor_lab.training.photos.RealForgeryStream`: processing history, not camera).
ROUND7 = _like_round3(7, source_resave=0.3, source_scale=(0.25, 0.9), weights=(0.15, 0.2, 0.3, 0.35))

#: Round 8 (``run(..., init=<round 3, shipped>, **ROUND8)``): round 3's recipe with a third of
#: the real examples, pristine and forged alike, edited as a whole (tone, contrast, colour,
#: sharpening, noise reduction: :mod:`~trufor_lab.training.edits`), as processed but authentic
#: pictures are, so that processing everywhere is not read as manipulation.
ROUND8 = _like_round3(8, global_edit=0.35)

#: Round 9 (``run(..., init=<round 3, shipped>, **ROUND9)``): camera diversity from simulated
#: cameras on *real content*: the training cameras' photos downscaled by 4 (their own traces
#: erased, scenes, textures and light kept) are the scenes of 70 % of the simulated examples,
#: which make 45 % of all (25 % before); their cameras also vary in JPEG chroma subsampling and
#: noise reduction; half of their forgeries are splices between two simulated cameras, and 60 %
#: of them, pristine and forged alike, go through round 3's platform chain as the real ones do.
#: Also measured: the same with the photos downscaled by 8 (``"rephotograph": 8`` in its
#: ``stream_kwargs``), the better of the two on the validation photos.
_SIM9 = {"rephotograph": 4, "rephotograph_share": 0.7, "sim_splice": 0.5, "sim_chain": 0.6, "wide_cameras": True}
ROUND9 = _like_round3(9, sim_fraction=0.45, **_SIM9)

#: Round 1 (``run(..., **ROUND1)``): only its localization checkpoint is kept (its split had
#: the whole Fujifilm camera as validation); round 2 starts from it with the final split.
ROUND1 = dict(
    split={"validation": ("FUJIFILM FinePix REAL 3D W3",), "test": ()},
    seed=1,
    stream_kwargs={"chain_prob": 0.5, "chain_quality": (70, 90)},
    calibration={"skip": True},  # one validation camera: nothing to splice; the card kept none of it
)
#: Round 2 (``run(..., init=<round 1>/localization/last.pt, **ROUND2)``); round 3 starts from it.
ROUND2 = dict(
    seed=2,
    stream_kwargs={"chain_prob": 0.6, "chain_quality": (60, 95)},
    phases={"localization": (300, 2e-4, 1500), "confidence": (100, 2e-3, 300), "detection": (300, 2e-3, 420)},
    overrides={"detection": {"crop": 160}},
)

#: Every recorded round by number (the command line's ``--round``); 1-3 made the shipped model.
ROUNDS = {1: ROUND1, 2: ROUND2, 3: ROUND3, 4: ROUND4, 5: ROUND5, 6: ROUND6, 7: ROUND7, 8: ROUND8, 9: ROUND9}


def _check_decodes(splits: dict[str, list[Photo]], crop: int) -> None:
    """Every validation and test photo decoded now (a cut JPEG or MPO frame failed after all
    the training), and a validation photo checked to hold a ``crop`` px calibration crop."""
    for s in ("validation", "test"):
        for p in splits[s]:
            h, w = p.load().shape[:2]
            if s == "validation" and min(h, w) < crop:
                raise ValueError(f"{p.source}: validation photo {p.name} is {h}x{w}, smaller than a {crop} px crop")


def run(
    photos_dir: str | Path,
    out_dir: str | Path,
    init: str | None = DEMO_INIT,
    *,
    split: dict | None = None,
    seed: int = 1,
    stream_kwargs: dict | None = None,
    phases: dict | None = None,
    overrides: dict | None = None,
    calibration: dict | None = None,
    camera_folders: bool = False,
    required: Sequence[str] | None = None,
) -> Path:
    """One round of the recipe; returns the calibrated float32 checkpoint (export it with
    ``trufor_lab.training.export_checkpoint(..., kind="demo")``). ``split`` replaces the
    validation and test names of ``DEFAULT_SPLIT`` that it gives non-empty (cameras, or
    ``photo:<name>``), except that the held-out scikit-image pictures (``HELDOUT_SKIMAGE``, never
    used in training) stay in test unless ``split`` names them elsewhere; its names must match a
    photo (``required``: only these must);
    ``phases`` maps phase -> (steps, lr, time cap); ``calibration``: ``n`` validation items per
    class and the ``base_rate`` of :func:`calibrate` (``{"skip": True}``: none, the detection
    checkpoint is returned). The splits are checked before any training: calibration splices
    validation photos of two cameras at least, and every validation and test photo is decoded
    (a validation one at least as large as the calibration crops)."""
    torch.set_num_threads(1)
    out = Path(out_dir)
    sp = dict(DEFAULT_SPLIT)
    if split:
        sp.update({k: tuple(v) for k, v in split.items() if v})
        named = {" ".join(n.split()).casefold() for k, v in split.items() if k != "test" for n in v}
        kept = [
            f"skimage:{n}"
            for n in HELDOUT_SKIMAGE
            if n in SKIMAGE_PHOTOS and not {f"skimage:{n}", f"photo:{n}"} & named
        ]  # the held-out pictures stay in test unless moved by name
        have = {" ".join(n.split()).casefold() for n in sp.get("test", ())}
        sp["test"] = tuple(sp.get("test", ())) + tuple(k for k in kept if k not in have)
    cal = {"n": 24, "base_rate": 0.5, "skip": False, **(calibration or {})}
    with warnings.catch_warnings(record=True) as caught:  # names of the default split not in a user's folder
        warnings.simplefilter("always")
        photos = scan_photos(photos_dir, camera_folders=camera_folders) + skimage_photos()
        given = [n for v in (split or {}).values() for n in v] if required is None else required
        splits = split_by_camera(photos, sp, required=given)
    for w in caught:  # said as they were (copies left out, make-only EXIF, unmatched names)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    val_cams = sorted({p.camera for p in splits["validation"]})
    if not cal["skip"] and len(val_cams) < 2:
        unmatched = "; ".join(str(w.message) for w in caught)
        raise ValueError(
            f"{photos_dir}: the validation split has photos of {len(val_cams)} camera(s) {val_cams}; calibration "
            "splices between two at least: name them with --validation CAMERA_OR_photo:NAME ..."
            + (f" ({unmatched})" if unmatched else "")
        )
    _check_decodes(splits, 256)  # minutes to hours before calibration or the card would fail
    out.mkdir(parents=True, exist_ok=True)
    (out / "splits.json").write_text(
        json.dumps({k: [(p.name, p.camera) for p in v] for k, v in splits.items()}, indent=1)
    )
    stream = RealForgeryStream(splits["train"], **(stream_kwargs or {}))
    t0 = time.time()
    cfgs = [
        real_config(
            str(out),
            stream,
            phase,
            init,
            steps=(phases or REAL_PHASES)[phase][0],
            lr=(phases or REAL_PHASES)[phase][1],
            max_seconds=(phases or REAL_PHASES)[phase][2],
            seed=seed,
            **(overrides or {}).get(phase, {}),
        )
        for phase in PHASES
    ]
    results = train_chain(cfgs)  # a phase after one that trained further starts again from it
    for phase, r in results.items():
        print(f"{phase}: step {r.step} loss {r.final_loss:.4f} ({r.seconds:.0f} s)", flush=True)
    print(f"{time.time() - t0:.0f} s in all", flush=True)
    last = str(results[PHASES[-1]].checkpoint)
    if cal["skip"]:
        return Path(last)
    items = validation_items(splits["validation"], n=cal["n"])
    rec = calibrate(last, items, out / "calibrated.pt", base_rate=cal["base_rate"])
    print("calibration", json.dumps(rec), flush=True)
    return out / "calibrated.pt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trufor_lab.training.finetune_real")
    ap.add_argument("--photos", required=True, help="folder of camera photos (fetch.py --dest)")
    ap.add_argument(
        "--camera-folders",
        action="store_true",
        help="the photos are organised one sub-folder per camera (else: EXIF model, or each photo its own)",
    )
    ap.add_argument("--out", required=True, help="run folder (outside the repository)")
    ap.add_argument(
        "--init",
        default=DEMO_INIT,
        help="checkpoint to fine-tune (default: the shipped demo model, already calibrated)",
    )
    ap.add_argument(
        "--round",
        type=int,
        choices=sorted(ROUNDS),
        default=3,
        help="recipe round (ROUND1..ROUND9; default 3, the shipped one)",
    )
    ap.add_argument(
        "--validation",
        nargs="+",
        metavar="NAME",
        help="cameras (or photo:<file stem>) held out for calibration, two cameras at least "
        "(default: the fetched data's; with your own photos, name yours)",
    )
    ap.add_argument("--test", nargs="+", metavar="NAME", help="cameras held out whole for testing (default: as above)")
    args = ap.parse_args(argv)
    recipe = dict(ROUNDS[args.round])
    split = dict(recipe.pop("split", {}) or {})
    split.update({k: v for k, v in (("validation", args.validation), ("test", args.test)) if v})
    if (recipe.get("calibration") or {}).get("skip"):
        if args.validation:  # held out of training, and then never used
            print(
                f"error: --validation: round {args.round} skips calibration (no validation photos used)",
                file=sys.stderr,
            )
            return 2
        print(
            f"note: round {args.round} skips calibration: the result is the uncalibrated detection checkpoint",
            file=sys.stderr,
        )
    problem = unwritable_reason(args.out)
    if problem is not None:
        print(f"error: --out {escaped(args.out)}: cannot write there ({escaped(problem)})", file=sys.stderr)
        return 2
    try:
        given = [*(args.validation or ()), *(args.test or ())]  # the recipe's own names may miss
        print(
            run(
                args.photos,
                args.out,
                args.init,
                camera_folders=args.camera_folders,
                split=split,
                required=given,
                **recipe,
            )
        )
    except (ValueError, OSError, RuntimeError, CheckpointError, FloatingPointError) as e:  # one line, no traceback
        # this command has no --lr: a round's learning rates are set from Python (run(..., phases=...))
        said = str(e).replace(NAN_ADVICE, "start again in another --out with lower learning rates (run's phases)")
        lines = [ln for ln in said.splitlines() if ln.strip()]
        print(f"error: {escaped(lines[0] if lines else type(e).__name__)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (checkpoints kept: rerun the same command to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
