"""``analyze(model, image)`` -> :class:`Result`: the one call behind notebooks, CLI and widgets.

>>> import trufor_lab as tl
>>> model = tl.load()
>>> r = tl.analyze(model, "photo.jpg")
>>> r.score, r.map.shape      # integrity score, localization map (H, W) in [0, 1]
>>> r.plot()                  # image, Noiseprint++, map, confidence, overlay
"""
from __future__ import annotations

import dataclasses
import html
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .load import is_full_model, model_notice
from .preprocess import ImageError, ImageLike, LoadedImage, load_image, to_tensor
from .weights import WeightsInfo


#: Smallest side TruFor can process: stage 1's spatial reduction (8x8 stride 8 at 1/4 scale)
#: needs at least one output position.
MIN_TRUFOR_SIDE = 29


@dataclass
class Result:
    """What TruFor says about one image. Maps are ``(H, W)`` float32 at the image's size.

    ``map``: probability that each pixel is forged (localization); ``conf``: how reliable the
    map is at each pixel; ``score``: probability that the image is manipulated (integrity
    score); ``noiseprint``: the Noiseprint++ map. Without a full TruFor checkpoint only
    ``noiseprint`` is set and ``notice`` says why.
    """

    image: np.ndarray
    noiseprint: np.ndarray
    map: np.ndarray | None = None
    conf: np.ndarray | None = None
    score: float | None = None
    det_logit: float | None = None
    name: str = ""
    weights: WeightsInfo | None = None
    notice: str | None = None
    exif_orientation: int | None = None
    notes: tuple[str, ...] = ()
    captures: dict[str, Any] = field(default_factory=dict)
    label: str | None = None  # e.g. the ablation or perturbation that produced it

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.image.shape[0], self.image.shape[1]

    @property
    def has_localization(self) -> bool:
        return self.map is not None

    # -- the official npz format ------------------------------------------------------------
    def official_dict(self, save_noiseprint: bool = False) -> dict[str, Any]:
        """Arrays as the official test script writes them (``map``, ``conf``, ``score``, ``imgsize``, ``np++``)."""
        out: dict[str, Any] = {}
        if self.map is not None:
            out["map"] = self.map.astype(np.float32)
        out["imgsize"] = np.asarray(self.size)
        if self.score is not None:
            out["score"] = np.float64(self.score)
        if self.conf is not None:
            out["conf"] = self.conf.astype(np.float32)
        if save_noiseprint or self.map is None:
            out["np++"] = self.noiseprint.astype(np.float32)
        return out

    def save_npz(self, path: str | os.PathLike, save_noiseprint: bool = False) -> None:
        """Write the official npz atomically (a temporary file renamed into place)."""
        atomic_savez(path, self.official_dict(save_noiseprint))

    # -- display ----------------------------------------------------------------------------
    def plot(self, mask: np.ndarray | None = None, fig=None):
        """Image, (mask), Noiseprint++, localization map, confidence, overlay; returns the Figure."""
        from .viz.figures import plot_result
        return plot_result(self, mask=mask, fig=fig)

    def summary(self) -> str:
        """One line for logs and tables."""
        if self.score is None:
            return f"{self.name or 'image'}: Noiseprint++ only ({self.size[1]}x{self.size[0]})"
        return (f"{self.name or 'image'}: score {self.score:.3f}, map max {float(self.map.max()):.3f}, "
                f"mean confidence {float(self.conf.mean()):.3f}")

    def _repr_html_(self) -> str:
        import base64
        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        import matplotlib.pyplot as plt
        plt.close(fig)
        img = base64.b64encode(buf.getvalue()).decode()
        banner = (f'<div style="background:#fff3cd;padding:4px;border:1px solid #e0c060">'
                  f'{html.escape(self.notice)}</div>') if self.notice else ""
        return f'{banner}<div><b>{html.escape(self.summary())}</b></div><img src="data:image/png;base64,{img}"/>'


def atomic_savez(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """``np.savez`` to ``path`` through a temporary file in the same folder, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def analyze(model: nn.Module, image: ImageLike, *, capture: Sequence[str] | None = None,
            exif_transpose: bool = False, name: str | None = None, lean: bool | None = None,
            **capture_kwargs: Any) -> Result:
    """Run ``model`` (TruFor or Noiseprint++ alone) on one image and return a :class:`Result`.

    ``capture`` names layers of the catalog (see :func:`trufor_lab.list_layers`) to record
    during the same forward pass; they land in ``Result.captures``.

    ``lean``: run the memory-lean exact forward (:mod:`trufor_lab.model.lean`; same answer
    within float32 rounding, bounded memory). ``None`` (default): only when the plain forward
    would not fit in free memory, e.g. a 12-24 MP photo; ``Result.notes`` then says so. Layer
    capture needs the plain forward: an image too large for it is refused with a clear error
    rather than exhausting memory.
    """
    loaded, x = prepare_input(model, image, exif_transpose=exif_transpose)
    if model.training:
        warnings.warn("model is in training mode; analyze() expects model.eval()", stacklevel=2)
    from .inference import InferenceMode, plain_fits, plain_peak_bytes, predict
    from .model.lean import free_memory_bytes
    from .model.noiseprint import Noiseprint
    from .model.trufor import TruFor
    known = isinstance(model, (TruFor, Noiseprint))
    if lean and not known:
        raise TypeError(f"lean=True needs TruFor or Noiseprint, not {type(model).__name__}")
    fits = True if lean is False or not known else plain_fits(model, x)
    use_lean = bool(lean) or not fits
    captures: dict[str, Any] = {}
    notes = loaded.notes
    with torch.no_grad():
        if capture:
            if use_lean:
                need, free = plain_peak_bytes(model, x), free_memory_bytes(x.device)
                why = (f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free" if not fits
                       else "lean=True was asked for")
                raise ImageError(f"{loaded.name}: cannot capture layers of a {x.shape[3]}x{x.shape[2]} image "
                                 f"({why}): layer capture needs the plain forward; crop the image or "
                                 "analyze without capture")
            from .hooks import capture as capture_ctx
            with capture_ctx(model, capture, **capture_kwargs) as cap:
                out = model(x)
            captures = dict(cap.tensors)
        elif use_lean:
            out = predict(model, x, InferenceMode.exact(lean=True))
            if not fits:
                notes = (*notes, f"memory-lean exact forward (the plain one would need about "
                                 f"{plain_peak_bytes(model, x) / 2**30:.1f} GiB)")
        else:
            out = model(x)
    loaded = dataclasses.replace(loaded, notes=tuple(notes)) if notes is not loaded.notes else loaded
    return make_result(model, loaded, out, name=name, captures=captures)


def prepare_input(model: nn.Module, image: ImageLike, *, exif_transpose: bool = False
                  ) -> tuple[LoadedImage, torch.Tensor]:
    """Read ``image`` and make the model's input (RGB / 256 on its device and dtype)."""
    loaded = load_image(image, exif_transpose=exif_transpose)
    h, w = loaded.rgb.shape[:2]
    if is_full_model(model) and min(h, w) < MIN_TRUFOR_SIDE:
        raise ImageError(f"{loaded.name}: image is {w}x{h}; TruFor needs at least "
                         f"{MIN_TRUFOR_SIDE} pixels on each side")
    return loaded, to_tensor(loaded.rgb, dtype=model_dtype(model), device=model_device(model))


def make_result(model: nn.Module, loaded: LoadedImage, out: Any, *, name: str | None = None,
                captures: dict[str, Any] | None = None) -> Result:
    """A :class:`Result` from a forward's output (``TruForOutput``, or a Noiseprint++ map)."""
    common = dict(image=loaded.rgb, name=name or loaded.name, weights=getattr(model, "weights_info", None),
                  notice=model_notice(model), exif_orientation=loaded.exif_orientation, notes=loaded.notes,
                  captures=captures or {})
    if not is_full_model(model):
        return Result(noiseprint=_np(out[0, 0]), **common)
    return Result(noiseprint=_np(out.noiseprint[0, 0]), map=_np(out.map[0]), conf=_np(out.conf[0]),
                  score=float(out.score[0]), det_logit=float(out.det_logit[0, 0]), **common)


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t if t.dtype == torch.float64 else t.float()).numpy()
