"""The :class:`Result` of one analysis, and how it is built from a forward's output.

>>> r = tl.analyze(model, "photo.jpg")
>>> r.score, r.map.shape      # integrity score, localization map (H, W) in [0, 1]
>>> r.plot()                  # image, Noiseprint++, map, confidence, overlay
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from trufor_lab.common.arrays import brief, frozen
from trufor_lab.common.imaging import tensor_to_numpy
from trufor_lab.common.device import model_device, model_dtype
from trufor_lab.common.files import ANY, atomic_savez
from trufor_lab.common.image_files import turn_as_shown, turned_view
from trufor_lab.common.paths import display_name
from trufor_lab.inference.load import is_full_model, model_notice
from trufor_lab.inference.preprocess import (
    ImageError,
    ImageLike,
    LoadedImage,
    load_image,
    orientation_note,
    to_tensor,
)
from trufor_lab.inference.stored import (
    COMPUTED_KEY,
    INPUT_PATH_KEY,
    INPUT_SHA256_KEY,
    SHOWN_KEY,
    SUMMARY_KEY,
    WEIGHTS_SHA256_KEY,
    path_digest,
    sealed,
)
from trufor_lab.inference.weights import WeightsInfo
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.trufor import MIN_TRUFOR_SIDE, TruFor, TruForOutput  # noqa: F401 (MIN_TRUFOR_SIDE: re-exported)
from trufor_lab.viz.figures import figure_html, plot_result


@dataclass
class Result:
    """What TruFor says about one image. Maps are ``(H, W)`` at the image's size, in the model's
    precision (float32, or float64 for a float64 model; the npz keeps float32).

    ``map``: probability that each pixel is forged (localization); ``conf``: how reliable the
    map is at each pixel; ``score``: probability that the image is manipulated (integrity
    score); ``noiseprint``: the Noiseprint++ map. ``notice`` says which weights made them when
    they are not the official checkpoint (the demo model's maps and score are a small network's,
    not TruFor's); from Noiseprint++ alone (``tl.load(demo=False)`` without a TruFor checkpoint)
    only ``noiseprint`` is set, and ``notice`` says why.

    >>> r = tl.analyze(model, "photo.jpg")
    >>> print(r.summary())        # name, score, highest map value, mean confidence
    >>> r.map.shape == r.image.shape[:2]
    True
    >>> r.as_shown().plot()       # turned as viewers show the file (EXIF orientation)
    >>> r.save_npz("photo.jpg.npz")  # map, conf, score, imgsize: the official test script's file
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
    shown: bool = False  # image and maps turned as viewers show the file (see as_shown)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.image.shape[0], self.image.shape[1]

    @property
    def has_localization(self) -> bool:
        return self.map is not None

    def as_shown(self) -> Result:
        """This result with image and maps turned the way viewers show the file (its EXIF
        orientation). The network read the stored grid (turning the pixels first would move the
        8x8 JPEG grid that Noiseprint++ reads, and change the answer), so the score is the same;
        captures stay on the stored grid. Itself when there is nothing to turn. An array nothing
        can write (:func:`~trufor_lab.common.arrays.frozen`: a classic detector's maps, the
        casebook's pixels) is turned as a read-only view, not copied: both results share it, and
        a write through either raises; any other array is turned into a copy of its own.

        >>> r = tl.analyze(model, "portrait.jpg").as_shown()   # == analyze(..., exif_transpose=True)
        """
        o = self.exif_orientation
        if self.shown or o in (None, 1):
            return self
        before, after = orientation_note(o, "stored"), orientation_note(o, "shown")
        notes = tuple(after if n == before else n for n in self.notes)
        if after not in notes:
            notes = (*notes, after)
        if any(isinstance(v, (np.ndarray, torch.Tensor)) for v in self.captures.values()):
            notes = (*notes, "captured layers are on the file's stored grid (not turned as shown)")

        def turn(a: np.ndarray | None) -> np.ndarray | None:
            # an array nothing writes is viewed turned (a 12 MP plane copied per result and per
            # field held four copies of one image in the casebook's classic tab)
            return None if a is None else turned_view(a, o) if frozen(a) else turn_as_shown(a, o)

        return replace(
            self,
            image=turn(self.image),
            noiseprint=turn(self.noiseprint),
            map=turn(self.map),
            conf=turn(self.conf),
            notes=notes,
            shown=True,
        )

    # -- the official npz format ------------------------------------------------------------
    def official_dict(self, save_noiseprint: bool = False) -> dict[str, Any]:
        """Arrays as the official test script writes them (``map``, ``conf``, ``score``, ``imgsize``, ``np++``):
        copies in C order (a turned view's ``astype`` kept its layout and was saved in Fortran order)."""
        out: dict[str, Any] = {}
        if self.map is not None:
            out["map"] = np.array(self.map, np.float32, order="C")
        out["imgsize"] = np.asarray(self.size)
        if self.score is not None:
            out["score"] = np.float64(self.score)
        if self.conf is not None:
            out["conf"] = np.array(self.conf, np.float32, order="C")
        if save_noiseprint or self.map is None:
            out["np++"] = np.array(self.noiseprint, np.float32, order="C")
        return out

    def save_npz(
        self,
        path: str | os.PathLike,
        save_noiseprint: bool = False,
        input_sha256: str | None = None,
        computed: str | None = None,
        input_path: str | os.PathLike | None = None,
        weights_digest: str | None = None,
        expect: Any = ANY,
    ) -> None:
        """Write the official npz atomically (a temporary file renamed into place), with the
        sha256 of the input file (when given) and of its real path (``input_path``: a digest,
        not the path), of the weights (their file's sha256, or ``weights_digest`` when given:
        weights of no known file are named by their values), and how it was computed
        (``computed``, see :func:`computed_label`) as extra keys (see :func:`reuse_problem`,
        :func:`output_refusal`). ``expect``: what the caller saw at ``path`` when it chose to
        write it (:func:`~trufor_lab.common.files.file_state`): a file another run wrote there
        since is not replaced (:class:`~trufor_lab.common.files.ChangedMeanwhile`)."""
        if os.path.isdir(path):  # else the temporary file's rename names a hidden file
            raise IsADirectoryError(f"{path}: is a folder; save_npz takes the npz file's path")
        arrays = self.official_dict(save_noiseprint)
        if input_sha256:
            arrays[INPUT_SHA256_KEY] = np.str_(input_sha256)
        if input_path is not None:
            arrays[INPUT_PATH_KEY] = np.str_(path_digest(input_path))
        if computed:
            arrays[COMPUTED_KEY] = np.str_(computed)
        arrays[SUMMARY_KEY] = np.str_(self._said()[:1000])  # the name is the reader's to give
        if self.shown:  # not the stored grid that outputs are on: never reused as one
            arrays[SHOWN_KEY] = np.int64(self.exif_orientation or 0)
        if weights_digest:
            arrays[WEIGHTS_SHA256_KEY] = np.str_(weights_digest)
        elif self.weights is not None and self.weights.sha256 not in ("", "-"):
            arrays[WEIGHTS_SHA256_KEY] = np.str_(self.weights.sha256)
        atomic_savez(path, sealed(arrays), expect)

    # -- display ----------------------------------------------------------------------------
    def plot(self, mask: np.ndarray | None = None, fig=None):
        """Image, (mask), Noiseprint++, localization map, confidence, overlay; returns the Figure.
        ``mask`` is on the result's grid (for a result turned :meth:`as_shown`, turn the mask too:
        ``turn_as_shown(mask, r.exif_orientation)``)."""
        return plot_result(self, mask=mask, fig=fig)  # a mask on another grid is refused there

    def summary(self) -> str:
        """One line for logs and tables; how the input was read (``notes``) in brackets."""
        return f"{self.name or 'image'}: {self._said()}"

    def _said(self) -> str:
        """The summary after the name."""
        said = f" [{'; '.join(self.notes)}]" if self.notes else ""
        if self.map is None:
            return f"Noiseprint++ only ({self.size[1]}x{self.size[0]}){said}"
        conf = "" if self.conf is None else f", mean confidence {float(self.conf.mean()):.3f}"
        if self.score is None:  # e.g. a classic detector that defines no global score
            what = f" ({self.label})" if self.label else ""
            return f"no global score{what}, map max {float(self.map.max()):.3f}{conf}{said}"
        return f"score {self.score:.3f}, map max {float(self.map.max()):.3f}{conf}{said}"

    def __repr__(self) -> str:
        """One line (the arrays by dtype and shape, as numpy-holding records of mature libraries do);
        ``summary()`` reads it in words, and a notebook shows the figure."""
        h, w = self.size
        parts = [f"name={self.name!r}", f"size={w}x{h}"]
        fields = ("score", "det_logit", "map", "conf", "noiseprint")
        parts += [f"{k}={brief(getattr(self, k))}" for k in fields if getattr(self, k) is not None]
        if self.weights is not None:
            parts.append(f"weights={self.weights.kind!r}{'' if self.weights.verified else ' (unverified)'}")
        if self.label is not None:
            parts.append(f"label={self.label!r}")
        if self.exif_orientation not in (None, 1):
            parts.append(f"exif_orientation={self.exif_orientation}{' (shown)' if self.shown else ''}")
        if self.notes:
            parts.append(f"notes={len(self.notes)} (see .notes)")
        if self.captures:
            parts.append(f"captures={sorted(map(str, self.captures))}")
        return f"Result({', '.join(parts)})"

    def _repr_html_(self) -> str:
        banner = (
            (f'<div style="background:#fff3cd;padding:4px;border:1px solid #e0c060">{html.escape(self.notice)}</div>')
            if self.notice
            else ""
        )
        return banner + figure_html(self.plot(), f"{display_name(self.name)}: {self._said()}")  # no folders, no bidi


def require_full_precision(model: nn.Module) -> None:
    """A one-line ``ValueError`` for TruFor or Noiseprint++ cast to another precision than float32
    or float64 (``model.to(torch.bfloat16)``): every layer, Noiseprint++ included, would run in
    it (a bfloat16 score 0.06 where float32 says 0.29; float16 overflows). The fast mode's
    bfloat16 encoder is autocast inside a float32 model, not this."""
    if not isinstance(model, (TruFor, Noiseprint)):
        return
    kinds = sorted(
        {str(t.dtype).removeprefix("torch.") for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    )
    if set(kinds) - {"float32", "float64"}:
        raise ValueError(
            f"model parameters are {' and '.join(kinds)}; TruFor runs in float32 or float64: model.float()"
        )
    if len(kinds) > 1:
        raise ValueError(
            "model parameters mix float32 and float64; TruFor runs in one of them: model.float() or model.double()"
        )


def prepare_input(
    model: nn.Module, image: ImageLike | LoadedImage, name: str | None = None
) -> tuple[LoadedImage, torch.Tensor]:
    """Read ``image`` on its stored grid and make the model's input (RGB / 256 on its device
    and dtype); a model in another precision than float32/float64 is refused first. ``name``:
    what errors call an image given as bytes, an array... (an upload's name, not ``<bytes>``); a
    path's errors name the path. A :class:`LoadedImage` (``load_image``'s answer, e.g. read first
    to refuse a bad file before the model loads) is taken as it is, not decoded again."""
    if not isinstance(model, nn.Module):  # e.g. a checkpoint's path given where the model goes
        raise TypeError(f"the model must be a network (tl.load(...)), not {type(model).__name__} {str(model)[:80]!r}")
    require_full_precision(model)
    if isinstance(image, LoadedImage):
        loaded = image
    else:
        loaded = load_image(image, name=None if isinstance(image, (str, os.PathLike)) else name)
    h, w = loaded.rgb.shape[:2]
    side = model.min_side if is_full_model(model) else 1
    if min(h, w) < side:
        raise ImageError(f"{loaded.name}: image is {w}x{h}; TruFor needs at least {side} pixels on each side")
    return loaded, to_tensor(loaded.rgb, dtype=model_dtype(model), device=model_device(model))


class NonFiniteOutput(RuntimeError):
    """The network returned NaN or Inf for an input: never reported as a score."""


def make_result(
    model: nn.Module, loaded: LoadedImage, out: Any, *, name: str | None = None, captures: dict[str, Any] | None = None
) -> Result:
    """A :class:`Result` from a forward's output (``TruForOutput``, or a Noiseprint++ map).

    Raises :class:`NonFiniteOutput` rather than return NaN or Inf as a score or a map."""
    if not isinstance(out, (TruForOutput, torch.Tensor)):  # a module of the user's: say what it returned
        raise TypeError(
            f"{type(model).__name__} returned {type(out).__name__}: analyze() reads TruFor's output or a "
            "Noiseprint++ map (pass the TruFor model itself)"
        )
    full = isinstance(out, TruForOutput)
    parts = out._asdict() if full else {"Noiseprint++": out}
    bad = [k for k, t in parts.items() if torch.is_tensor(t) and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteOutput(
            f"{name or loaded.name}: the network's output is not finite (NaN or Inf in {', '.join(bad)}); "
            "the weights or this input overflow the model's precision"
        )
    common = dict(
        image=loaded.rgb,
        name=name or loaded.name,
        weights=getattr(model, "weights_info", None),
        notice=model_notice(model),
        exif_orientation=loaded.exif_orientation,
        shown=loaded.turned,  # load_image(exif_transpose=True): analysed turned, never turned again
        notes=loaded.notes,
        captures=captures or {},
    )
    if not full:
        return Result(noiseprint=tensor_to_numpy(out[0, 0]), **common)
    return Result(
        noiseprint=tensor_to_numpy(out.noiseprint[0, 0]),
        map=tensor_to_numpy(out.map[0]),
        conf=tensor_to_numpy(out.conf[0]),
        score=float(out.score[0]),
        det_logit=float(out.det_logit[0, 0]),
        **common,
    )
