"""``analyze(model, image)`` -> :class:`Result`: the one call behind notebooks, CLI and widgets.

>>> import trufor_lab as tl
>>> model = tl.load()
>>> r = tl.analyze(model, "photo.jpg")
>>> r.score, r.map.shape      # integrity score, localization map (H, W) in [0, 1]
>>> r.plot()                  # image, Noiseprint++, map, confidence, overlay
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Sequence

import torch
from torch import nn

from trufor_lab.common.device import model_device, model_dtype
from trufor_lab.inference.predict import (
    InferenceMode,
    hooked,
    lean_peak_bytes,
    plain_fits,
    plain_peak_bytes,
    predict,
)
from trufor_lab.inference.preprocess import ImageError, ImageLike, LoadedImage
from trufor_lab.inference.load import unwrapped
from trufor_lab.inference.result import Result, make_result, prepare_input
from trufor_lab.model.capture import capture as capture_ctx
from trufor_lab.model.decoder import require_eval
from trufor_lab.model.interventions import (
    active_interventions,
    intervention_label,
    lean_blockers,
    plain_forward_required,
)
from trufor_lab.model.lean import free_memory_bytes, free_memory_measured
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.precision import ieee_float32
from trufor_lab.model.trufor import TruFor


def analyze(
    model: nn.Module,
    image: ImageLike | LoadedImage,
    *,
    capture: Sequence[str] | None = None,
    exif_transpose: bool = False,
    name: str | None = None,
    lean: bool | None = None,
    **capture_kwargs: Any,
) -> Result:
    """Run ``model`` (TruFor or Noiseprint++ alone) on one image and return a :class:`Result`.

    >>> r = tl.analyze(model, "photo.jpg")    # a path, PIL image, uint8 array or uint8 tensor
    >>> r = tl.analyze(model, tl.load_image("photo.jpg"))  # read once: not decoded again
    >>> r.score                               # probability that the image was manipulated
    >>> r = tl.analyze(model, "photo.jpg", capture=["fusion.stage4.ffm"])
    >>> r.captures["fusion.stage4.ffm"].shape[:2]    # (1, 512) with the official MiT-B2

    ``capture`` names layers of the catalog (see :func:`trufor_lab.list_layers`) to record
    during the same forward pass; they land in ``Result.captures`` (``capture_kwargs`` go to
    :func:`~trufor_lab.model.capture.capture`; maps subsampled under ``max_elements`` are said in
    ``Result.notes``).

    ``exif_transpose=True``: image and maps are turned the way viewers show a file with an EXIF
    orientation; the network still reads the stored grid (turning first would move the 8x8 JPEG
    grid that Noiseprint++ reads), so the score is the stored analysis's. Captures stay on the
    stored grid.

    ``lean``: run the memory-lean exact forward (:mod:`trufor_lab.model.lean`; same answer
    within float32 rounding, bounded memory). ``None`` (default): only when the plain forward
    would not fit in free memory, e.g. a 12-24 MP photo; ``Result.notes`` then says so. Layer
    capture needs the plain forward: an image too large for it is refused with a clear error
    rather than exhausting memory. The same holds for an active intervention the lean forward
    would skip (most ablations, see :mod:`trufor_lab.model.interventions`): the plain forward is
    used when it fits (``Result.notes`` says so), otherwise ``InterventionError`` refuses.
    Otherwise an image that fits runs the exact path of :func:`~trufor_lab.inference.predict.predict`
    (IEEE float32 as the official code, with folded BatchNorm and decoders: same answer within the
    float32 tolerances, faster); a model with hooks or interventions runs the plain module forward,
    where every hook fires. A Result computed under an intervention (an ablation, an outer
    capture, a user's hook) says so in ``Result.notes`` (``"computed under rgb_only"``), in
    float32 and float64 alike.
    """
    _check_capture_options(capture, capture_kwargs)
    if lean is not None and not isinstance(lean, bool):  # "no" ran the lean forward, 0 the automatic choice
        raise ValueError(f"lean: True, False or None (when it does not fit), got {lean!r}")
    model = unwrapped(model)  # DataParallel / torch.compile around TruFor: the model itself
    loaded, x = prepare_input(model, image, name)
    # every path refuses a module in training mode (the capture and hooked paths ran it, answered
    # from batch statistics and overwrote the model's running statistics)
    require_eval(model, "analyze()")
    known = isinstance(model, (TruFor, Noiseprint))
    if lean and not known:
        raise TypeError(f"lean=True needs TruFor or Noiseprint, not {type(model).__name__}")
    fits = True if lean is False or not known else plain_fits(model, x)
    use_lean = bool(lean) or not fits
    captures: dict[str, Any] = {}
    notes = loaded.notes
    acting = intervention_label(model)  # before this call's own capture, which changes nothing
    blockers = lean_blockers(model) if use_lean else []
    if blockers and plain_forward_required(model, lambda: fits, f"{loaded.name} ({x.shape[3]}x{x.shape[2]})"):
        use_lean = False  # the plain forward fits: the intervention is honoured there
        notes = (
            *notes,
            "plain forward: " + ", ".join(b.name for b in blockers) + " would be skipped by the memory-lean one",
        )
    with torch.no_grad():
        if capture:
            if use_lean:
                need, free = plain_peak_bytes(model, x), free_memory_bytes(x.device)
                why = (
                    f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
                    if not fits
                    else "lean=True was asked for"
                )
                raise ImageError(
                    f"{loaded.name}: cannot capture layers of a {x.shape[3]}x{x.shape[2]} image "
                    f"({why}): layer capture needs the plain forward; crop the image or "
                    "analyze without capture"
                )
            with capture_ctx(model, capture, **capture_kwargs) as cap, ieee_float32(onednn=True):
                out = model(x)
            captures = dict(cap.tensors)
            # what max_elements subsampling did, and what was asked for but not produced (an
            # ablation that skips a module): said, never silent
            notes = (*notes, *(f"capture {n}: {msg}" for n, msg in cap.notes.items()))
            if isinstance(model, TruFor) and x.dtype == torch.float32:  # exact folds BatchNorm: other roundings
                notes = (
                    *notes,
                    "captured on the plain forward: maps may differ from analyze() without capture by ~1e-3",
                )
            if cap.missing:
                notes = (*notes, f"capture: not produced by this forward: {', '.join(cap.missing)}")
        elif use_lean:
            _require_lean_fits(model, x, loaded.name)
            out = predict(model, x, InferenceMode.exact(lean=True))
            if not fits:
                notes = (
                    *notes,
                    f"memory-lean exact forward (the plain one would need about "
                    f"{plain_peak_bytes(model, x) / 2**30:.1f} GiB)",
                )
        elif known and not hooked(model):
            out = predict(model, x, InferenceMode.exact(lean=False))  # the fast exact path
        else:  # hooks or interventions act on the modules: run every one of them, in IEEE
            with ieee_float32(onednn=True):  # float32 as predict does (no TF32 on CUDA)
                out = model(x)
            if known and x.dtype == torch.float32:  # exact folds BatchNorm: other roundings
                notes = (
                    *notes,
                    f"ran the plain forward ({_acting(model)}): maps may differ from the exact path by ~1e-3",
                )
    if acting:  # an ablation's output is not the model's: said in every precision, not only in float32's note
        notes = (*notes, f"computed under {acting}")
    loaded = dataclasses.replace(loaded, notes=tuple(notes)) if notes is not loaded.notes else loaded
    result = make_result(model, loaded, out, name=name, captures=captures)
    return result.as_shown() if exif_transpose else result


def takes_lean(model: nn.Module, height: int, width: int) -> bool:
    """Whether :func:`analyze` (``lean=None``, no capture) runs the memory-lean forward on an
    image of ``height`` x ``width`` by itself: the plain forward would not fit in free memory
    (the same estimate it decides by), known from the size alone, before the image is decoded."""
    model = unwrapped(model)
    if not isinstance(model, (TruFor, Noiseprint)):
        return False
    shaped = torch.zeros((), dtype=model_dtype(model), device=model_device(model)).expand(1, 3, height, width)
    return not plain_fits(model, shaped)


def _require_lean_fits(model: nn.Module, x: torch.Tensor, name: str) -> None:
    """An image whose memory-lean forward needs more than free memory is refused in one line: it
    ran out of memory deep inside the network (a traceback, or the process killed by the kernel).
    Against 90% of free memory (a refusal, so no wider margin than the estimate's error): the lean
    estimate measured 7-10% under the peak RSS at 1 MP (0.23 GiB for 0.21 with a 128 MiB budget),
    and swap is not counted. Only on a measured figure
    (:func:`free_memory_measured`): on macOS or Windows free memory is a guess (4 GiB), and a
    12 MP photo that runs there was refused."""
    if not free_memory_measured(x.device):
        return
    need, free = lean_peak_bytes(model, x), free_memory_bytes(x.device)
    if need > 0.9 * free:
        raise ImageError(
            f"{name}: a {x.shape[3]}x{x.shape[2]} image needs about {_amount(need)} even with the "
            f"memory-lean forward, {_amount(free)} free; free memory, or crop or downscale the image"
        )


def _amount(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _acting(model: nn.Module) -> str:
    """What made analyze run the plain forward: the active interventions by name, else hooks."""
    names = [i.name for i in active_interventions(model)]
    return f"{' + '.join(names)} active" if names else "a hook acts on the model"


def _check_capture_options(capture: Sequence[str] | None, options: dict[str, Any]) -> None:
    """Options of :func:`~trufor_lab.model.capture.capture` only, and only with ``capture``: a
    misspelt keyword (``captures=``) was accepted and dropped, returning no captures."""
    if not options:
        return
    known = set(inspect.signature(capture_ctx).parameters) - {"model", "names"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"analyze() got unexpected keyword(s) {', '.join(unknown)} (capture options: {', '.join(sorted(known))})"
        )
    if not capture:
        raise TypeError(f"analyze(): {', '.join(sorted(options))} apply to layer capture only; pass capture=[...]")
    if options.get("grad"):
        raise ValueError(
            "analyze() runs without gradients; for captures with gradients use "
            "`with tl.capture(model, names, grad=True) as cap:` around your own forward"
        )


__all__ = ["Result", "analyze", "make_result", "prepare_input"]
