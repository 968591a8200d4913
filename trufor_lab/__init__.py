"""trufor_lab: a research toolkit around TruFor (Guillaro et al., CVPR 2023).

>>> import trufor_lab as tl
>>> model = tl.load()                       # official weights, else demo, else Noiseprint++ only
>>> result = tl.analyze(model, "image.jpg")
>>> result.plot()

The flat namespace re-exports the user's verbs; heavy optional parts (captum, widgets) are
imported on first use.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from trufor_lab.version import __version__

from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.load import banner, load, load_noiseprint, load_trufor, resolve_device, untrained
from trufor_lab.model import TruFor, TruForConfig
from trufor_lab.inference.preprocess import ImageError, load_image

_LAZY = {
    # name -> module that defines it (imported on first access)
    "list_layers": "trufor_lab.model.capture",
    "capture": "trufor_lab.model.capture",
    "localization_metrics": "trufor_lab.lab.metrics",
    "detection_metrics": "trufor_lab.lab.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trufor_lab' has no attribute {name!r}")


__all__ = ["ImageError", "Result", "TruFor", "TruForConfig", "analyze", "banner", "load", "load_image",
           "load_noiseprint", "load_trufor", "resolve_device", "untrained", "__version__", *_LAZY]
