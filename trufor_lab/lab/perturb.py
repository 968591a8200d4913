"""Perturbations (JPEG, resize, blur, noise, gamma, crop) and robustness sweeps.

One cohesive thing: the perturbation vocabulary (classes, factories, presets, registry) and
the sweep that varies one of them share the ``apply(image, value, mask)`` contract and are read together.

Every perturbation is a small frozen dataclass with one call shape::

    out = p.apply(image, value)                  # image: RGB uint8 (H, W, 3)
    out, out_mask = p.apply(image, value, mask)  # mask follows resize / crop exactly

``value`` is what a sweep varies (quality, factor, sigma, ...); a perturbation may carry a
bound ``value`` (``jpeg(75)``), used when ``apply`` gets none, and then ``p(image)`` works too.
``chain`` composes them; ``PRESETS`` approximate what social networks do to uploads.

>>> from trufor_lab.lab.perturb import sweep
>>> res = sweep(model, image, mask, "jpeg", [95, 85, 75, 65])
>>> res.plot(); res.to_csv("jpeg_sweep.csv")
"""

from __future__ import annotations

import difflib
import html
import math
import numbers
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
from PIL import Image
from torch import nn

from trufor_lab.common.arrays import record_repr
from trufor_lab.common.image_files import MAX_PIXELS
from trufor_lab.common.imaging import to_uint8
from trufor_lab.common.memory import is_out_of_memory
from trufor_lab.common.table import Table
from trufor_lab.forensics.jpeg import jpeg_bytes, jpeg_compress
from trufor_lab.inference.analyze import analyze
from trufor_lab.inference.load import unwrapped
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.inference.result import NonFiniteOutput
from trufor_lab.inference.weights import WeightsInfo
from trufor_lab.lab.metrics import binary_mask, localization_metrics, scored_regions
from trufor_lab.model.identity import mixed_weights_note, other_weights, row_weights, weights_label
from trufor_lab.viz.figures import new_figure

__all__ = [
    "Perturbation",
    "JPEG",
    "Resize",
    "ResizeMax",
    "Blur",
    "GaussianNoise",
    "Gamma",
    "CropShift",
    "Chain",
    "jpeg",
    "resize",
    "resize_max",
    "blur",
    "gaussian_noise",
    "gamma",
    "crop_shift",
    "chain",
    "PRESETS",
    "PERTURBATIONS",
    "UnknownPerturbation",
    "register_perturbation",
    "get_perturbation",
    "SweepResult",
    "sweep",
]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")


def _pil_filter(name: str) -> int:
    table = {
        "nearest": Image.NEAREST,
        "bilinear": Image.BILINEAR,
        "bicubic": Image.BICUBIC,
        "area": Image.BOX,
        "lanczos": Image.LANCZOS,
    }
    if name not in table:
        raise ValueError(f"unknown interpolation {name!r}; choose one of {_INTERPOLATIONS}")
    return table[name]


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def _check_mask(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    return binary_mask(mask, image.shape[:2])


def _resize(
    image: np.ndarray, mask: np.ndarray | None, hw: tuple[int, int], interpolation: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """PIL resize (antialiased when shrinking, except ``nearest``); the mask is resized
    bilinearly and thresholded at 0.5 (nearest for ``nearest``)."""
    h, w = hw
    out = np.asarray(Image.fromarray(image).resize((w, h), _pil_filter(interpolation)))
    if mask is None:
        return out, None
    if interpolation == "nearest":
        m = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((w, h), Image.NEAREST)) > 0
    else:
        m = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((w, h), Image.BILINEAR)) >= 0.5
    return out, m


# --------------------------------------------------------------------------------------------
# perturbations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """Base class: subclasses set ``kind`` and implement ``_apply(image, value, mask)``."""

    value: Any = None
    kind: ClassVar[str] = "perturbation"
    value_name: ClassVar[str] = "value"

    def apply(self, image: np.ndarray, value: Any = None, mask: np.ndarray | None = None):
        """Perturbed image, or ``(image, mask)`` when a mask is given (a new array, always)."""
        v = self.value if value is None else value
        img = _check_image(image)
        m = None if mask is None else _check_mask(mask, img)
        out, out_mask = self._apply(img, v, m)
        if mask is None:
            return out
        return out, (m.copy() if out_mask is m else out_mask)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None):
        return self.apply(image, None, mask)

    def with_value(self, value: Any) -> "Perturbation":
        """The same perturbation with ``value`` bound."""
        return replace(self, value=value)

    @property
    def label(self) -> str:
        """Short name including fixed settings, e.g. ``resize[bicubic]``."""
        return self.kind

    def describe(self, value: Any = None) -> str:
        v = self.value if value is None else value
        return self.label if v is None else f"{self.label}({self.value_name}={v})"

    def _need(self, v: Any) -> Any:
        if v is None:
            raise ValueError(f"{self.kind}: no {self.value_name} given and none bound")
        return v

    def _number(self, v: Any) -> float:
        """The value as a finite real number (booleans, NaN, inf, strings refused in one line)."""
        v = self._need(v)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"{self.kind}: {self.value_name} must be a finite number, got {v!r}")
        return float(v)

    def applied_value(self, value: Any = None) -> Any:
        """The value ``apply(image, value)`` uses (``value``, else the bound one)."""
        return self.value if value is None else value

    def _apply(self, image: np.ndarray, value: Any, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


@dataclass(frozen=True)
class JPEG(Perturbation):
    """JPEG round trip at IJG quality ``value`` (libjpeg via Pillow; grid anchored at (0, 0))."""

    subsampling: str = "4:2:0"
    kind: ClassVar[str] = "jpeg"
    value_name: ClassVar[str] = "quality"

    def to_bytes(self, image: np.ndarray, value: int | None = None) -> bytes:
        """The JPEG file that ``apply`` decodes."""
        return jpeg_bytes(_check_image(image), self._quality(self.value if value is None else value), self.subsampling)

    def _quality(self, value: Any) -> int:
        q = self._number(value)
        if not q.is_integer():  # 75.9 is not silently 75
            raise ValueError(f"jpeg: quality must be a whole number, got {q!r}")
        return int(q)

    def _apply(self, image, value, mask):
        return jpeg_compress(image, self._quality(value), self.subsampling), mask

    @property
    def label(self) -> str:
        return "jpeg" if self.subsampling == "4:2:0" else f"jpeg[{self.subsampling}]"


@dataclass(frozen=True)
class Resize(Perturbation):
    """Rescale by ``value`` (new side = round(side * factor)); the mask follows."""

    interpolation: str = "bilinear"
    kind: ClassVar[str] = "resize"
    value_name: ClassVar[str] = "factor"

    def _apply(self, image, value, mask):
        f = self._number(value)
        if f <= 0:
            raise ValueError(f"resize factor must be > 0, got {f}")
        h, w = image.shape[:2]
        out_h, out_w = round(h * f), round(w * f)
        if min(out_h, out_w) < 1:  # clamping that side to 1 pixel would change the aspect unsaid
            raise ValueError(f"resize factor {f:g} makes the {w}x{h} image {out_w}x{out_h}: a side of no pixel")
        if out_h * out_w > MAX_PIXELS:  # PIL would allocate it (1000x of 64x80 asked for 14 GiB)
            raise ValueError(
                f"resize factor {f:g} makes a {out_w}x{out_h} image, more than the {MAX_PIXELS // 10**6} MP "
                "an image may have"
            )
        return _resize(image, mask, (out_h, out_w), self.interpolation)

    @property
    def label(self) -> str:
        return f"resize[{self.interpolation}]"


@dataclass(frozen=True)
class ResizeMax(Perturbation):
    """Shrink so that the longest side is at most ``value`` pixels (never enlarges)."""

    interpolation: str = "bicubic"
    kind: ClassVar[str] = "resize_max"
    value_name: ClassVar[str] = "max_side"

    def _apply(self, image, value, mask):
        v = self._number(value)
        if not v.is_integer():  # 40.9 is not silently 40
            raise ValueError(f"resize_max: max_side must be a whole number of pixels, got {value!r}")
        side = int(v)
        if side < 1:
            raise ValueError(f"max_side must be >= 1, got {side}")
        h, w = image.shape[:2]
        if max(h, w) <= side:
            return image.copy(), mask
        f = side / max(h, w)
        return _resize(image, mask, (max(1, round(h * f)), max(1, round(w * f))), self.interpolation)


@dataclass(frozen=True)
class Blur(Perturbation):
    """Gaussian blur of standard deviation ``value`` pixels (reflect borders; 0 = identity)."""

    kind: ClassVar[str] = "blur"
    value_name: ClassVar[str] = "sigma"

    def _apply(self, image, value, mask):
        from scipy import ndimage  # lazy: scipy is slow to import; only this function needs it

        s = self._number(value)
        if s < 0:
            raise ValueError(f"blur sigma must be >= 0, got {s}")
        if s == 0:
            return image.copy(), mask
        return to_uint8(ndimage.gaussian_filter(image.astype(np.float32), sigma=(s, s, 0))), mask


@dataclass(frozen=True)
class GaussianNoise(Perturbation):
    """Add white Gaussian noise of std ``value`` grey levels, then round and clip.

    The noise pattern is fixed by ``seed`` (same seed -> same pattern, scaled by sigma).
    """

    seed: int = 0
    kind: ClassVar[str] = "gaussian_noise"
    value_name: ClassVar[str] = "sigma"

    def __post_init__(self) -> None:
        ok = isinstance(self.seed, numbers.Integral) and not isinstance(self.seed, (bool, np.bool_))
        if not ok or self.seed < 0:
            raise ValueError(f"gaussian_noise: seed must be a whole number >= 0, got {self.seed!r}")

    def _apply(self, image, value, mask):
        s = self._number(value)
        if s < 0:
            raise ValueError(f"noise sigma must be >= 0, got {s}")
        n = np.random.default_rng(self.seed).standard_normal(image.shape, dtype=np.float32)
        return to_uint8(image.astype(np.float32) + s * n), mask

    @property
    def label(self) -> str:
        return f"gaussian_noise[seed={self.seed}]"


@dataclass(frozen=True)
class Gamma(Perturbation):
    """Gamma curve ``out = 255 * (in / 255) ** value`` (value > 1 darkens, < 1 brightens)."""

    kind: ClassVar[str] = "gamma"
    value_name: ClassVar[str] = "g"

    def _apply(self, image, value, mask):
        g = self._number(value)
        if g <= 0:
            raise ValueError(f"gamma must be > 0, got {g}")
        lut = to_uint8(255.0 * (np.arange(256) / 255.0) ** g)
        return lut[image], mask


@dataclass(frozen=True)
class CropShift(Perturbation):
    """Drop ``dx`` columns on the left and ``dy`` rows on the top: ``out[y, x] = in[y+dy, x+dx]``.

    ``value`` is ``(dx, dy)`` or one int for both. A shift that is not a multiple of 8 moves
    the content off the JPEG 8x8 grid of any earlier compression (a later JPEG is then
    misaligned with it), which is what grid-based detectors rely on.
    """

    kind: ClassVar[str] = "crop_shift"
    value_name: ClassVar[str] = "shift"

    @staticmethod
    def _pair(v: Any) -> tuple[int, int]:
        """``(dx, dy)`` as ints; floats (2.7 is not silently 2), bools, strings refused in one line."""
        pair = (v, v) if isinstance(v, numbers.Integral) else v
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2
        if not ok or not all(isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)) for d in pair):
            raise ValueError(f"crop_shift: shift must be a whole number or a pair (dx, dy) of them, got {v!r}")
        return int(pair[0]), int(pair[1])

    def _apply(self, image, value, mask):
        dx, dy = self._pair(self._need(value))
        h, w = image.shape[:2]
        if not (0 <= dx < w and 0 <= dy < h):
            raise ValueError(f"crop_shift needs 0 <= dx < {w} and 0 <= dy < {h}, got ({dx}, {dy})")
        return image[dy:, dx:].copy(), None if mask is None else mask[dy:, dx:].copy()


@dataclass(frozen=True)
class Chain(Perturbation):
    """Apply ``stages`` in order. ``apply``'s value goes to ``stages[vary]`` (others keep
    their bound values); with ``vary=None`` a value is refused."""

    stages: tuple[Perturbation, ...] = ()
    vary: int | None = None
    name: str = ""
    kind: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        """A negative ``vary`` counts from the end (Python indexing); one out of range is refused."""
        v, n = self.vary, len(self.stages)
        if v is None:
            return
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or not -n <= v < n:
            span = f"{-n}..{n - 1}" if n else "none (the chain has no stages)"
            raise ValueError(f"chain: vary must be None or a stage index in {span}, got {v!r}")
        object.__setattr__(self, "vary", int(v) % n)

    def _apply(self, image, value, mask):
        if value is not None and self.vary is None:
            raise ValueError(f"{self.label}: this chain takes no value (vary=None)")
        out = image
        for i, stage in enumerate(self.stages):
            v = value if i == self.vary else None
            if mask is None:
                out = stage.apply(out, v)
            else:
                out, mask = stage.apply(out, v, mask)
        return (out.copy() if out is image else out), mask

    def applied_value(self, value: Any = None) -> Any:
        if value is not None or self.vary is None:
            return value
        return self.stages[self.vary].applied_value()

    @property
    def value_name(self) -> str:  # type: ignore[override]
        return "value" if self.vary is None else self.stages[self.vary].value_name

    @property
    def label(self) -> str:
        # the varied stage without its bound value: the sweep's values replace it
        parts = (st.label if i == self.vary else st.describe() for i, st in enumerate(self.stages))
        return self.name or "chain(" + ", ".join(parts) + ")"


def jpeg(quality: int | None = None, subsampling: str = "4:2:0") -> JPEG:
    """JPEG round trip at ``quality`` (a sweep may pass its own)."""
    return JPEG(quality, subsampling)


def resize(factor: float | None = None, interpolation: str = "bilinear") -> Resize:
    """Rescale by ``factor`` with ``interpolation`` in nearest/bilinear/bicubic/area/lanczos."""
    _pil_filter(interpolation)
    return Resize(factor, interpolation)


def resize_max(max_side: int | None = None, interpolation: str = "bicubic") -> ResizeMax:
    """Shrink so that the longest side is at most ``max_side``."""
    _pil_filter(interpolation)
    return ResizeMax(max_side, interpolation)


def blur(sigma: float | None = None) -> Blur:
    """Gaussian blur of ``sigma`` pixels."""
    return Blur(sigma)


def gaussian_noise(sigma: float | None = None, seed: int = 0) -> GaussianNoise:
    """Additive Gaussian noise of std ``sigma`` (pattern fixed by ``seed``)."""
    return GaussianNoise(sigma, seed)


def gamma(g: float | None = None) -> Gamma:
    """Gamma curve with exponent ``g``."""
    return Gamma(g)


def crop_shift(dx: int | None = None, dy: int | None = None) -> CropShift:
    """Crop ``dx`` columns left and ``dy`` rows top (``dy`` defaults to ``dx``)."""
    if dx is None:
        return CropShift(None)
    pair = CropShift._pair((dx, dx if dy is None else dy))  # as apply checks it: 2.7 is not 2
    if min(pair) < 0:
        raise ValueError(f"crop_shift: shift must be >= 0, got {pair}")
    return CropShift(pair)


def chain(*stages: Perturbation | str, vary: int | None = None, name: str = "") -> Chain:
    """Compose perturbations (or registry names), applied left to right; the swept value goes
    to ``stages[vary]`` (negative counts from the end; out of range is refused)."""
    return Chain(None, tuple(get_perturbation(s) for s in stages), vary, name)


def _preset(name: str, max_side: int, quality: int) -> Chain:
    return Chain(None, (ResizeMax(max_side, "bicubic"), JPEG(quality)), vary=1, name=name)


#: Rough imitations of what platforms do to uploaded photos: shrink the longest side, then
#: re-encode as JPEG (the swept value, if any, replaces the quality). These are
#: approximations: real pipelines change over time, differ between app/web and upload
#: settings, use their own encoders and quantisation tables, strip metadata and may
#: sharpen or convert colour spaces.
PRESETS: dict[str, Chain] = {
    "facebook": _preset("facebook", 2048, 85),
    "twitter": _preset("twitter", 4096, 85),
    "x": _preset("x", 4096, 85),
    "instagram": _preset("instagram", 1080, 80),
    "whatsapp": _preset("whatsapp", 1600, 75),
    "telegram": _preset("telegram", 1280, 82),
}


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


class UnknownPerturbation(KeyError, ValueError):
    """Raised by :func:`get_perturbation` for an unknown name (message suggests the closest)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


#: name -> perturbation (unbound value unless it is a preset).
PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(name: str, perturbation: Perturbation, *, overwrite: bool = False) -> None:
    """Add ``perturbation`` under ``name`` (lower case); refuses duplicates unless ``overwrite``."""
    key = name.lower()
    if not isinstance(perturbation, Perturbation):
        raise TypeError(f"expected a Perturbation, got {type(perturbation).__name__}")
    if key in PERTURBATIONS and not overwrite:
        raise ValueError(f"perturbation {key!r} is already registered")
    PERTURBATIONS[key] = perturbation


for _name, _p in {
    "jpeg": JPEG(),
    "jpeg_444": JPEG(subsampling="4:4:4"),
    "resize": Resize(),
    "resize_nearest": Resize(interpolation="nearest"),
    "resize_bicubic": Resize(interpolation="bicubic"),
    "resize_area": Resize(interpolation="area"),
    "resize_max": ResizeMax(),
    "blur": Blur(),
    "gaussian_noise": GaussianNoise(),
    "noise": GaussianNoise(),
    "gamma": Gamma(),
    "crop_shift": CropShift(),
    **PRESETS,
}.items():
    register_perturbation(_name, _p)


def get_perturbation(name: str | Perturbation) -> Perturbation:
    """Look up ``name`` in ``PERTURBATIONS`` (case-insensitive); a Perturbation passes through."""
    if isinstance(name, Perturbation):
        return name
    key = str(name).lower().strip()
    if key in PERTURBATIONS:
        return PERTURBATIONS[key]
    close = difflib.get_close_matches(key, list(PERTURBATIONS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(PERTURBATIONS))}"
    raise UnknownPerturbation(f"unknown perturbation {name!r}{hint}")


# --------------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------------

_METRICS = ("f1_best", "f1_fixed", "mcc_best", "iou_fixed", "auc")
#: The attribute that marks a curve :meth:`SweepResult.plot` drew with the weights of its sweep.
_WEIGHTS_ATTR = "_trufor_lab_weights"


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


#: How the curves of :meth:`SweepResult.plot` are named (the table's columns in words).
_CURVE_LABELS = {
    "score": "integrity score",
    "f1_best": "F1, best threshold",
    "f1_fixed": "F1 at 0.5",
    "mean_conf": "mean confidence",
}


@dataclass
class SweepResult:
    """Rows of a sweep: one dict per value (``value``, ``height``, ``width``, ``score``,
    ``mean_conf``, ``map_mean``, ``f1_best``, ``f1_fixed``, ``mcc_best``, ``iou_fixed``,
    ``auc`` (the pixel ROC AUC of the map), ``best_inverted`` (the best-threshold F1 is that of the
    inverted map; None where nothing was scored, or a ``metrics_fn`` does not say), ``n_forged``: the
    forged pixels scored; metrics NaN where not defined, e.g. when no forged pixel is left to score; ``error``: why a value's image was not analysed, else None;
    ``weights``: whose weights made it, :func:`~trufor_lab.model.identity.weights_label`).
    ``weights`` is the record of the model swept (its ``weights_info``), said in the repr and the
    figure; a sweep drawn on the axes of another one of other weights names each one's weights."""

    perturbation: str
    table: Table
    results: list[Any] | None = field(default=None, repr=False)
    weights: WeightsInfo | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        """One line: the table's rows counted, not printed; whose weights were swept."""
        text = record_repr(self)
        return text if self.weights is None else f"{text[:-1]}, weights={weights_label(self.weights)!r})"

    def __post_init__(self) -> None:
        if not isinstance(self.table, Table):
            self.table = Table(self.table)
        self.table.title = f"sweep of {self.perturbation}"

    @property
    def values(self) -> list[Any]:
        return [r["value"] for r in self.table]

    @property
    def failed(self) -> list[str]:
        """Why each value that was not analysed, or whose map could not be scored, was not (its
        row holds NaN)."""
        return [r["error"] for r in self.table if r.get("error")]

    def column(self, key: str) -> np.ndarray:
        """One column as a float array (None, e.g. ``best_inverted`` where nothing was scored: NaN)."""
        values = (r.get(key) for r in self.table)
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

    def to_csv(self, path: str | os.PathLike) -> str:
        """Write the table as CSV (UTF-8, atomically: a failed write leaves the old file); returns the text."""
        return self.table.to_csv(path)

    def to_pandas(self):
        """The table as a pandas DataFrame."""
        return self.table.to_pandas()

    def plot(self, ax=None):
        """Score, F1 (best and fixed threshold) and mean confidence vs value; returns the Figure.
        On ``ax`` holding sweeps of other weights, every curve's label names its weights."""
        if ax is None:
            fig = new_figure(figsize=(5, 3.2))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ours = [ln for ln in ax.get_lines() if hasattr(ln, _WEIGHTS_ATTR)]  # curves of sweeps drawn before
        mixed = mixed_weights_note([*(getattr(ln, _WEIGHTS_ATTR) for ln in ours), self.weights], "these sweeps")
        if mixed:  # two models' curves on one axes: each names whose, and the title says they differ
            for ln in ours:
                if "\n" not in ln.get_label():
                    ln.set_label(f"{ln.get_label()}\n{weights_label(getattr(ln, _WEIGHTS_ATTR))}")
        vals = self.values
        numeric = all(_is_number(v) for v in vals)
        x = np.asarray(vals, dtype=float) if numeric else np.arange(len(vals))
        for key, style in (("score", "o-"), ("f1_best", "s-"), ("f1_fixed", "s--"), ("mean_conf", "^:")):
            y = self.column(key)
            if not np.all(np.isnan(y)):
                said = _CURVE_LABELS[key]  # words, not column names, in a figure a student reads
                (ln,) = ax.plot(x, y, style, label=f"{said}\n{weights_label(self.weights)}" if mixed else said)
                setattr(ln, _WEIGHTS_ATTR, self.weights)
        if not numeric:
            ax.set_xticks(x)
            ax.set_xticklabels([str(v) for v in vals], rotation=30, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(self.perturbation, parse_math=False)
        ax.grid(alpha=0.3)
        if mixed:
            ax.set_title("sweeps of different weights (each curve names its own)", fontsize=8, color="#b00020")
        elif self.weights is not None:
            ax.set_title(f"by {weights_label(self.weights)}", fontsize=8, parse_math=False)
        if ax.get_legend_handles_labels()[0]:
            for text in ax.legend(fontsize=8 if not mixed else 6).get_texts():
                text.set_parse_math(False)  # a checkpoint's file name: '$' as written
        return fig

    def _repr_html_(self) -> str:
        if not self.table:
            return f"<b>sweep of {html.escape(self.perturbation)}</b>: no rows"
        failed = "".join(f"<br>&#9888; {html.escape(msg)}" for msg in self.failed)
        by = "" if self.weights is None else f"<div>by {html.escape(weights_label(self.weights))}</div>"
        return self.table._repr_html_() + by + failed


def _metric(lm: Any, key: str) -> float:
    v = lm.get(key, math.nan) if isinstance(lm, dict) else getattr(lm, key, math.nan)
    return math.nan if v is None else float(v)


def _inverted(lm: Any) -> bool | None:
    """Whether the best-threshold F1 is that of the inverted map, when the metric says (the pixel
    AUC below 0.5 is no test of it: near chance the two disagree)."""
    v = lm.get("best_inverted") if isinstance(lm, dict) else getattr(lm, "best_inverted", None)
    return None if v is None else bool(v)


def _scored_forged(lm: Any) -> int | None:
    """Forged pixels the metric scored (after its erosion), when it says."""
    v = lm.get("n_forged") if isinstance(lm, dict) else getattr(lm, "n_forged", None)
    return None if v is None else int(v)


def _fit_map(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The map on the mask's grid: resized when only its scale differs (an ``analyze_fn`` that
    works at another resolution); another aspect ratio (a transposed or cropped map) raises."""
    if m.shape == shape:
        return m
    if m.ndim != 2 or abs(m.shape[0] * shape[1] - m.shape[1] * shape[0]) > max(m.shape[0], m.shape[1], *shape):
        hint = " (transposed?)" if m.shape[::-1] == tuple(shape) else ""
        raise ValueError(f"the map is {m.shape} but the image is {tuple(shape)}{hint}: not the same picture's grid")
    return np.asarray(Image.fromarray(m.astype(np.float32)).resize((shape[1], shape[0]), Image.BILINEAR))


def _failed_row(p: Perturbation, value: Any, image: np.ndarray, e: BaseException, n_forged: int) -> dict[str, Any]:
    """The row of a value whose perturbed image could not be analysed: NaN metrics, the reason."""
    text = " ".join(str(e).split()) or type(e).__name__
    row: dict[str, Any] = {
        "value": p.applied_value(value),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        **{k: math.nan for k in ("score", "mean_conf", "map_mean", *_METRICS)},
        "best_inverted": None,
        "n_forged": n_forged,
        "error": f"{p.value_name}={p.applied_value(value)}: not analysed ({text.removeprefix('<ndarray>: ')})",
    }
    return row


def sweep(
    model: Any,
    image: np.ndarray,
    mask: np.ndarray | None,
    perturbation: str | Perturbation,
    values: Iterable[Any],
    *,
    analyze_fn: Callable[[Any, np.ndarray], Any] | None = None,
    metrics_fn: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    keep_results: bool = False,
) -> SweepResult:
    """Perturb ``image`` (and ``mask``) with each value, analyse it and score the result.

    ``analyze_fn(model, image)`` must return an object with ``map`` (HxW), ``conf`` and
    ``score`` (any may be None); default :func:`trufor_lab.inference.analyze.analyze`. Localization
    metrics come from ``metrics_fn(map, mask)`` (default
    :func:`trufor_lab.lab.metrics.localization_metrics`) when the perturbed mask has forged
    pixels that the metric scores (its 15x15 erosion removes a region shrunk below ~15 px: NaN,
    not F1 0); a map of another size is resized bilinearly to the mask first; a map with NaN on
    scored pixels leaves that row's metrics NaN, with an ``error`` saying so. The mask must
    be boolean, 0/1 or 0/255. ``mask=None`` (a pristine image) gives score/confidence rows only.
    The sweep records the model's ``weights_info`` (none when no analysed row was the model's, e.g.
    an ``analyze_fn`` running a classic detector, whose rows say so; an ``analyze_fn`` answering
    with an analysis of other weights is refused in one line).
    """
    p = get_perturbation(perturbation)
    img = _check_image(image)
    m0 = None if mask is None else _check_mask(mask, img)
    if analyze_fn is None:
        analyze_fn = analyze
    info = getattr(unwrapped(model) if isinstance(model, nn.Module) else model, "weights_info", None)
    whose = None if info is None else weights_label(info)
    values = list(values)
    for v in values:  # a value that cannot be applied is refused before minutes of analysis, not after
        p.apply(img, v, m0)
    rows: list[dict[str, Any]] = []
    kept: list[Any] = []
    analysed: list[str | None] = []  # the weights entry of each row an analysis made
    for v in values:
        if m0 is None:
            pim, pmask = p.apply(img, v), None
        else:
            pim, pmask = p.apply(img, v, m0)
        try:
            res = analyze_fn(model, pim)
        except (ImageError, NonFiniteOutput, MemoryError, RuntimeError) as e:  # e.g. shrunk below the minimum
            if isinstance(e, RuntimeError) and not is_out_of_memory(e):
                raise  # a bug, not this value's row
            # this value's row says why; the rows already computed (minutes of CPU) are kept
            forged = 0 if pmask is None else int(scored_regions(pmask)[0].sum())  # as scored rows count
            rows.append({**_failed_row(p, v, pim, e, forged), "weights": whose})
            if keep_results:
                kept.append(None)
            continue
        made = getattr(res, "weights", None)
        if other_weights(made, info):  # rows of two models under one record
            raise ValueError(
                f"sweep: analyze_fn returned the analysis of {weights_label(made)}, not of the model swept "
                f"({weights_label(info)}); analyse the model it is given"
            )
        score = getattr(res, "score", None)
        conf = getattr(res, "conf", None)
        hmap = getattr(res, "map", None)
        row: dict[str, Any] = {
            "value": p.applied_value(v),  # what was applied
            "height": int(pim.shape[0]),
            "width": int(pim.shape[1]),
            "score": math.nan if score is None else float(score),
            "mean_conf": math.nan if conf is None else float(np.mean(conf)),
            "map_mean": math.nan if hmap is None else float(np.mean(hmap)),
        }
        row.update({k: math.nan for k in _METRICS}, best_inverted=None, error=None)
        row["n_forged"] = 0 if pmask is None else int(pmask.sum())
        fitted = None if hmap is None or pmask is None or not pmask.any() else _fit_map(np.asarray(hmap), pmask.shape)
        regions = None if fitted is None or fitted.dtype.kind != "f" else scored_regions(pmask)
        if regions is not None and np.isnan(fitted[regions[0] | regions[1]]).any():
            # an analyze_fn's NaN map ended the sweep with a traceback, losing the rows computed before
            row["error"] = f"{p.value_name}={p.applied_value(v)}: the map holds NaN on scored pixels (not scored)"
            row["n_forged"] = int(regions[0].sum())  # as scored rows count
        elif fitted is not None:
            if metrics_fn is None:
                metrics_fn = localization_metrics
            lm = metrics_fn(fitted, pmask)
            scored = _scored_forged(lm)
            # a region the metric's erosion removes entirely is not scored: F1 0 there would
            # read as the detector failing (what shrinking a small region does)
            if scored is None or scored > 0:
                row.update({k: _metric(lm, k) for k in _METRICS}, best_inverted=_inverted(lm))
            if scored is not None:
                row["n_forged"] = scored
        row["weights"] = row_weights(res, info)
        analysed.append(row["weights"])
        rows.append(row)
        if keep_results:
            kept.append(res)
    # the sweep is the model's unless no analysed row was (a classic detector's sweep names no weights)
    by_model = not analysed or whose in analysed
    return SweepResult(p.label, rows, kept if keep_results else None, info if by_model else None)
