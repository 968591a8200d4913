"""The :class:`Result` of one analysis, and how it is built from a forward's output.

>>> r = tl.analyze(model, "photo.jpg")
>>> r.score, r.map.shape      # integrity score, localization map (H, W) in [0, 1]
>>> r.plot()                  # image, Noiseprint++, map, confidence, overlay
"""

from __future__ import annotations

import hashlib
import html
import os
import zipfile
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from trufor_lab.common.arrays import brief, frozen
from trufor_lab.common.imaging import tensor_to_numpy
from trufor_lab.common.device import model_device, model_dtype
from trufor_lab.common.files import atomic_savez
from trufor_lab.common.image_files import turn_as_shown, turned_view
from trufor_lab.common.paths import display_name
from trufor_lab.inference.load import is_full_model, model_notice
from trufor_lab.inference.preprocess import (
    MAX_PIXELS,
    ImageError,
    ImageLike,
    LoadedImage,
    load_image,
    orientation_note,
    to_tensor,
)
from trufor_lab.inference.weights import WeightsInfo
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.trufor import MIN_TRUFOR_SIDE, TruFor, TruForOutput  # noqa: F401 (MIN_TRUFOR_SIDE: re-exported)
from trufor_lab.viz.figures import figure_html, plot_result

#: Extra npz keys (ignored by official readers) recording what an output was made from: the
#: sha256 of the input file and of the weights. An existing output is reused only when both match.
INPUT_SHA256_KEY = "trufor_lab_input_sha256"
WEIGHTS_SHA256_KEY = "trufor_lab_weights_sha256"
#: How the maps were computed (e.g. ``"exact float32"``): an output computed otherwise is not reused.
COMPUTED_KEY = "trufor_lab_computed"
#: The result's one-line summary after the name (score, how the input was read): said again
#: when the output is reused.
SUMMARY_KEY = "trufor_lab_summary"
#: The sha256 of the input's real path: an output of another file (the same name from another
#: folder, written into the same output folder) is not replaced unasked; an edited input is.
INPUT_PATH_KEY = "trufor_lab_input_path_sha256"
#: The records every output carries besides the official arrays (weights: when they are known).
RECORD_KEYS = (INPUT_SHA256_KEY, INPUT_PATH_KEY, WEIGHTS_SHA256_KEY, COMPUTED_KEY, SUMMARY_KEY)
#: Present (the EXIF orientation) when the maps were turned as viewers show the file
#: (:meth:`Result.as_shown`) rather than kept on the stored grid.
SHOWN_KEY = "trufor_lab_shown_orientation"


def computed_label(mode: str, precision: str | torch.dtype) -> str:
    """How an output was computed, as its npz records it: inference mode and precision,
    e.g. ``computed_label("exact", torch.float64) == "exact float64"``."""
    return f"{mode} {str(precision).replace('torch.', '')}"


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
    ) -> None:
        """Write the official npz atomically (a temporary file renamed into place), with the
        sha256 of the input file (when given) and of its real path (``input_path``: a digest,
        not the path), of the weights (their file's sha256, or ``weights_digest`` when given:
        weights of no known file are named by their values), and how it was computed
        (``computed``, see :func:`computed_label`) as extra keys (see :func:`reuse_problem`,
        :func:`output_refusal`)."""
        if os.path.isdir(path):  # else the temporary file's rename names a hidden file
            raise IsADirectoryError(f"{path}: is a folder; save_npz takes the npz file's path")
        arrays = self.official_dict(save_noiseprint)
        if input_sha256:
            arrays[INPUT_SHA256_KEY] = np.str_(input_sha256)
        if input_path is not None:
            arrays[INPUT_PATH_KEY] = np.str_(_path_digest(input_path))
        if computed:
            arrays[COMPUTED_KEY] = np.str_(computed)
        arrays[SUMMARY_KEY] = np.str_(self._said()[:1000])  # the name is the reader's to give
        if self.shown:  # not the stored grid that outputs are on: never reused as one
            arrays[SHOWN_KEY] = np.int64(self.exif_orientation or 0)
        if weights_digest:
            arrays[WEIGHTS_SHA256_KEY] = np.str_(weights_digest)
        elif self.weights is not None and self.weights.sha256 not in ("", "-"):
            arrays[WEIGHTS_SHA256_KEY] = np.str_(self.weights.sha256)
        atomic_savez(path, arrays)

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


def recorded_summary(npz_path: str | os.PathLike) -> str | None:
    """The summary an output recorded when it was written (``None`` for older or foreign files;
    the file is untrusted: nothing in it can raise)."""
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            if SUMMARY_KEY in d.files and _small(d.zip, SUMMARY_KEY):
                v = d[SUMMARY_KEY]
                return str(v) if v.dtype.kind == "U" and v.ndim == 0 else None
    except Exception:  # noqa: BLE001 - untrusted file
        return None
    return None


def foreign_output(npz_path: str | os.PathLike) -> bool:
    """Whether an existing file is someone else's, never overwritten unasked: anything but a zip
    whose members include a map (``map.npy`` or ``np++.npy``). An output of ours that no longer
    reads (damaged) is still a zip naming its map, or one cut short whose first member is an
    output array, and is recomputed; a text file, a pickle or an image that merely has the
    output's name is not ours."""
    try:
        with zipfile.ZipFile(npz_path) as z:
            return not ({"map.npy", "np++.npy"} & set(z.namelist()))
    except Exception:  # noqa: BLE001 - not a readable zip: ours only if it starts like one of ours
        return not _starts_like_an_output(npz_path)


def _path_digest(path: str | os.PathLike) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()


def output_refusal(
    npz_path: str | os.PathLike,
    input_path: str | os.PathLike,
    input_sha256: str,
    overwrite: str = "--overwrite",
    named: bool = False,
) -> str | None:
    """Why the existing file ``npz_path`` is not to be replaced by the analysis of
    ``input_path`` (one line naming it), or None: someone else's file (:func:`foreign_output`),
    or the output of another input file (another path and other content: the same name from
    another folder written into the same output folder; an edited input, or the same content
    moved, is not refused). ``overwrite`` names the option that replaces it anyway; ``named``:
    the caller named this output file itself (``-o result.npz``): only someone else's file is
    refused."""
    if not os.path.lexists(npz_path):
        return None
    if foreign_output(npz_path):
        return f"{npz_path}: exists and is not an analysis output (no 'map'); not overwritten ({overwrite} to replace)"
    if named:
        return None
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            keys = (INPUT_SHA256_KEY, INPUT_PATH_KEY)
            rec = {k: str(d[k]) for k in keys if k in d.files and _small(d.zip, k)}
    except Exception:  # noqa: BLE001 - untrusted: an output that does not read is recomputed
        return None
    if len(rec) == 2 and rec[INPUT_PATH_KEY] != _path_digest(input_path) and rec[INPUT_SHA256_KEY] != input_sha256:
        return (
            f"{npz_path}: holds the analysis of another input file (another path, other content); not "
            f"overwritten ({overwrite} to replace, or write to another output folder)"
        )
    return None


def _starts_like_an_output(path: str | os.PathLike) -> bool:
    """Whether a file's first zip member (its local header: no central directory needed, which
    a file cut short lacks) is the first array an output is written with."""
    try:
        with open(path, "rb") as f:
            head = f.read(30 + 16)
    except OSError:
        return False
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return False
    size = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + size] in (b"map.npy", b"imgsize.npy")


def reuse_problem(
    npz_path: str | os.PathLike,
    input_sha256: str,
    weights_sha256: str | None,
    needs: tuple[str, ...] = (),
    computed: str | None = None,
    shape: tuple[int, int] | None = None,
) -> str | None:
    """``None`` when the existing output ``npz_path`` records that it was made from an input
    with ``input_sha256``, with weights ``weights_sha256`` and computed as ``computed`` (each
    not checked when ``None``), and holds the arrays in ``needs`` (e.g. ``"np++"`` when the
    Noiseprint++ map is asked for) with sane arrays (the image's ``shape`` (H, W), else the size
    it records; finite; maps and score in [0, 1]); else why it must be recomputed (a short
    phrase for a one-line note). The file is untrusted: nothing in it can raise."""
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            keys = (INPUT_SHA256_KEY, WEIGHTS_SHA256_KEY, COMPUTED_KEY)
            rec = {k: str(d[k]) for k in keys if k in d.files and _small(d.zip, k)}
            missing = [k for k in needs if k not in d.files]
            shown = SHOWN_KEY in d.files
    except Exception as e:  # noqa: BLE001 - an output file is untrusted: any failure means "recompute"
        return f"existing output unreadable ({' '.join(str(e).split())[:120] or type(e).__name__})"
    if INPUT_SHA256_KEY not in rec:
        return "existing output does not record its input"
    if rec[INPUT_SHA256_KEY] != input_sha256:
        return "existing output was made from a different input file"
    if weights_sha256 is not None and rec.get(WEIGHTS_SHA256_KEY) != weights_sha256:
        return (
            f"existing output was made with other weights (sha256 {rec.get(WEIGHTS_SHA256_KEY, '?')[:12]}, "
            f"now {weights_sha256[:12]})"
        )
    if computed is not None and rec.get(COMPUTED_KEY) != computed:
        was = f"computed as {rec[COMPUTED_KEY]}" if COMPUTED_KEY in rec else "does not record how it was computed"
        return f"existing output {was} (now {computed})"
    if missing:
        return f"existing output lacks {', '.join(missing)}"
    if shown:
        return "existing output's maps are turned as viewers show the file, not on its stored grid"
    return _content_problem(npz_path, shape)


#: Arrays of an output npz that hold per-pixel maps, and which must lie in [0, 1].
_MAPS = {"map": True, "conf": True, "np++": False}


def _header(z: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of ``key`` in an npz, from its .npy header alone (nothing decompressed)."""
    with z.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), dtype


def _small(z: zipfile.ZipFile, key: str, limit: int = 4096) -> bool:
    """Whether ``key`` declares at most ``limit`` elements (a record string, not a bomb)."""
    shape, dtype = _header(z, key)
    return int(np.prod(shape)) * max(dtype.itemsize, 1) <= limit


def _content_problem(npz_path: str | os.PathLike, shape: tuple[int, int] | None) -> str | None:
    """Why the arrays of an output whose records match cannot be reused (declared shapes first,
    so a forged header never makes us decompress gigabytes; then NaN and out-of-range values),
    or ``None``."""
    try:
        with zipfile.ZipFile(npz_path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            if shape is None and "imgsize" in names and _small(z, "imgsize", 64):
                with np.load(npz_path, allow_pickle=False) as d:
                    shape = tuple(int(v) for v in np.asarray(d["imgsize"]).reshape(-1)[:2])
            for key in _MAPS:
                if key not in names:
                    continue
                got, dtype = _header(z, key)
                if dtype.kind != "f":
                    return f"existing output's {key} is not a float array ({dtype})"
                if shape is not None and got != tuple(shape):
                    return f"existing output's {key} is {got}, not the image's {tuple(shape)}"
                if int(np.prod(got)) > MAX_PIXELS:
                    return f"existing output's {key} declares {got}: larger than any image"
            if "score" in names and not _small(z, "score", 64):
                return "existing output's score is not one number"
        with np.load(npz_path, allow_pickle=False) as d:
            for key, unit in _MAPS.items():
                if key in names:
                    a = d[key]
                    if not np.isfinite(a).all() or (unit and a.size and (a.min() < 0 or a.max() > 1)):
                        return f"existing output's {key} holds NaN or values outside 0..1"
            if "score" in names:
                v = np.asarray(d["score"]).reshape(-1)
                if v.size != 1 or v.dtype.kind not in "fiu" or not 0 <= float(v[0]) <= 1:
                    return "existing output's score is not a number in 0..1"
    except Exception as e:  # noqa: BLE001 - untrusted file: any failure means "recompute"
        return f"existing output unreadable ({' '.join(str(e).split())[:120] or type(e).__name__})"
    return None


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
