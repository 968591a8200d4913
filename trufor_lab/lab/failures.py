"""Failure analysis of an :class:`~trufor_lab.lab.evaluate.Evaluation` (or the CSV it wrote).

>>> from trufor_lab.lab.failures import failure_gallery, group_failures, worst_cases
>>> from trufor_lab.widgets.gallery import FailureGallery
>>> worst_cases(ev, k=10)                # fakes with the lowest F1, reals with the highest score
>>> group_failures(ev)                   # failure rate per descriptor group vs the rest
>>> failure_gallery(ev, k=8)             # image, mask, map, confidence of each worst case
>>> FailureGallery(ev)                   # (trufor_lab.widgets.gallery) the same, one case at a time, with a selector

What counts as a failure (:func:`is_failure`): a real image with ``score > 0.5`` (false
alarm); a fake with ``score <= 0.5`` (missed), or with a mask and ``f1_best < 0.5`` (poorly
localized; an F1 that is NaN, nothing scored, does not count). A NaN score is unknown, as in
the evaluation's detection metrics: a real is then not judged, a fake by its F1 alone. Rows
with ``status != "ok"`` and rows not judged are left out everywhere.

Descriptor groups (:data:`GROUPS`; a row whose descriptor is unknown is in neither the group
nor the rest):

* ``small_region``: forged share of the mask < 1% (fakes with a mask only). Below about
  15x15 pixels nothing survives the official erosion, so F1 is 0 by construction.
* ``low_confidence``: mean confidence map value < 0.5 (TruFor itself flags its map as unreliable).
* ``heavy_compression``: JPEG file at an estimated IJG quality < 75 (TruFor's training
  augmentation goes down to about 60-70; below 75 traces are strongly damped). Files that are
  not JPEG count as not heavily compressed.
* ``resized``: height or width not a multiple of 8. Camera and encoder outputs are multiples
  of 8 (the JPEG block grid); other sizes point to resizing or cropping after capture, which
  shifts or resamples the grid Noiseprint++ relies on. A heuristic: it sees neither resizing to
  a multiple of 8 nor crops that keep the grid.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trufor_lab.common.paths import shorten, shown_text
from trufor_lab.common.table import Table
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.inference.stored import (
    ARRAYS_SHA256_KEY,
    COMPUTED_KEY,
    INPUT_SHA256_KEY,
    WEIGHTS_SHA256_KEY,
    arrays_digest,
)
from trufor_lab.inference.weights import sha256_of
from trufor_lab.lab.datasets import REGISTRY, DatasetError, MaskConvention, read_mask
from trufor_lab.lab.eval_rows import convention_from_record, not_scored
from trufor_lab.lab.eval_rows import nan as _num
from trufor_lab.lab.evaluate import Evaluation
from trufor_lab.lab.metrics import FIXED_THRESHOLD, fake_at_fixed
from trufor_lab.viz.figures import display_stride, for_display, map_cmap, plain_figure, show_image

__all__ = [
    "F1_THRESHOLD",
    "GROUPS",
    "SCORE_THRESHOLD",
    "Group",
    "failure_gallery",
    "as_evaluation",
    "group_failures",
    "is_failure",
    "pick_cases",
    "render_cases",
    "worst_cases",
]

F1_THRESHOLD = 0.5
"""A fake with a mask whose ``f1_best`` is below this is poorly localized."""
SCORE_THRESHOLD = FIXED_THRESHOLD
"""fake = score > 0.5 (the official detection threshold, :func:`~trufor_lab.lab.metrics.fake_at_fixed`)."""
SMALL_REGION = 0.01
LOW_CONFIDENCE = 0.5
HEAVY_COMPRESSION = 75
GRID = 8

EvaluationLike = Evaluation | str | os.PathLike


def as_evaluation(ev: EvaluationLike) -> Evaluation:
    if isinstance(ev, Evaluation):
        return ev
    if isinstance(ev, (str, os.PathLike)):
        return Evaluation.from_csv(ev)
    raise TypeError(f"expected an Evaluation or the path of its CSV, got {type(ev).__name__}")


def is_failure(
    row: Mapping[str, Any], *, f1_threshold: float = F1_THRESHOLD, score_threshold: float = SCORE_THRESHOLD
) -> bool | None:
    """Whether one evaluated image is a failure (see the module docstring); None (not judged) for
    error rows, a real with a NaN score and a fake with neither score nor F1. A NaN score was
    "missed" for a fake and "no alarm" for a real."""
    if row.get("status") != "ok":
        return None
    score, f1 = _num(row.get("score")), _num(row.get("f1_best"))
    if row.get("label") == 0:
        return None if math.isnan(score) else bool(fake_at_fixed(score, score_threshold))
    missed = None if math.isnan(score) else not fake_at_fixed(score, score_threshold)
    poor = None if math.isnan(f1) else f1 < f1_threshold
    if missed is None and poor is None:
        return None
    return bool(missed or poor)


# --------------------------------------------------------------------------------------------
# worst cases
# --------------------------------------------------------------------------------------------


def worst_cases(evaluation: EvaluationLike, k: int = 10, *, which: str = "both", failures_only: bool = False) -> Table:
    """The ``k`` fakes with the lowest ``f1_best`` (ties: lower score first) and/or the ``k``
    reals with the highest score, worst first (``which``: ``"fakes"``, ``"reals"``, ``"both"``).

    ``failures_only``: only rows :func:`is_failure` calls failures, missed fakes whose F1 was not
    measured included: without a mask, ranked as F1 0 (by score); with a mask or map that could
    not be used (a data problem, not the model's), after every measured F1. Rows are the
    evaluation's rows with ``case`` (``"fake"``/``"real"``) and ``reason`` (saying which) in front.
    """
    if which not in ("fakes", "reals", "both"):
        raise ValueError(f"which must be 'fakes', 'reals' or 'both', got {which!r}")
    if k < 0:
        raise ValueError("k must be >= 0")
    ev = as_evaluation(evaluation)
    ok = ev.ok_rows()
    out: list[dict[str, Any]] = []
    if failures_only:
        ok = [r for r in ok if is_failure(r)]
    if which in ("fakes", "both"):
        fakes = [r for r in ok if r.get("label") == 1 and (failures_only or not math.isnan(_num(r.get("f1_best"))))]
        fakes.sort(key=_fake_rank)
        out += [{"case": "fake", "reason": _fake_reason(r), **r} for r in fakes[:k]]
    if which in ("reals", "both"):
        reals = [r for r in ok if r.get("label") == 0 and not math.isnan(_num(r.get("score")))]
        reals.sort(key=lambda r: -_num(r["score"]))
        out += [{"case": "real", "reason": f"score {_num(r['score']):.3f}", **r} for r in reals[:k]]
    return Table(out, title=f"worst cases (k={k})")


def _unusable(r: Mapping[str, Any]) -> str | None:
    """Why a fake with a mask (or a map) has no F1: its data, not the model (``None``: measured,
    or no mask at all)."""
    if not math.isnan(_num(r.get("f1_best"))):
        return None
    tags = not_scored(r)
    if "map" in tags:
        return "map not finite"
    return "mask unusable" if "mask" in tags or r.get("mask_path") else None


def _fake_rank(r: Mapping[str, Any]) -> tuple[bool, float, float]:
    """Worst first: measured F1 (no mask: 0) then score; unusable masks and maps last."""
    f1 = _num(r.get("f1_best"))
    return _unusable(r) is not None, 0.0 if math.isnan(f1) else f1, _num(r.get("score"))


def _fake_reason(r: Mapping[str, Any]) -> str:
    f1, why = _num(r.get("f1_best")), _unusable(r)
    where = f"F1 {f1:.3f}" if not math.isnan(f1) else f"F1 not measured ({why})" if why else "no mask"
    return f"{where}, score {_num(r.get('score')):.3f}"


# --------------------------------------------------------------------------------------------
# groups
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A descriptor group: ``test(row)`` is True (in), False (rest) or None (unknown)."""

    name: str
    description: str
    test: Callable[[Mapping[str, Any]], bool | None]


def _small_region(r: Mapping[str, Any]) -> bool | None:
    f = _num(r.get("mask_fraction"))
    return None if math.isnan(f) else f < SMALL_REGION


def _low_confidence(r: Mapping[str, Any]) -> bool | None:
    c = _num(r.get("mean_conf"))
    return None if math.isnan(c) else c < LOW_CONFIDENCE


def _heavy_compression(r: Mapping[str, Any]) -> bool | None:
    q = _num(r.get("jpeg_quality"))  # None or NaN (e.g. after a table round trip): not a JPEG
    return False if math.isnan(q) else q < HEAVY_COMPRESSION


def _resized(r: Mapping[str, Any]) -> bool | None:
    h, w = _num(r.get("height")), _num(r.get("width"))
    if math.isnan(h) or math.isnan(w):
        return None
    return int(h) % GRID != 0 or int(w) % GRID != 0


def _membership(v: Any) -> bool | None:
    """A group test's answer: None (unknown), else its truth (numpy booleans included)."""
    return None if v is None else bool(v)


GROUPS: dict[str, Group] = {
    g.name: g
    for g in (
        Group("small_region", f"mask fraction < {SMALL_REGION:.0%} (fakes with a mask)", _small_region),
        Group("low_confidence", f"mean confidence < {LOW_CONFIDENCE}", _low_confidence),
        Group("heavy_compression", f"JPEG quality < {HEAVY_COMPRESSION} (non-JPEG: no)", _heavy_compression),
        Group("resized", f"height or width not a multiple of {GRID}", _resized),
    )
}
"""The built-in descriptor groups (see the module docstring for the thresholds' rationale)."""


def _rate(n: int, d: int) -> float:
    return n / d if d else math.nan


def group_failures(
    evaluation: EvaluationLike,
    by: Sequence[str | Group] = ("small_region", "low_confidence", "heavy_compression", "resized"),
    *,
    f1_threshold: float = F1_THRESHOLD,
    score_threshold: float = SCORE_THRESHOLD,
) -> Table:
    """Failure rate inside each group vs the rest (rows with a known descriptor).

    Columns: ``group``, ``description``, ``n_group``, ``n_rest``, ``n_unknown``,
    ``failures_group``, ``failures_rest``, ``failure_rate_group``, ``failure_rate_rest`` and
    ``rate_ratio`` (group / rest; NaN when undefined). ``by`` takes names of :data:`GROUPS`
    or :class:`Group` objects. Rows :func:`is_failure` does not judge are left out.
    """
    ev = as_evaluation(evaluation)
    groups: list[Group] = []
    for g in by:
        if isinstance(g, Group):
            groups.append(g)
        elif g in GROUPS:
            groups.append(GROUPS[g])
        else:
            raise KeyError(f"unknown failure group {g!r}; one of {sorted(GROUPS)} or a Group")
    verdicts = [(r, is_failure(r, f1_threshold=f1_threshold, score_threshold=score_threshold)) for r in ev.ok_rows()]
    judged = [(r, f) for r, f in verdicts if f is not None]
    out = []
    for g in groups:
        member = [(_membership(g.test(r)), f) for r, f in judged]
        inside = [f for m, f in member if m is True]
        rest = [f for m, f in member if m is False]
        fi, fr = sum(inside), sum(rest)
        ri, rr = _rate(fi, len(inside)), _rate(fr, len(rest))
        ratio = ri / rr if (not math.isnan(ri) and not math.isnan(rr) and rr > 0) else math.nan
        out.append(
            {
                "group": g.name,
                "description": g.description,
                "n_group": len(inside),
                "n_rest": len(rest),
                "n_unknown": len(judged) - len(inside) - len(rest),
                "failures_group": fi,
                "failures_rest": fr,
                "failure_rate_group": ri,
                "failure_rate_rest": rr,
                "rate_ratio": ratio,
            }
        )
    return Table(out, title="failure rate by group")


# --------------------------------------------------------------------------------------------
# gallery
# --------------------------------------------------------------------------------------------


def pick_cases(ev: Evaluation, k: int) -> list[dict[str, Any]]:
    """Up to ``k`` failures (:func:`is_failure`), worst first: half fakes, half reals, the
    other kind filling a shortfall."""
    fakes = list(worst_cases(ev, k, which="fakes", failures_only=True))
    reals = list(worst_cases(ev, k, which="reals", failures_only=True))
    n_f = min(len(fakes), max(k - min(len(reals), k // 2), 0))
    return fakes[:n_f] + reals[: k - n_f]


def _convention(ev: Evaluation, row: Mapping[str, Any], override: MaskConvention | None) -> MaskConvention:
    """``override``, else the convention the row records it was scored with (DatasetError when
    that record is unreadable), else (rows of older CSVs) the evaluated dataset's, the
    registered benchmark's, white = forged."""
    if override is not None:
        return override
    if row.get("mask_convention"):
        return convention_from_record(str(row["mask_convention"]))
    name = str(row.get("dataset"))
    if name in ev.datasets:
        return ev.datasets[name].convention
    return REGISTRY.get(name).convention if name in REGISTRY else MaskConvention()


def _records(d: Any) -> dict[str, str]:
    return {k: str(d[k]) for k in (INPUT_SHA256_KEY, WEIGHTS_SHA256_KEY, COMPUTED_KEY) if k in d.files}


def _replaced(rec: Mapping[str, str], row: Mapping[str, Any]) -> str | None:
    """Why the saved output is not the one the row scored (its records against the row's, as
    :func:`~trufor_lab.inference.stored.reuse_problem` compares them), or None. Its arrays are
    not judged: a NaN map is drawn as scored."""
    computed, weights = row.get("computed"), row.get("weights_sha256")
    if (computed and rec.get(COMPUTED_KEY) != computed) or (weights and rec.get(WEIGHTS_SHA256_KEY) != weights):
        return "output replaced since scoring"
    image = Path(str(row.get("image_path") or ""))
    if INPUT_SHA256_KEY in rec and image.is_file() and sha256_of(image) != rec[INPUT_SHA256_KEY]:
        return "output of another image file"
    return None


def _load_case(ev: Evaluation, row: Mapping[str, Any], convention: MaskConvention | None) -> dict[str, Any]:
    """image, mask, map, conf of one row (None where a file is missing or unreadable, with the
    reason under ``why`` when it is not plain 'missing')."""
    out: dict[str, Any] = {"image": None, "mask": None, "map": None, "conf": None, "why": {}}
    try:
        out["image"] = load_image(str(row["image_path"])).rgb
    except (ImageError, OSError):  # unreadable or gone: shown as a 'missing' panel
        pass
    if row.get("mask_path"):
        try:
            how = _convention(ev, row, convention)
        except DatasetError:  # a damaged record: never a guessed convention
            how, out["why"]["mask"] = None, "mask convention unreadable"
        try:
            out["mask"] = None if how is None else read_mask(row["mask_path"], how)
        except (DatasetError, OSError, ValueError):  # unreadable mask: shown as a 'missing' panel
            pass
    npz = row.get("npz")
    if npz and Path(npz).is_file():
        try:
            with np.load(npz, allow_pickle=False) as d:
                why = _replaced(_records(d), row)
                if why is None and ARRAYS_SHA256_KEY in d.files and str(d[ARRAYS_SHA256_KEY]) != arrays_digest(d):
                    why = "output changed since it was written"  # edited in place, its records kept
                if why is None:
                    for key in ("map", "conf"):
                        out[key] = np.asarray(d[key]) if key in d.files else None
                else:  # another setting or model wrote this file since: not what the row scored
                    out["why"].update(map=why, conf=why)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # damaged npz: a 'missing' panel
            pass
    _drop_off_grid(out)
    return out


def _drop_off_grid(case: dict[str, Any]) -> None:
    """Map, confidence and mask that are not 2-D numeric arrays on the image's grid (the map's when
    the image is missing) are not drawn: their panel says why (one such npz, e.g. a map of shape
    (32,), made the whole gallery fail)."""
    image = case["image"]
    grid = None if image is None else tuple(np.shape(image)[:2])
    for key in ("map", "conf", "mask"):
        a = case[key]
        if a is None:
            continue
        if a.ndim != 2 or a.dtype.kind not in "biuf":
            case[key], case["why"][key] = None, f"shape {a.shape}, {a.dtype}:\nnot a 2-D {key}"
        elif grid is not None and a.shape != grid:
            case[key], case["why"][key] = None, f"{a.shape}, the image\n{grid}: another grid"
        elif grid is None:
            grid = a.shape


def _title(row: Mapping[str, Any]) -> str:
    label = {0: "real", 1: "fake"}.get(row.get("label"), "?")
    bits = [shorten(shown_text(str(row.get("id")))), label, f"score {_num(row.get('score')):.3f}"]
    f1 = _num(row.get("f1_best"))
    if not math.isnan(f1):
        bits.append(f"F1 {f1:.3f}")
    return "  |  ".join(bits)


_PANELS = ("Image", "Mask", "Localization map", "Confidence")


def _draw_case(axes: Sequence[Any], row: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    specs = [
        ("image", {}),
        ("mask", dict(cmap="gray", vmin=0, vmax=1)),
        ("map", dict(cmap=map_cmap("RdBu_r"), vmin=0, vmax=1)),  # NaN pixels visible, not transparent
        ("conf", dict(cmap=map_cmap("gray"), vmin=0, vmax=1)),
    ]
    for ax, (key, kw), name in zip(axes, specs, _PANELS):
        a = data.get(key)
        if a is None:
            text = (
                "no mask (real)"
                if key == "mask" and row.get("label") == 0
                else ("no mask" if key == "mask" and not row.get("mask_path") else "missing")
            )
            text = data.get("why", {}).get(key, text).replace(" since", "\nsince")
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_facecolor("0.92")
        else:
            step = display_stride(np.shape(a))  # a large picture averaged down: display only
            if key == "image":
                show_image(ax, for_display(a, step))
            else:  # block means: strided, a map hot on every second pixel was drawn all cold
                ax.imshow(for_display(a.astype(float) if key == "mask" else a, step), **kw)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8, parse_math=False)
    axes[0].set_ylabel(
        _title(row).replace("  |  ", "\n"), fontsize=7, rotation=0, ha="right", va="center", parse_math=False
    )


def render_cases(
    ev: Evaluation,
    cases: Sequence[Mapping[str, Any]],
    convention: MaskConvention | None,
    panel_size: float,
    fig: Any = None,
) -> Any:
    if fig is None:
        fig = plain_figure(figsize=(panel_size * 4 + 1.6, panel_size * max(len(cases), 1) + 0.4))
    if not cases:
        fig.text(0.5, 0.5, "no failure case", ha="center", va="center")
        return fig
    axes = fig.subplots(len(cases), 4, squeeze=False)
    for row_axes, row in zip(axes, cases):
        _draw_case(row_axes, row, _load_case(ev, row, convention))
    fig.subplots_adjust(left=0.22 if panel_size < 2 else 0.17, wspace=0.05, hspace=0.25)
    return fig


def failure_gallery(
    evaluation: EvaluationLike,
    k: int = 8,
    *,
    cases: Sequence[Mapping[str, Any]] | None = None,
    convention: MaskConvention | None = None,
    panel_size: float = 2.0,
    fig: Any = None,
) -> Any:
    """A Figure with one row per failure case: image, mask, localization map, confidence.

    Cases default to the worst ``k`` failures (:func:`worst_cases` with ``failures_only``, half
    fakes, half reals; a figure saying so when there is none); pass
    ``cases`` (rows, e.g. from :func:`worst_cases`) to choose. Images and npz outputs are
    re-read from disk; masks use ``convention``, else the one each row records it was scored
    with, else (older CSVs) the evaluated dataset's, the registered benchmark's, white = forged.
    An output whose records (setting, weights, image) no longer match the row's is not drawn:
    its panels say "output replaced since scoring". No pyplot: returns a matplotlib Figure.
    """
    ev = as_evaluation(evaluation)
    chosen = list(cases) if cases is not None else pick_cases(ev, k)
    return render_cases(ev, chosen, convention, panel_size, fig)
