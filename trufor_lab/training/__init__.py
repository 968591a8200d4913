"""Training TruFor: synthetic scenes, simulated cameras, forgery data streams, losses,
checkpoints, the loop and the demo recipe.

- ``scenes``: pristine images (synthetic scenes, scikit-image photographs, your folder).
- ``camera``: a simulated in-camera pipeline (CFA, noise, demosaicing, tone, JPEG).
- ``edits``: global edits (tone, contrast, saturation, sharpening, ...) of a whole picture.
- ``streams``: the forgery stream (photographed, forged, post-processed, grid-aligned crops).
- ``phases``: the paper's three phases, what each trains, the starting model.
- ``losses``: the phases' losses.
- ``config``: ``TrainConfig`` and ``TrainResult``.
- ``checkpoints``: resumable run checkpoints, exported checkpoints, the log.
- ``loop``: ``train()`` and ``train_phases()``.
- ``demo``: the demo model's recipe, held-out sets and ``score_heldout()``.
- ``photos``: real camera photos (a folder, split by camera; native grid-aligned crops; the
  platform chain of a viral image) and the real-photo forgery stream.
- ``photo_sets``: the photos of a folder and the scikit-image photographs as records, split by camera.
- ``fetch``: ``python -m trufor_lab.training.fetch --dest DIR`` fetches openly licensed photos.
- ``finetune_real``: the real-photo fine-tune and the score calibration of the demo model.
- ``card``: the demo model card's pictures (reliability curve, examples on the test cameras).

>>> import trufor_lab.training as T
>>> r = T.train(T.TrainConfig(out_dir="runs/loc", model=T.DEMO_MODEL, steps=4, batch_size=2, crop=64))
>>> T.plot_log(r.log)              # a taste; the paper's MiT-B2 (model=None) wants a GPU and crop=256

May import ``lab``, ``inference``, ``forensics``, ``model``, ``viz`` and ``common``.
"""

from trufor_lab.training.camera import Camera, downscale
from trufor_lab.training.checkpoints import export_checkpoint, plot_log, read_log
from trufor_lab.training.config import TrainConfig, TrainResult
from trufor_lab.training.demo import (
    DEMO_MODEL,
    DEMO_PHASE_SETTINGS,
    DEMO_STEPS,
    HeldoutScores,
    demo_config,
    demo_heldout,
    heldout_set,
    score_heldout,
)
from trufor_lab.training.loop import train, train_phases
from trufor_lab.training.phases import PHASES, TRAINABLE, build_model, set_phase
from trufor_lab.training.scenes import builtin_images, synthetic_scene
from trufor_lab.training.streams import ForgeryStream

__all__ = [
    "Camera",
    "DEMO_MODEL",
    "DEMO_PHASE_SETTINGS",
    "DEMO_STEPS",
    "ForgeryStream",
    "HeldoutScores",
    "PHASES",
    "TRAINABLE",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "builtin_images",
    "demo_config",
    "demo_heldout",
    "downscale",
    "export_checkpoint",
    "heldout_set",
    "plot_log",
    "read_log",
    "score_heldout",
    "set_phase",
    "synthetic_scene",
    "train",
    "train_phases",
]
