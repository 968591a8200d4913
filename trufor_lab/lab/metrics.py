"""TruFor's official evaluation protocol, reproduced exactly, plus a few extra metrics.

The numbers match the official script (``test_docker/metrics.py`` of grip-unina/TruFor) on
the same probability maps and masks, edge cases included (the deviations are listed below):

* Localization is scored on forged images only. The mask is boolean or 0/1 with 1 = forged;
  anything else raises (converting 0/255 or inverted masks is the loader's job).
* Forged pixels are the mask eroded by a 15x15 square minimum filter; pristine pixels are the
  complement of the mask dilated by an 11x11 square maximum filter. Both filters reflect at
  the border (scipy's default), so a region touching the border is not eroded from that side.
  The band in between is ignored.
* ``f1_best``: the map is cast to float32; one threshold per distinct value ``v`` over the
  scored pixels, prediction forged = ``map > v`` (ties grouped). The official sweep has no
  threshold below the minimum, but the all-forged prediction is the inverse of the ``v = max``
  one, so the maximum over inversion (below) covers it anyway.
* ``f1_fixed``: prediction forged = ``map > 0.5``, compared in the map's own dtype (the
  official code does not cast to float32 here).
* Every F1 is ``max(F1(pred), F1(not pred))``.
* Edge cases: no forged pixel left after erosion gives ``f1_best == 0``; at 0.5, labels and
  predictions that hold a single class give NaN; no scored pixel at all gives NaN.

Three deviations, where the official code is not defined or not exact: counts are int64
(the official float32 cumulative sums stop counting above 2**24 scored pixels); NaN on a
scored pixel raises ValueError (the official sort mishandles it silently; NaN in the ignored
band is harmless there and here); and a map with a scored value outside [-1/8, 9/8] (logits,
0..255) gets NaN fixed-threshold metrics and ``probability`` False (0.5 is no threshold there;
the official script only ever sees probabilities, and a probability map's overshoot after a
bicubic resize stays inside).

Extras, not in the official set: |MCC| (best and at 0.5, same edge-case rules as F1), IoU at
0.5 (forged class, max over inversion like F1, so ``iou = f1 / (2 - f1)``), and the pixel ROC
AUC over scored pixels (ties count half, not inverted, NaN with a single class).

Detection: ROC AUC (ties count half) and balanced accuracy with fake = ``score > 0.5`` on
float32 scores (NaN when a score lies outside [0, 1], as for maps). NaN and -inf scores are
dropped with their labels and counted; +inf raises.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

__all__ = [
    "AggregateMetrics",
    "DetectionMetrics",
    "ERODE_SIZE",
    "DILATE_SIZE",
    "FIXED_THRESHOLD",
    "LOCALIZATION_FIELDS",
    "LocalizationMetrics",
    "aggregate",
    "detection_metrics",
    "fake_at_fixed",
    "forged_at_fixed",
    "localization_metrics",
    "scored_regions",
]

ERODE_SIZE = 15
"""Side of the square minimum filter that selects the scored forged pixels."""
DILATE_SIZE = 11
"""Side of the square maximum filter whose complement is the scored pristine pixels."""
FIXED_THRESHOLD = 0.5
"""The fixed threshold: forged = map > 0.5, fake = score > 0.5."""


def forged_at_fixed(map: np.ndarray) -> np.ndarray:
    """Pixels called forged at the fixed threshold (``map > 0.5``, in the map's own dtype): the one
    rule the metrics and the casebook's reading ("flagged") share."""
    return np.asarray(map) > FIXED_THRESHOLD


def fake_at_fixed(scores: object, threshold: float = FIXED_THRESHOLD) -> np.ndarray:
    """Images called fake (``score > 0.5`` on float32 scores): the one rule of the detection
    metrics, the failure gallery and the casebook's reading (a score of exactly 0.5 is real). A
    missing or NaN score is neither: ValueError (``NaN > 0.5`` would quietly call it real)."""
    s = np.asarray(scores, dtype=np.float64)  # None reads as NaN
    if np.isnan(s).any():
        raise ValueError("a missing or NaN score is neither fake nor real: leave it out first")
    with np.errstate(over="ignore"):
        return s.astype(np.float32) > threshold


LOCALIZATION_FIELDS = ("f1_best", "f1_fixed", "mcc_best", "mcc_fixed", "iou_fixed", "auc")
"""The per-image float metrics that :func:`aggregate` averages."""


# --------------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalizationMetrics:
    """Localization metrics of one forged image (see the module docstring for definitions).

    ``best_threshold`` is the ``v`` of the best-F1 prediction ``map > v`` (float32), inverted
    when ``best_inverted``; NaN when nothing was scored. Counts are scored pixels.
    ``probability``: whether the scored values are probabilities (inside [0, 1] but for
    :data:`PROBABILITY_SLACK`); False: the fixed-threshold metrics are NaN, as 0.5 is no threshold there.
    """

    f1_best: float
    f1_fixed: float
    mcc_best: float
    mcc_fixed: float
    iou_fixed: float
    auc: float
    n_forged: int
    n_pristine: int
    best_threshold: float
    best_inverted: bool
    probability: bool = True

    def as_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DetectionMetrics:
    """Image-level detection metrics over real (label 0) and fake (label 1) images.

    ``tpr``/``tnr`` are the recalls at score > 0.5 of fakes/reals (NaN when that class is
    absent, or when a score lies outside [0, 1]); ``balanced_accuracy`` is their mean over the
    classes present. Counts are after
    dropping the ``n_dropped`` NaN/-inf scores.
    """

    auc: float
    balanced_accuracy: float
    tpr: float
    tnr: float
    n_fake: int
    n_real: int
    n_dropped: int

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AggregateMetrics:
    """Dataset averages of per-image localization metrics.

    NaN policy (as the official script): each metric is the mean over the images where it is
    not NaN; ``n_nan[name]`` says how many images were skipped; a metric NaN on every image
    averages to NaN.
    """

    n_images: int
    mean: dict[str, float]
    n_nan: dict[str, int]

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"n_images": self.n_images}
        for name in self.mean:
            out[name] = self.mean[name]
            out[f"{name}_n_nan"] = self.n_nan[name]
        return out


# --------------------------------------------------------------------------------------------
# localization
# --------------------------------------------------------------------------------------------


def _as_mask(mask: object) -> np.ndarray:
    """A 2-D boolean copy of a boolean or 0/1 mask; anything else is a ValueError."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    if m.dtype == bool:
        return m
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise ValueError(f"mask must be boolean or 0/1, got dtype {m.dtype}")
    bad = (m != 0) & (m != 1)
    if bad.any():
        found = np.unique(m[bad])[:5].tolist()
        raise ValueError(
            f"mask must be boolean or 0/1 (1 = forged), found values {found}; "
            "convert masks (e.g. 0/255, inverted) in the loader"
        )
    return m == 1


def binary_mask(mask: object, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A boolean mask (True = forged) from a boolean, 0/1 or 0/255 array, of ``shape`` (H, W)
    when given; a soft or noisy mask (whose grey pixels would all count as forged) is refused in
    one line. For the lab's entry points, which check masks before any analysis."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    if shape is not None and m.shape != tuple(shape):
        raise ValueError(f"mask shape {m.shape} differs from image size {tuple(shape)}")
    if m.dtype == bool:
        return m
    if m.dtype.kind not in "iuf":
        raise ValueError(f"mask must be boolean, 0/1 or 0/255, got dtype {m.dtype}")
    values = np.unique(m)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        raise ValueError(
            f"mask must be boolean, 0/1 or 0/255; it holds {values.size} values "
            f"({', '.join(f'{v:g}' for v in values[:4])}{', ...' if values.size > 4 else ''}): threshold it first"
        )
    return m > 0


def scored_regions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(forged_scored, pristine_scored)`` boolean arrays for a 0/1 mask (1 = forged).

    Forged = mask eroded by a 15x15 square, pristine = not (mask dilated by an 11x11 square),
    both with reflecting borders. The two are disjoint; pixels in neither are ignored.
    """
    m = _as_mask(mask).astype(np.uint8)
    forged = minimum_filter(m, size=ERODE_SIZE, mode="reflect").astype(bool)
    pristine = ~maximum_filter(m, size=DILATE_SIZE, mode="reflect").astype(bool)
    return forged, pristine


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float64, 0 where den == 0 (the official ``max(den, 1e-32)``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _f1(tp, fn, fp):
    return _ratio(2 * tp, 2 * tp + fn + fp)


def _abs_mcc(tp, tn, fp, fn):
    tp, tn, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, tn, fp, fn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _ratio(np.abs(tp * tn - fp * fn), den)


def _iou(tp, fn, fp):
    return _ratio(tp, tp + fn + fp)


def _sort_key(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint64 keys whose integer order is the float32 order of ``values``, label in bit 0.

    Sorting these keys sorts values and labels together in one ``np.sort`` (faster than
    ``argsort`` plus gathers). -0.0 is folded into +0.0 so that the two tie, as floats do.
    """
    bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32).astype(np.uint64)
    ordered = np.where(bits >= 0x80000000, bits ^ 0xFFFFFFFF, bits | 0x80000000)
    return (ordered << 1) | labels.astype(np.uint64)


def _key_value(keys: np.ndarray) -> np.ndarray:
    """float32 values back from :func:`_sort_key` keys."""
    ordered = keys >> 1
    bits = np.where(ordered >= 0x80000000, ordered & 0x7FFFFFFF, ordered ^ 0xFFFFFFFF)
    return bits.astype(np.uint32).view(np.float32)


def _sweep(values: np.ndarray, labels: np.ndarray):
    """Sort once and count at every distinct value ``v`` (prediction positive = value > v).

    Returns ``(thresholds, tp, fn, fp, tn)`` (int64 counts, one entry per distinct value,
    ascending) for float32 ``values`` and boolean ``labels`` (True = positive).
    """
    keys = np.sort(_sort_key(values, labels))
    ordered = keys >> 1
    y = (keys & 1).astype(bool)
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))  # last of each tie group
    fn = np.cumsum(y, dtype=np.int64)[ends]  # positives at or below v
    tn = (ends + 1) - fn  # negatives at or below v
    n_pos = fn[-1]
    n_neg = tn[-1]
    return _key_value(keys[ends]), n_pos - fn, fn, n_neg - tn, tn


def _auc_from_sweep(fn: np.ndarray, tn: np.ndarray) -> float:
    """ROC AUC (ties count half) from the cumulative per-group counts of :func:`_sweep`."""
    n_pos, n_neg = int(fn[-1]), int(tn[-1])
    if n_pos == 0 or n_neg == 0:
        return math.nan
    pos_g = np.diff(fn, prepend=0)
    neg_g = np.diff(tn, prepend=0)
    neg_below = tn - neg_g
    twice = int(np.sum(pos_g * (2 * neg_below + neg_g)))  # exact in int64
    return twice / (2 * n_pos * n_neg)


#: How far outside [0, 1] a map may lie and still be read as a probability at 0.5 (a bicubic
#: resize of a 0/1 edge overshoots by ~0.1); logits and 0..255 maps lie further out.
PROBABILITY_SLACK = 0.125


def localization_metrics(map: np.ndarray, mask: np.ndarray) -> LocalizationMetrics:
    """Official TruFor localization metrics of one forged image, plus |MCC|, IoU and AUC.

    ``map``: 2-D real array, higher = more likely forged. The best-threshold metrics and AUC
    take any range (logits, 0..255); the fixed-threshold ones (``f1_fixed``, ``mcc_fixed``,
    ``iou_fixed``: map > 0.5) need a probability and are NaN when a scored value lies outside
    [0, 1] by more than :data:`PROBABILITY_SLACK`. ``mask``: same shape, boolean or 0/1, 1 = forged.
    Raises ValueError on a non-binary mask, mismatched shapes or NaN on a scored pixel.

    >>> import numpy as np
    >>> truth = np.zeros((64, 64), bool)
    >>> truth[16:48, 16:48] = True
    >>> tl.localization_metrics(truth * 0.9, truth).f1_best    # a map that finds the region
    1.0
    >>> tl.localization_metrics(tl.analyze(model, image).map, mask)    # all the metrics of one image
    """
    m = np.asarray(map)
    gt = _as_mask(mask)
    if m.shape != gt.shape:
        raise ValueError(f"map shape {m.shape} differs from mask shape {gt.shape}")
    if m.dtype.kind not in "biuf":  # not numpy's integer test: it counts timedelta64 as an integer
        raise ValueError(f"map must be real-valued, got dtype {m.dtype}")

    forged, pristine = scored_regions(gt)
    scored = forged | pristine
    if np.issubdtype(m.dtype, np.floating) and np.isnan(m[scored]).any():
        raise ValueError("map holds NaN on scored pixels")
    y = forged[scored]
    n_forged = int(y.sum())
    n_pristine = int(y.size - n_forged)
    if y.size == 0:
        nan = math.nan
        return LocalizationMetrics(nan, nan, nan, nan, nan, nan, 0, 0, nan, False)

    # best threshold: float32 values, one threshold per distinct value
    with np.errstate(over="ignore"):
        values = m.astype(np.float32)[scored]
    thr, tp, fn, fp, tn = _sweep(values, y)
    f1 = _f1(tp, fn, fp)
    f1_inv = _f1(fn, tp, tn)  # swap predicted classes: TP<->FN, FP<->TN
    i, j = int(np.argmax(f1)), int(np.argmax(f1_inv))
    best_inverted = bool(f1_inv[j] > f1[i])
    k = j if best_inverted else i
    f1_best = float(max(f1[i], f1_inv[j]))
    mcc_best = float(np.max(_abs_mcc(tp, tn, fp, fn)))
    auc = _auc_from_sweep(fn, tn)

    # fixed threshold, in the map's own dtype
    own = m[scored]
    pred = forged_at_fixed(own)
    probability = bool(own.min() >= -PROBABILITY_SLACK and own.max() <= 1 + PROBABILITY_SLACK)
    if not probability:
        f1_fixed = mcc_fixed = iou_fixed = math.nan  # not a probability: 0.5 means nothing there
    elif (y.all() and pred.all()) or (not y.any() and not pred.any()):
        f1_fixed = mcc_fixed = iou_fixed = math.nan  # a single class: the official code fails
    else:
        tp0 = int(np.count_nonzero(pred & y))
        fp0 = int(np.count_nonzero(pred)) - tp0
        fn0 = n_forged - tp0
        tn0 = n_pristine - fp0
        f1_fixed = float(max(_f1(tp0, fn0, fp0), _f1(fn0, tp0, tn0)))
        mcc_fixed = float(_abs_mcc(tp0, tn0, fp0, fn0))
        iou_fixed = float(max(_iou(tp0, fn0, fp0), _iou(fn0, tp0, tn0)))

    return LocalizationMetrics(
        f1_best=f1_best,
        f1_fixed=f1_fixed,
        mcc_best=mcc_best,
        mcc_fixed=mcc_fixed,
        iou_fixed=iou_fixed,
        auc=auc,
        n_forged=n_forged,
        n_pristine=n_pristine,
        best_threshold=float(thr[k]),
        best_inverted=best_inverted,
        probability=probability,
    )


def aggregate(metrics: Sequence[LocalizationMetrics]) -> AggregateMetrics:
    """Average per-image localization metrics over a dataset: NaN-skipping mean, NaN counted."""
    items = list(metrics)
    for it in items:
        if not isinstance(it, LocalizationMetrics):
            raise TypeError(f"aggregate takes LocalizationMetrics, got {type(it).__name__}")
    mean: dict[str, float] = {}
    n_nan: dict[str, int] = {}
    for name in LOCALIZATION_FIELDS:
        vals = np.array([getattr(it, name) for it in items], dtype=np.float64)
        ok = ~np.isnan(vals)
        n_nan[name] = int(vals.size - ok.sum())
        mean[name] = float(vals[ok].mean()) if ok.any() else math.nan
    return AggregateMetrics(n_images=len(items), mean=mean, n_nan=n_nan)


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------


def _real_numbers(values: object, what: str) -> np.ndarray:
    """``values`` as float64 when every one is a real number or None (NaN): numpy would parse
    '0.9' (a column read as text) without a word, and drop the imaginary part of a complex one."""
    raw = np.asarray(values)
    if raw.dtype == object:
        # None is a missing value (NaN, as numpy reads it); text and anything else is not a number
        odd = [v for v in raw.ravel() if v is not None and (isinstance(v, str) or not isinstance(v, numbers.Real))][:1]
        if odd or raw.ndim == 0:
            shown = repr(odd[0] if odd else values)
            raise ValueError(f"{what} must be real numbers, found {shown[:40]}")
    elif raw.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be real numbers, got dtype {raw.dtype}")
    return raw.astype(np.float64)


def _as_labels(labels: object, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.dtype == object:  # 0/1 in a list of mixed Python objects, a pandas object column
        lab = _real_numbers(lab, "labels")
    if lab.ndim != 1 or lab.size != n:
        raise ValueError(f"labels must be 1-D with one label per score ({n}), got shape {lab.shape}")
    if lab.dtype == bool:
        return lab
    if lab.size and not (np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.floating)):
        raise ValueError(f"labels must be 0 (real) / 1 (fake), got dtype {lab.dtype}")
    bad = (lab != 0) & (lab != 1)
    if bad.any():
        raise ValueError(f"labels must be 0 (real) / 1 (fake), found {np.unique(lab[bad])[:5].tolist()}")
    return lab == 1


def detection_metrics(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> DetectionMetrics:
    """Detection AUC and balanced accuracy (fake = score > 0.5) of per-image scores.

    Scores are probabilities: with a score outside [0, 1] (logits such as ``Result.det_logit``)
    ``tpr``, ``tnr`` and ``balanced_accuracy`` are NaN (0.5 is no threshold there); the AUC
    takes any range. Scores are cast to float32. NaN and -inf scores are dropped with their labels (counted in
    ``n_dropped``); +inf raises ValueError. As in the official code, a finite score that
    overflows float32 upwards becomes the largest other score. AUC is NaN when only one class
    is left (the official code raises there).

    >>> m = tl.detection_metrics([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0])    # labels: 1 = manipulated
    >>> m.auc, m.balanced_accuracy
    (1.0, 1.0)
    """
    s = _real_numbers(scores, "scores")
    if sum(d != 1 for d in s.shape) > 1:  # (N, 1) is one score per image; (2, N) is not
        raise ValueError(f"scores must be one per image (1-D), got shape {s.shape}")
    s = s.ravel()
    y = _as_labels(labels, s.size)
    if np.isposinf(s).any():
        idx = np.flatnonzero(np.isposinf(s))[:5].tolist()
        raise ValueError(f"scores hold +inf (indices {idx}); +inf is not a valid score")
    keep = np.isfinite(s)
    n_dropped = int(s.size - keep.sum())
    with np.errstate(over="ignore"):
        s32 = s[keep].astype(np.float32)
    y = y[keep]
    if np.isneginf(s32).any():
        raise ValueError("a finite score overflows float32 towards -inf")
    over = np.isposinf(s32)
    if over.any():
        if over.all():
            raise ValueError("every score overflows float32")
        s32[over] = s32[~over].max()

    n_fake = int(y.sum())
    n_real = int(y.size - n_fake)
    if y.size:
        _, _, fn, _, tn = _sweep(s32, y)
        auc = _auc_from_sweep(fn, tn)
    else:
        auc = math.nan
    pred = fake_at_fixed(s32)
    tpr = float(np.count_nonzero(pred & y)) / n_fake if n_fake else math.nan
    tnr = float(np.count_nonzero(~pred & ~y)) / n_real if n_real else math.nan
    if s32.size and (s32.min() < 0 or s32.max() > 1):  # logits (det_logit): 0.5 is no threshold there
        tpr = tnr = math.nan
    present = [r for r in (tpr, tnr) if not math.isnan(r)]
    bacc = float(sum(present) / len(present)) if present else math.nan
    return DetectionMetrics(
        auc=auc, balanced_accuracy=bacc, tpr=tpr, tnr=tnr, n_fake=n_fake, n_real=n_real, n_dropped=n_dropped
    )
