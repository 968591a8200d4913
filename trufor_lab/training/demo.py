"""The demo model's recipe (architecture, steps, data) and its held-out test sets and scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.lab.forgeries import Forgery, pristine
from trufor_lab.lab.metrics import detection_metrics, localization_metrics
from trufor_lab.model import TruFor, TruForConfig
from trufor_lab.training.config import TrainConfig
from trufor_lab.training.loop import train_device
from trufor_lab.training.scenes import builtin_images
from trufor_lab.training.streams import ForgeryStream


@dataclass
class HeldoutScores:
    """Held-out metrics: mean best-threshold pixel F1 on forged items, its all-forged baseline,
    detection AUC and balanced accuracy; ``per_item`` rows (name, kind, label, f1, score)."""

    f1_best: float
    f1_all_forged: float
    auc: float
    balanced_accuracy: float
    n_forged: int
    n_pristine: int
    per_item: list[dict] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "per_item"}


DEMO_MODEL = TruForConfig(
    embed_dims=(24, 48, 96, 192), depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), decoder_embed_dim=96
)
#: Steps per phase of the demo recipe.
DEMO_STEPS = {"localization": 6000, "confidence": 400, "detection": 800}
#: What the shipped step-1 model's confidence and detection phases ran with (its file records
#: the detection phase's): ``train_phases(demo_config(), DEMO_STEPS, DEMO_PHASE_SETTINGS)``.
DEMO_PHASE_SETTINGS = {"confidence": {"lr": 3e-3, "warmup": 20}, "detection": {"lr": 3e-3, "warmup": 20}}


def demo_config(out_dir: str = "runs/demo", **overrides: Any) -> TrainConfig:
    """The recipe of ``weights/trufor_demo.pt`` (see ``weights/DEMO_MODEL_CARD.md``): built-in
    scenes shot by random simulated cameras, trace-changing forgeries of every kind, 128 px
    crops of 1200 precomputed 192 px examples. Pass
    ``train_phases(demo_config(), DEMO_STEPS, DEMO_PHASE_SETTINGS)``."""
    base = dict(
        out_dir=out_dir,
        model=DEMO_MODEL,
        batch_size=16,
        crop=128,
        lr=1e-3,
        warmup=200,
        forged_fraction=0.6,
        jpeg_prob=0.3,
        jpeg_quality=(75, 100),
        camera=True,
        traceable=True,
        precompute=1200,
        precompute_size=192,
        cache_dir=str(Path(out_dir) / "cache"),
        pristine=None,
        checkpoint_every=200,
    )
    base.update(overrides)
    return TrainConfig(**base)


def demo_heldout(n: int = 80, size: int = 256) -> list:
    """The demo model's held-out test: same generator as :func:`demo_config`, test scenes only."""
    return heldout_set(n, size, camera=True, traceable=True, final_jpeg=(75, 100), final_jpeg_prob=0.3)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def heldout_set(
    n: int = 40,
    size: int = 256,
    seed: int = 12345,
    final_jpeg: tuple[int, int] | None = (70, 100),
    *,
    camera: bool = False,
    kinds: Sequence[str] | None = None,
    traceable: bool = False,
    final_jpeg_prob: float = 1.0,
) -> list:
    """``n`` held-out items (half pristine, half random forgeries) from sources never used in
    training (:func:`builtin_images` ``"test"``); pristine and forged share the final-JPEG policy
    (applied with probability ``final_jpeg_prob``). ``camera``, ``kinds`` and ``traceable`` as in
    :class:`ForgeryStream` (with ``camera=True`` every item is shot by its own random camera)."""
    rng = np.random.default_rng(seed)
    if camera:
        stream = ForgeryStream(
            builtin_images("test", n_scenes=12, scene_size=2 * size),
            camera=True,
            kinds=kinds,
            traceable=traceable,
            flips="none",
            jpeg_prob=final_jpeg_prob if final_jpeg else 0.0,
            jpeg_quality=tuple(final_jpeg or (100, 100)),
        )
        items = []
        for i in range(n):
            rgb, mask, label, kind = stream.synthetic(rng, size, forged=i % 2 == 1)
            items.append(Forgery(rgb, mask, kind, {"camera": True}, ("test",), label=label, name=f"heldout{i}_{kind}"))
        return items
    stream = ForgeryStream(
        builtin_images("test", n_scenes=12),
        forged_fraction=0.0,
        jpeg_prob=0.0,
        flips="none",
        kinds=kinds,
        traceable=traceable,
    )
    items = []
    for i in range(n):
        img, _, _ = stream.example(rng, size)
        q = None
        if final_jpeg is not None and (final_jpeg_prob >= 1 or rng.random() < final_jpeg_prob):
            q = int(rng.integers(final_jpeg[0], final_jpeg[1] + 1))
        if i % 2 == 0:
            items.append(pristine(img, final_jpeg=q, name=f"heldout{i}_pristine"))
            continue
        donor, _, _ = stream.example(rng, size)
        f = stream.forge(rng, img, donor)
        if q is not None and f.kind != "double_jpeg":
            f = replace(f, image=jpeg_compress(f.image, q))
        items.append(replace(f, name=f"heldout{i}_{f.kind}"))
    return items


@torch.no_grad()
def score_heldout(
    model: TruFor, items: Sequence[Any], device: str | torch.device | None = None, progress: bool = False
) -> HeldoutScores:
    """Pixel F1 (official best-threshold protocol, forged items) and detection AUC of ``model``
    on ``items`` (:class:`trufor_lab.lab.forgeries.Forgery` or objects with image/mask/label/kind/name).
    A score that is not finite, a map with NaN on scored pixels, or a mask that leaves no pixel to
    score (its F1 NaN), raises ValueError naming the item: every F1 averaged is a number."""
    dev = train_device(device) if device is not None else next(model.parameters()).device  # cuda:1 stays cuda:1
    was_training = model.training
    model.eval().to(dev)
    rows, scores, labels, f1s, base = [], [], [], [], []
    try:  # a refused item leaves the model as it was given (training mode included)
        for it in tqdm(items, desc="evaluate", disable=not progress):
            rgb = torch.from_numpy(np.array(it.image, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(256).to(dev)
            out = model(rgb)
            score = float(out.score[0])
            name = getattr(it, "name", "") or f"item {len(rows)}"
            if not np.isfinite(score):  # detection_metrics would drop it, unsaid here: the AUC of fewer items
                raise ValueError(f"{name}: the model's score is {score} (a diverged model?): no held-out metrics")
            f1 = float("nan")
            if it.label == 1 and it.mask is not None:
                try:
                    lm = localization_metrics(out.map[0].cpu().numpy(), it.mask)
                except ValueError as e:  # NaN on scored pixels, a mask of another size: say which item
                    raise ValueError(f"{name}: {e}") from None
                if lm.n_forged + lm.n_pristine == 0:  # F1 NaN: np.mean below would make the whole mean NaN
                    raise ValueError(
                        f"{name}: its mask leaves no pixel to score (dilated 11x11 it covers the picture, eroded "
                        "15x15 nothing is left): no pixel F1"
                    )
                f1 = lm.f1_best
                f1s.append(f1)
                base.append(localization_metrics(np.zeros(it.mask.shape, np.float32), it.mask).f1_best)
            scores.append(score), labels.append(int(it.label))
            rows.append(
                {
                    "name": getattr(it, "name", ""),
                    "kind": getattr(it, "kind", ""),
                    "label": int(it.label),
                    "f1_best": f1,
                    "score": score,
                }
            )
    finally:
        model.train(was_training)
    det = detection_metrics(np.array(scores), np.array(labels))
    return HeldoutScores(
        float(np.mean(f1s)) if f1s else float("nan"),
        float(np.mean(base)) if base else float("nan"),
        float(det.auc),
        float(det.balanced_accuracy),
        len(f1s),
        labels.count(0),
        rows,
    )
