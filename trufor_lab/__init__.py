"""trufor_lab: a research toolkit around TruFor (Guillaro et al., CVPR 2023).

>>> import trufor_lab as tl
>>> model = tl.load()                       # official weights, else demo, else Noiseprint++ only
>>> result = tl.analyze(model, "image.jpg")
>>> result.plot()

The flat namespace re-exports the user's verbs; each concern lives in its own subpackage
(see ARCHITECTURE.md): ``model`` (the paper's boxes), ``inference`` (getting an answer),
``interpret`` (looking inside), ``lab`` (the forgery lab), ``forensics`` (file facts),
``training``, ``viz`` (figures), ``widgets``, ``casebook`` and ``cli``. Optional heavy parts
(captum, ipywidgets) are imported on first use inside those modules.
"""

from __future__ import annotations

from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.load import banner, load, load_noiseprint, load_trufor, resolve_device, untrained
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.inference.result import Result
from trufor_lab.lab.metrics import detection_metrics, localization_metrics
from trufor_lab.model import TruFor, TruForConfig
from trufor_lab.model.capture import capture
from trufor_lab.model.catalog import list_layers
from trufor_lab.version import __version__

__all__ = [
    "ImageError",
    "Result",
    "TruFor",
    "TruForConfig",
    "__version__",
    "analyze",
    "banner",
    "capture",
    "detection_metrics",
    "list_layers",
    "load",
    "load_image",
    "load_noiseprint",
    "load_trufor",
    "localization_metrics",
    "resolve_device",
    "untrained",
]
