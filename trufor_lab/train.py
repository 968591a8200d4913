"""Training TruFor (or a smaller variant) with the paper's three-phase recipe.

Phases, each run on its own and freezing what the paper freezes:

- ``"localization"``: dual encoder + anomaly decoder, loss ``lam * weighted CE + (1 - lam) * Dice``;
- ``"confidence"``: confidence decoder only, MSE to the true-class probability of the (frozen)
  anomaly map;
- ``"detection"``: detection MLP only, BCE on the confidence-pooled statistics.

Noiseprint++ is always the official DnCNN, frozen (eval mode, no gradient, exact float32).
Automatic mixed precision (bfloat16, CUDA only) covers the encoder and decoders, never the DnCNN
nor the losses.

Data: forgeries made on the fly (:mod:`trufor_lab.forgeries`) from pristine images (a folder, a
list of arrays, or the built-in scikit-image + synthetic scenes), the pristine crops themselves
as negatives, and optionally user datasets with masks (:class:`trufor_lab.datasets.Dataset`).
Augmentations keep the JPEG 8x8 grid: crops start at multiples of 8, horizontal/vertical flips
of crops whose sides are multiples of 8 (a flip maps block boundaries onto block boundaries and
only changes the sign of DCT coefficients, so the quantisation grid is kept); no 90-degree
rotations (they transpose the quantisation tables) and no resizing.

>>> from trufor_lab.train import TrainConfig, train, plot_log
>>> r = train(TrainConfig(out_dir="runs/loc", steps=2000, crop=256))
>>> r2 = train(TrainConfig(phase="confidence", init=r.checkpoint, out_dir="runs/conf", steps=500))
>>> plot_log(r.log)

Every run writes ``last.pt`` (``weights_only``-loadable: tensors, the model config, plain
numbers), ``last_optim.pt`` (optimizer state) and ``log.jsonl``; ``resume=True`` continues from
``last.pt`` with the same step count and log. Each step's batch and dropout depend only on
``(seed, step)``, so an interrupted and resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .model import MIT_B0, TruFor, TruForConfig, extract_state_dict, read_checkpoint, strict_load

__all__ = [
    "PHASES", "TRAINABLE", "TrainConfig", "TrainResult", "EvalResult", "train", "train_phases",
    "build_model", "set_phase", "builtin_images", "synthetic_scene", "ForgeryStream",
    "evaluate", "heldout_set", "DEMO_MODEL", "DEMO_STEPS", "demo_config", "demo_heldout", "export_checkpoint", "read_log", "plot_log", "register_cli",
]

PHASES = ("localization", "confidence", "detection")
#: Top-level TruFor modules trained in each phase (everything else is frozen, in eval mode).
TRAINABLE = {"localization": ("backbone", "decode_head"),
             "confidence": ("decode_head_conf",),
             "detection": ("detection",)}

#: scikit-image samples kept out of training (held-out sources for :func:`heldout_set`).
HELDOUT_SKIMAGE = ("astronaut", "coffee", "camera")
_SKIMAGE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "retina", "colorwheel", "logo", "stereo_motorcycle", "camera", "moon", "page", "text",
                  "coins", "brick", "grass", "gravel", "clock", "cell")
#: Synthetic scene seeds at or above this value are reserved for held-out data.
HELDOUT_SCENE_SEED = 1_000_000
#: Local edits that change the processing trace (``ForgeryStream(traceable=True)``).
TRACEABLE_EDITS = ("resample", "blur", "sharpen")


# --------------------------------------------------------------------------------------------
# configuration and results
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Everything a training run needs. Sizes in pixels; ``crop`` must be a multiple of 8."""

    phase: str = "localization"
    out_dir: str = "runs/train"
    #: Architecture: a :class:`TruForConfig`, its dict, or ``None`` for ``MIT_B0``.
    model: TruForConfig | dict | None = None
    #: Checkpoint to start from (e.g. the previous phase's ``last.pt``); ignored when resuming.
    init: str | None = None
    resume: bool = True
    steps: int = 1000
    batch_size: int = 8
    crop: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup: int = 50
    #: Cross-entropy class weights (pristine, forged) and lam of ``lam*CE + (1-lam)*Dice``.
    class_weights: tuple[float, float] = (0.5, 2.5)
    ce_lambda: float = 0.3
    #: Pristine sources: a folder, a list of uint8 RGB arrays, or ``None`` (built-in, train split).
    pristine: str | list | None = None
    #: User datasets with masks (:class:`trufor_lab.datasets.Dataset`), mixed in at ``dataset_fraction``.
    datasets: list = field(default_factory=list)
    dataset_fraction: float = 0.5
    #: Probability that a synthetic example is forged (else its pristine crop, label 0).
    forged_fraction: float = 0.5
    #: Final JPEG of synthetic examples (pristine and forged alike): probability and quality range.
    jpeg_prob: float = 0.7
    jpeg_quality: tuple[int, int] = (65, 100)
    #: ``"none"``, ``"h"`` or ``"hv"``: random flips (grid-preserving, see module doc).
    flips: str = "hv"
    #: Photograph the pristine sources with random simulated cameras (see :class:`ForgeryStream`).
    camera: bool = False
    #: Forgery kinds to draw from (default: all of ``trufor_lab.forgeries.FORGERIES``).
    kinds: tuple[str, ...] | None = None
    #: Only trace-changing variants of copy-move and local edits (see :class:`ForgeryStream`).
    traceable: bool = False
    #: > 0: generate this many examples once and precompute their Noiseprint++ maps (CPU speed-up);
    #: training crops are then taken from them at multiples of 8. 0: everything on the fly.
    precompute: int = 0
    #: Side of the precomputed examples (default ``crop``).
    precompute_size: int | None = None
    #: Where the precomputed examples are cached (default ``out_dir``); share it between phases.
    cache_dir: str | None = None
    device: str = "auto"
    #: bfloat16 autocast of encoder/decoders; ``None``: on CUDA when supported.
    amp: bool | None = None
    seed: int = 0
    num_threads: int | None = None
    checkpoint_every: int = 100
    #: Stop (and checkpoint) once this many seconds have passed in this call; ``None``: no cap.
    max_seconds: float | None = None
    progress: bool = True
    noiseprint_weights: str | None = None
    #: A ready example source with ``example(rng, size) -> (rgb, mask, label)`` (e.g.
    #: ``trufor_lab.training.photos.RealForgeryStream``), used instead of a ForgeryStream built
    #: from ``pristine``/``datasets``.
    stream: Any = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8 (JPEG grid), got {self.crop}")
        if self.flips not in ("none", "h", "hv"):
            raise ValueError(f"flips must be 'none', 'h' or 'hv', got {self.flips!r}")
        size = self.precompute_size or self.crop
        if self.precompute and (size < self.crop or size % 8):
            raise ValueError("precompute_size must be a multiple of 8 and >= crop")

    def model_config(self) -> TruForConfig:
        if self.model is None:
            return MIT_B0
        return self.model if isinstance(self.model, TruForConfig) else TruForConfig.from_dict(dict(self.model))

    def to_plain(self) -> dict[str, Any]:
        """JSON-safe summary (arrays and dataset objects are described, not stored)."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "model":
                v = self.model_config().to_dict()
            elif f.name == "pristine" and isinstance(v, list):
                v = f"<{len(v)} arrays>"
            elif f.name == "datasets":
                v = [getattr(ds, "name", str(ds)) for ds in v]
            elif f.name == "stream" and v is not None:
                v = getattr(v, "description", type(v).__name__)
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return json.loads(json.dumps(d, default=str))


@dataclass
class TrainResult:
    """What a run produced. ``model`` is the trained network (eval mode, on the training device)."""

    out_dir: Path
    checkpoint: Path
    log: Path
    phase: str
    step: int
    final_loss: float
    seconds: float
    model: TruFor | None = field(default=None, repr=False)


@dataclass
class EvalResult:
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


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------

def synthetic_scene(size: int = 256, seed: int = 0) -> np.ndarray:
    """A random camera-like RGB scene (uint8): smooth background, shapes, texture, optics blur,
    sensor noise. Deterministic in ``seed``."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    img = np.zeros((s, s, 3), np.float32)
    base = rng.uniform(0.1, 0.9, 3)
    grad = rng.uniform(-0.4, 0.4, (2, 3))
    img += base + xx[..., None] * grad[0] + yy[..., None] * grad[1]
    low = ndimage.gaussian_filter(rng.normal(size=(s, s, 3)).astype(np.float32), (s / 8, s / 8, 0))
    img += low / (low.std() + 1e-6) * rng.uniform(0.02, 0.1)
    for _ in range(int(rng.integers(3, 12))):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.04, 0.3, 2)
        colour = rng.uniform(0, 1, 3)
        if rng.random() < 0.5:
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        else:
            m = (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
        shade = 1 + 0.3 * (yy - cy)[..., None]
        img[m] = (colour * shade)[m]
    tex = ndimage.gaussian_filter(rng.normal(size=(s, s)).astype(np.float32), rng.uniform(0.7, 3))
    img += (tex / (tex.std() + 1e-6) * rng.uniform(0.0, 0.06))[..., None]
    img = ndimage.gaussian_filter(img, (rng.uniform(0.3, 1.2),) * 2 + (0,))
    img += rng.normal(0, rng.uniform(0.002, 0.02), img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _skimage_rgb(name: str) -> np.ndarray | None:
    import skimage.data
    try:
        a = getattr(skimage.data, name)()
    except Exception:  # not shipped offline in this install
        return None
    a = np.asarray(a[0] if isinstance(a, tuple) else a)
    if a.dtype != np.uint8:
        return None
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def builtin_images(split: str = "train", n_scenes: int = 24, scene_size: int = 384) -> list[np.ndarray]:
    """Offline pristine sources: scikit-image samples plus ``n_scenes`` synthetic scenes.

    ``split="test"`` gives the held-out ones (:data:`HELDOUT_SKIMAGE`, scene seeds from
    :data:`HELDOUT_SCENE_SEED`), disjoint from ``"train"``.
    """
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    names = [n for n in _SKIMAGE_NAMES if (n in HELDOUT_SKIMAGE) == (split == "test")]
    out = [a for a in map(_skimage_rgb, names) if a is not None]
    base = HELDOUT_SCENE_SEED if split == "test" else 0
    out += [synthetic_scene(scene_size, base + i) for i in range(n_scenes)]
    return out


def _read_folder(folder: str | os.PathLike) -> list[np.ndarray]:
    from .forgeries import _IMAGE_EXT
    from .preprocess import load_image
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_EXT)
    if not files:
        raise ValueError(f"{folder}: no images found")
    return [load_image(p).rgb for p in files]


def _pad_to(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    if h >= size and w >= size:
        return a
    pad = [(0, max(0, size - h)), (0, max(0, size - w))] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, mode="reflect" if min(h, w) > 1 else "edge")


def _grid_crop(rng: np.random.Generator, arrays: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """The same random ``size`` crop of each array, starting at multiples of 8 (reflect-padded
    when smaller; the padding is not on the grid but only touches images smaller than a crop)."""
    arrays = [_pad_to(a, size) for a in arrays]
    h, w = arrays[0].shape[:2]
    y = 8 * int(rng.integers(0, (h - size) // 8 + 1))
    x = 8 * int(rng.integers(0, (w - size) // 8 + 1))
    return [np.ascontiguousarray(a[y:y + size, x:x + size]) for a in arrays]


def _flip(rng: np.random.Generator, arrays: Sequence[np.ndarray], flips: str) -> list[np.ndarray]:
    out = list(arrays)
    if flips in ("h", "hv") and rng.random() < 0.5:
        out = [a[:, ::-1] for a in out]
    if flips == "hv" and rng.random() < 0.5:
        out = [a[::-1] for a in out]
    return [np.ascontiguousarray(a) for a in out]


class ForgeryStream:
    """Training examples ``(rgb uint8 (S, S, 3), mask bool (S, S), label)`` from pristine images
    (forged on the fly or kept pristine) and user datasets. Deterministic given the rng.

    ``camera=True`` treats the pristine images as *scenes*: each is downscaled by 2 once (to
    wash out its own processing traces) and every example is photographed by a random
    :class:`trufor_lab.camera.Camera`; a splice's donor is shot by another random camera, so
    spliced content carries a different in-camera trace, as in real splicing.
    ``kinds`` restricts the forgery kinds; ``traceable=True`` draws only variants that change
    the local processing trace (copy-move always rotated/rescaled, local edits only
    resample/blur/sharpen), i.e. what Noiseprint++ can in principle see.
    """

    def __init__(self, images: Sequence[np.ndarray], datasets: Sequence[Any] = (), *,
                 forged_fraction: float = 0.5, dataset_fraction: float = 0.5, jpeg_prob: float = 0.7,
                 jpeg_quality: tuple[int, int] = (65, 100), flips: str = "hv", camera: bool = False,
                 kinds: Sequence[str] | None = None, traceable: bool = False) -> None:
        from .camera import downscale
        from .forgeries import FORGERIES
        self.images = [np.asarray(a, dtype=np.uint8)[..., :3] for a in images]
        if camera:
            self.images = [downscale(a, 2) if min(a.shape[:2]) >= 128 else a for a in self.images]
        self.samples = [(ds, s) for ds in datasets for s in ds if s.label == 0 or s.mask_path is not None]
        if not self.images and not self.samples:
            raise ValueError("no training images: give pristine images or datasets with masks")
        self.kinds = tuple(kinds or FORGERIES)
        bad = [k for k in self.kinds if k not in FORGERIES]
        if bad:
            raise ValueError(f"unknown forgery kind(s) {bad}; choose from {sorted(FORGERIES)}")
        self.forged_fraction = forged_fraction
        self.dataset_fraction = dataset_fraction if self.images else 1.0
        self.jpeg_prob, self.jpeg_quality, self.flips = jpeg_prob, jpeg_quality, flips
        self.camera, self.traceable = camera, traceable

    def example(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self.samples and rng.random() < self.dataset_fraction:
            rgb, mask, label = self._dataset_example(rng, size)
        else:
            rgb, mask, label, _ = self.synthetic(rng, size)
        rgb, mask = _flip(rng, [rgb, mask], self.flips)
        return rgb, mask, label

    def _dataset_example(self, rng, size):
        from .preprocess import load_image
        ds, s = self.samples[int(rng.integers(len(self.samples)))]
        rgb = load_image(s.image_path).rgb
        mask = ds.load_mask(s) if s.mask_path is not None else np.zeros(rgb.shape[:2], bool)
        rgb, mask = _grid_crop(rng, [rgb, mask], size)
        return rgb, mask, int(s.label and mask.any()) if s.mask_path is not None else int(s.label)

    def _source(self, rng: np.random.Generator, i: int, size: int) -> np.ndarray:
        (img,) = _grid_crop(rng, [self.images[i]], size)
        if self.camera:
            from .camera import Camera
            img = Camera.random(rng).capture(img, rng)
        return img

    def _forge(self, rng: np.random.Generator, rgb: np.ndarray, donor: np.ndarray | None):
        from .forgeries import _random_params, make_forgery
        pool = [k for k in self.kinds if donor is not None or k != "splice"] or ["copy_move"]
        kind = pool[int(rng.integers(len(pool)))]
        params = _random_params(kind, rng)
        if self.traceable and kind == "copy_move" and params["rotation"] == 0 and params["scale"] == 1:
            params = {"rotation": float(round(rng.uniform(-30, 30), 2)),
                      "scale": float(round(rng.uniform(0.8, 1.25), 3))}
        if self.traceable and kind == "local_edit" and params["op"] not in TRACEABLE_EDITS:
            params["op"] = TRACEABLE_EDITS[int(rng.integers(len(TRACEABLE_EDITS)))]
        return make_forgery(kind, rgb, donor, seed=int(rng.integers(2 ** 31)), **params)

    def synthetic(self, rng: np.random.Generator, size: int, forged: bool | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int, str]:
        """One synthetic example ``(rgb, mask, label, kind)``; ``forged`` forces the label."""
        from .jpeg import jpeg_compress
        n = len(self.images)
        i = int(rng.integers(n))
        rgb = self._source(rng, i, size)
        mask = np.zeros((size, size), bool)
        label, kind = 0, "pristine"
        if forged if forged is not None else rng.random() < self.forged_fraction:
            j = int(rng.integers(n))
            donor = self._source(rng, j, size) if (j != i or n == 1 or self.camera) else None
            f = self._forge(rng, rgb, donor)
            rgb, mask, label, kind = f.image, f.mask, 1, f.kind
        if kind != "double_jpeg" and rng.random() < self.jpeg_prob:
            rgb = jpeg_compress(rgb, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
        return rgb, mask, label, kind


# --------------------------------------------------------------------------------------------
# model, phases
# --------------------------------------------------------------------------------------------

def _official_noiseprint(path: str | None) -> dict[str, torch.Tensor]:
    from . import weights as W
    p = W.find_noiseprint(path)
    sd = extract_state_dict(read_checkpoint(p), str(p))
    if any(k.startswith("dncnn.") for k in sd):
        sd = {k[len("dncnn."):]: v for k, v in sd.items() if k.startswith("dncnn.")}
    return sd


def build_model(cfg: TruForConfig | None = None, init: str | os.PathLike | None = None,
                noiseprint_weights: str | None = None) -> TruFor:
    """TruFor of size ``cfg`` (or the config stored in ``init``), weights from ``init`` when
    given, and always the official Noiseprint++ weights in ``dncnn``."""
    sd = None
    if init is not None:
        obj = read_checkpoint(init)
        if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
            cfg = TruForConfig.from_dict(obj["config"])
        sd = {k: v.float() if v.is_floating_point() else v
              for k, v in extract_state_dict(obj, str(init)).items()}
    model = TruFor(cfg or MIT_B0)
    if sd is not None:
        strict_load(model, sd, str(init))
    strict_load(model.dncnn, _official_noiseprint(noiseprint_weights), "noiseprint++")
    return model


def set_phase(model: TruFor, phase: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the phase's modules (frozen ones in eval mode); returns the trainable
    parameters. The DnCNN is always frozen."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    model.eval()
    model.requires_grad_(False)
    params: list[torch.nn.Parameter] = []
    for name in TRAINABLE[phase]:
        m = getattr(model, name)
        m.train()
        m.requires_grad_(True)
        params += list(m.parameters())
    return params


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the whole batch (defined for pristine-only batches too)."""
    inter = (prob * target).sum()
    return 1 - (2 * inter + eps) / (prob.sum() + target.sum() + eps)


def phase_loss(model: TruFor, phase: str, rgb: torch.Tensor, npm: torch.Tensor, mask: torch.Tensor,
               label: torch.Tensor, class_weights: Sequence[float] = (0.5, 2.5), ce_lambda: float = 0.3,
               amp: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """The phase's loss on a batch (``rgb`` in [0, 1) as RGB/256, ``npm`` the Noiseprint++ maps,
    ``mask`` (B, H, W) bool, ``label`` (B,)) and its parts for the log."""
    size = tuple(rgb.shape[2:])
    ac = torch.autocast(rgb.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    if phase == "localization":
        with ac:
            logits = model.decode_head(model.forward_features(rgb, npm))
        logits = _resize(logits, size)
        w = torch.tensor(class_weights, dtype=torch.float32, device=rgb.device)
        ce = F.cross_entropy(logits, mask.long(), weight=w)
        dice = dice_loss(F.softmax(logits, 1)[:, 1], mask.float())
        loss = ce_lambda * ce + (1 - ce_lambda) * dice
        return loss, {"loss": loss.item(), "ce": ce.item(), "dice": dice.item()}
    with torch.no_grad(), ac:
        feats = model.forward_features(rgb, npm)
        logits = model.decode_head(feats)
    logits = _resize(logits, size)
    if phase == "confidence":
        with ac:
            conf = model.decode_head_conf(feats)
        conf = _resize(conf, size)[:, 0]
        p = F.softmax(logits, 1)[:, 1]
        tcp = torch.where(mask, p, 1 - p)
        loss = F.mse_loss(torch.sigmoid(conf), tcp)
        return loss, {"loss": loss.item(), "tcp_mean": tcp.mean().item()}
    with torch.no_grad(), ac:
        conf = _resize(model.decode_head_conf(feats), size)
    det = model.detection(model.pool(logits, conf))[:, 0]
    loss = F.binary_cross_entropy_with_logits(det, label.float())
    acc = ((det > 0) == (label > 0)).float().mean()
    return loss, {"loss": loss.item(), "acc": acc.item()}


# --------------------------------------------------------------------------------------------
# checkpoints and log
# --------------------------------------------------------------------------------------------

def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save(model: TruFor, opt: torch.optim.Optimizer, cfg: TrainConfig, step: int, out: Path) -> Path:
    ckpt = {"state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "config": model.cfg.to_dict(), "kind": "custom",
            "meta": {"step": step, "phase": cfg.phase, "seed": cfg.seed, "train_config": cfg.to_plain()}}
    _atomic_save({"optimizer": opt.state_dict(), "step": step}, out / "last_optim.pt")
    _atomic_save(ckpt, out / "last.pt")
    return out / "last.pt"


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, kind: str = "demo",
                      dtype: torch.dtype = torch.float16, meta: dict | None = None) -> Path:
    """Write ``src``'s weights as a compact checkpoint (``kind``, ``meta`` plain data) in ``dtype``.

    Noiseprint++ (``dncnn.*``) stays float32: it is precision-sensitive. ``load_trufor`` casts
    the rest back to float32 when loading.
    """
    obj = read_checkpoint(src)
    sd = extract_state_dict(obj, str(src))
    sd = {k: (v.to(dtype) if v.is_floating_point() and not k.startswith("dncnn.") else v).contiguous()
          for k, v in sd.items()}
    out = {"state_dict": sd, "config": obj["config"], "kind": kind,
           "meta": json.loads(json.dumps({**obj.get("meta", {}), **(meta or {})}))}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(out, dst)
    return dst


def read_log(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``log.jsonl`` (or of the ``log.jsonl`` inside a run folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "log.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _truncate_log(path: Path, step: int) -> None:
    rows = [r for r in read_log(path) if r["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def plot_log(path: str | os.PathLike, smooth: int = 20):
    """Loss curves of a run (raw and running mean over ``smooth`` steps), one panel per logged
    quantity; returns the matplotlib Figure."""
    from .viz.figures import new_figure
    rows = read_log(path)
    keys = [k for k in (rows[0] if rows else {}) if k not in ("step", "phase", "time", "lr")]
    fig = new_figure(figsize=(4.2 * max(1, len(keys)), 3.2), layout="constrained")
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
    steps = np.array([r["step"] for r in rows])
    for ax, k in zip(axes, keys):
        v = np.array([r.get(k, np.nan) for r in rows], dtype=float)
        ax.plot(steps, v, alpha=0.35, lw=0.8, label="per step")
        if len(v) >= 2:
            n = max(1, min(smooth, len(v)))
            c = np.convolve(np.nan_to_num(v), np.ones(n) / n, mode="valid")
            ax.plot(steps[n - 1:], c, lw=1.6, label=f"mean of {n}")
        ax.set_xlabel("step")
        ax.set_title(f"{rows[0].get('phase', '')}: {k}" if rows else k)
        ax.legend(fontsize=7)
    if not rows:
        axes[0].set_title("empty log")
    return fig


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

def _device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _images(cfg: TrainConfig) -> list[np.ndarray]:
    if cfg.pristine is None:
        return [] if cfg.datasets and cfg.dataset_fraction >= 1 else builtin_images("train")
    if isinstance(cfg.pristine, (str, os.PathLike)):
        return _read_folder(cfg.pristine)
    return [np.asarray(a) for a in cfg.pristine]


@torch.no_grad()
def _noiseprint(model: TruFor, rgb: torch.Tensor) -> torch.Tensor:
    return model.dncnn(rgb)


def _to_batch(examples: Sequence[tuple[np.ndarray, np.ndarray, int]], device: torch.device):
    rgb = torch.from_numpy(np.stack([e[0] for e in examples])).permute(0, 3, 1, 2).float().div_(256.0)
    mask = torch.from_numpy(np.stack([e[1] for e in examples]).astype(bool))
    label = torch.tensor([e[2] for e in examples])
    return rgb.to(device), mask.to(device), label.to(device)


class _Pool:
    """Examples generated once with their Noiseprint++ maps; batches are grid-aligned crops."""

    def __init__(self, model: TruFor, stream: ForgeryStream, cfg: TrainConfig, device: torch.device,
                 out: Path, progress: bool) -> None:
        size = cfg.precompute_size or cfg.crop
        cache = Path(cfg.cache_dir or out) / f"pool_{cfg.seed}_{cfg.precompute}_{size}.npz"
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.is_file():
            z = np.load(cache)
            self.rgb, self.mask, self.label, self.np = z["rgb"], z["mask"], z["label"], z["np"]
            return
        from tqdm.auto import tqdm
        rgbs, masks, labels, nps = [], [], [], []
        # oneDNN convolutions (CPU) are ~2.5x faster and ~1e-5 from the exact map: fine for training
        onednn, model.dncnn.onednn = model.dncnn.onednn, True
        try:
            for i in tqdm(range(cfg.precompute), desc="precomputing Noiseprint++", disable=not progress):
                rgb, mask, label = stream.example(np.random.default_rng([cfg.seed, 7, i]), size)
                t, _, _ = _to_batch([(rgb, mask, label)], device)
                nps.append(_noiseprint(model, t)[0, 0].cpu().numpy().astype(np.float32))
                rgbs.append(rgb), masks.append(mask), labels.append(label)
        finally:
            model.dncnn.onednn = onednn
        self.rgb, self.mask = np.stack(rgbs), np.stack(masks)
        self.label, self.np = np.array(labels), np.stack(nps)
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez(tmp, rgb=self.rgb, mask=self.mask, label=self.label, np=self.np)
        os.replace(tmp, cache)

    def batch(self, rng: np.random.Generator, n: int, crop: int, device: torch.device):
        ex, nps = [], []
        for _ in range(n):
            i = int(rng.integers(len(self.rgb)))
            rgb, mask, npm = _grid_crop(rng, [self.rgb[i], self.mask[i], self.np[i]], crop)
            ex.append((rgb, mask, int(self.label[i] and mask.any())))  # forged region may be cropped out
            nps.append(npm)
        rgb, mask, label = _to_batch(ex, device)
        return rgb, torch.from_numpy(np.stack(nps))[:, None].to(device), mask, label


def _lr(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up then cosine decay to 5% of ``lr`` (``step`` counts from 0)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) one phase for ``cfg.steps`` steps in total; returns a :class:`TrainResult`."""
    from tqdm.auto import tqdm
    t0 = time.time()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = _device(cfg.device)
    amp = (device.type == "cuda" and torch.cuda.is_bf16_supported()) if cfg.amp is None else bool(cfg.amp)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, log_path = out / "last.pt", out / "log.jsonl"
    resuming = cfg.resume and ckpt.is_file()
    torch.manual_seed(cfg.seed)  # reproducible initialisation
    model = build_model(cfg.model_config(), ckpt if resuming else cfg.init, cfg.noiseprint_weights)
    if resuming and cfg.model is not None and model.cfg != cfg.model_config():
        raise ValueError(f"{ckpt}: its architecture differs from TrainConfig.model")
    model.to(device)
    params = set_phase(model, cfg.phase)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if resuming:
        state = torch.load(out / "last_optim.pt", map_location=device, weights_only=True)
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        _truncate_log(log_path, step)
    elif log_path.exists():
        log_path.unlink()
    stream = cfg.stream or ForgeryStream(_images(cfg), cfg.datasets, forged_fraction=cfg.forged_fraction,
                           dataset_fraction=cfg.dataset_fraction, jpeg_prob=cfg.jpeg_prob,
                           jpeg_quality=cfg.jpeg_quality, flips=cfg.flips, camera=cfg.camera,
                           kinds=cfg.kinds, traceable=cfg.traceable)
    pool = _Pool(model, stream, cfg, device, out, cfg.progress) if cfg.precompute and step < cfg.steps else None
    last = {"loss": float("nan")}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.phase}", disable=not cfg.progress)
    with open(log_path, "a") as log:
        while step < cfg.steps:
            rng = np.random.default_rng([cfg.seed, step])
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            if pool is not None:
                rgb, npm, mask, label = pool.batch(rng, cfg.batch_size, cfg.crop, device)
            else:
                rgb, mask, label = _to_batch([stream.example(rng, cfg.crop) for _ in range(cfg.batch_size)],
                                             device)
                npm = _noiseprint(model, rgb)
            lr = _lr(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            loss, parts = phase_loss(model, cfg.phase, rgb, npm, mask, label, cfg.class_weights,
                                     cfg.ce_lambda, amp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            last = parts
            log.write(json.dumps({"step": step, "phase": cfg.phase, **parts, "lr": lr,
                                  "time": round(time.time() - t0, 3)}) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
            over = cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or over:
                _save(model, opt, cfg, step, out)
            if over:
                break
    bar.close()
    if not ckpt.is_file():
        _save(model, opt, cfg, step, out)
    if np.isnan(last["loss"]):
        rows = read_log(log_path)
        last = rows[-1] if rows else last
    return TrainResult(out, ckpt, log_path, cfg.phase, step, float(last["loss"]), time.time() - t0,
                       model.eval())


def train_phases(cfg: TrainConfig, steps: dict[str, int] | None = None) -> dict[str, TrainResult]:
    """All three phases in sequence, each in ``out_dir/<phase>`` starting from the previous one's
    checkpoint; ``steps`` per phase (default ``cfg.steps`` for localization, a quarter for the others)."""
    steps = steps or {"localization": cfg.steps, "confidence": max(1, cfg.steps // 4),
                      "detection": max(1, cfg.steps // 4)}
    results: dict[str, TrainResult] = {}
    init = cfg.init
    for phase in PHASES:
        if not steps.get(phase):
            continue
        r = train(dataclasses.replace(cfg, phase=phase, steps=steps[phase], init=init,
                                      out_dir=str(Path(cfg.out_dir) / phase)))
        results[phase] = r
        init = str(r.checkpoint)
    return results


#: Architecture of the shipped demo model (between the tiny test model and MiT-B0).
DEMO_MODEL = TruForConfig(embed_dims=(24, 48, 96, 192), depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                          decoder_embed_dim=96)
#: Steps per phase of the demo recipe.
DEMO_STEPS = {"localization": 6000, "confidence": 400, "detection": 800}


def demo_config(out_dir: str = "runs/demo", **overrides: Any) -> TrainConfig:
    """The recipe of ``weights/trufor_demo.pt`` (see ``weights/DEMO_MODEL_CARD.md``): built-in
    scenes shot by random simulated cameras, trace-changing forgeries of every kind, 128 px
    crops of 1200 precomputed 192 px examples. Pass ``train_phases(demo_config(), DEMO_STEPS)``."""
    base = dict(out_dir=out_dir, model=DEMO_MODEL, batch_size=16, crop=128, lr=1e-3, warmup=200,
                forged_fraction=0.6, jpeg_prob=0.3, jpeg_quality=(75, 100), camera=True, traceable=True,
                precompute=1200, precompute_size=192, cache_dir=str(Path(out_dir) / "cache"),
                pristine=None, checkpoint_every=200)
    base.update(overrides)
    return TrainConfig(**base)


def demo_heldout(n: int = 80, size: int = 256) -> list:
    """The demo model's held-out test: same generator as :func:`demo_config`, test scenes only."""
    return heldout_set(n, size, camera=True, traceable=True, final_jpeg=(75, 100), final_jpeg_prob=0.3)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------

def heldout_set(n: int = 40, size: int = 256, seed: int = 12345, final_jpeg: tuple[int, int] | None = (70, 100),
                *, camera: bool = False, kinds: Sequence[str] | None = None, traceable: bool = False,
                final_jpeg_prob: float = 1.0) -> list:
    """``n`` held-out items (half pristine, half random forgeries) from sources never used in
    training (:func:`builtin_images` ``"test"``); pristine and forged share the final-JPEG policy
    (applied with probability ``final_jpeg_prob``). ``camera``, ``kinds`` and ``traceable`` as in
    :class:`ForgeryStream` (with ``camera=True`` every item is shot by its own random camera)."""
    from dataclasses import replace
    from .forgeries import Forgery, pristine
    from .jpeg import jpeg_compress
    rng = np.random.default_rng(seed)
    if camera:
        stream = ForgeryStream(builtin_images("test", n_scenes=12, scene_size=2 * size), camera=True,
                               kinds=kinds, traceable=traceable, flips="none",
                               jpeg_prob=final_jpeg_prob if final_jpeg else 0.0,
                               jpeg_quality=tuple(final_jpeg or (100, 100)))
        items = []
        for i in range(n):
            rgb, mask, label, kind = stream.synthetic(rng, size, forged=i % 2 == 1)
            items.append(Forgery(rgb, mask, kind, {"camera": True}, ("test",), label=label,
                                 name=f"heldout{i}_{kind}"))
        return items
    stream = ForgeryStream(builtin_images("test", n_scenes=12), forged_fraction=0.0, jpeg_prob=0.0, flips="none",
                           kinds=kinds, traceable=traceable)
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
        f = stream._forge(rng, img, donor)
        if q is not None and f.kind != "double_jpeg":
            f = replace(f, image=jpeg_compress(f.image, q))
        items.append(replace(f, name=f"heldout{i}_{f.kind}"))
    return items


@torch.no_grad()
def evaluate(model: TruFor, items: Sequence[Any], device: str | torch.device | None = None,
             progress: bool = False) -> EvalResult:
    """Pixel F1 (official best-threshold protocol, forged items) and detection AUC of ``model``
    on ``items`` (:class:`trufor_lab.forgeries.Forgery` or objects with image/mask/label/kind/name)."""
    from tqdm.auto import tqdm
    from .metrics import detection_metrics, localization_metrics
    dev = _device(device or next(model.parameters()).device.type)
    was_training = model.training
    model.eval().to(dev)
    rows, scores, labels, f1s, base = [], [], [], [], []
    for it in tqdm(items, desc="evaluate", disable=not progress):
        rgb = torch.from_numpy(np.array(it.image, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(256).to(dev)
        out = model(rgb)
        score = float(out.score[0])
        f1 = float("nan")
        if it.label == 1 and it.mask is not None:
            f1 = localization_metrics(out.map[0].cpu().numpy(), it.mask).f1_best
            f1s.append(f1)
            base.append(localization_metrics(np.zeros(it.mask.shape, np.float32), it.mask).f1_best)
        scores.append(score), labels.append(int(it.label))
        rows.append({"name": getattr(it, "name", ""), "kind": getattr(it, "kind", ""), "label": int(it.label),
                     "f1_best": f1, "score": score})
    model.train(was_training)
    det = detection_metrics(np.array(scores), np.array(labels))
    return EvalResult(float(np.mean(f1s)) if f1s else float("nan"), float(np.mean(base)) if base else float("nan"),
                      float(det.auc), float(det.balanced_accuracy), len(f1s), labels.count(0), rows)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def _cmd_train(args: Any) -> int:
    from .model import MIT_B2
    model = {"b0": MIT_B0, "b2": MIT_B2}[args.model]
    cfg = TrainConfig(phase=args.phase, out_dir=args.output, model=model, init=args.init, steps=args.steps,
                      batch_size=args.batch_size, crop=args.crop, lr=args.lr, pristine=args.images,
                      precompute=args.precompute, device=args.device or "auto", seed=args.seed,
                      resume=not args.restart, progress=not args.quiet)
    if args.phase == "all":
        train_phases(dataclasses.replace(cfg, phase="localization"))
    else:
        train(cfg)
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``train`` to the ``trufor-lab`` subcommands."""
    t = subparsers.add_parser("train", help="train TruFor (a phase, or all three) on synthetic forgeries")
    t.add_argument("--phase", default="localization", choices=list(PHASES) + ["all"])
    t.add_argument("-o", "--output", required=True, help="run folder (checkpoints, log.jsonl)")
    t.add_argument("--model", default="b0", choices=["b0", "b2"], help="architecture size (b2 = official)")
    t.add_argument("--init", default=None, help="checkpoint to start from (previous phase)")
    t.add_argument("--images", default=None, help="folder of pristine images (default: built-in)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--precompute", type=int, default=0, help="precompute Noiseprint++ for N examples")
    t.add_argument("--device", default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    t.add_argument("-q", "--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trufor_lab.train ...`` (same options as ``trufor-lab train``)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m trufor_lab.train")
    register_cli(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["train", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
