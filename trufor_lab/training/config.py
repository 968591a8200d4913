"""What a training run is asked to do (:class:`TrainConfig`) and what it returns."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trufor_lab.model import MIT_B0, TruFor, TruForConfig
from trufor_lab.training.phases import PHASES

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
    #: User datasets with masks (:class:`trufor_lab.lab.datasets.Dataset`), mixed in at ``dataset_fraction``.
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
    #: Forgery kinds to draw from (default: all of ``trufor_lab.lab.forgeries.FORGERIES``).
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
        for name in ("steps", "batch_size", "crop", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
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
