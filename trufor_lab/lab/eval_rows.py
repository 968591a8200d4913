"""The rows of an evaluation and what is computed from them alone: the per-image columns, the
per-dataset summary and its one-line form, which rows failed, and the record of how masks were
read (so that a reader of the CSV, e.g. the failure gallery, reads them as they were scored).

Everything here is a function of the rows, so an :class:`~trufor_lab.lab.evaluate.Evaluation`
read back from its CSV says the same as the one that wrote it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trufor_lab.common.table import fmt
from trufor_lab.lab.datasets import ColourRule, DatasetError, MaskConvention
from trufor_lab.lab.metrics import (
    LOCALIZATION_FIELDS,
    PROBABILITY_SLACK,
    LocalizationMetrics,
    aggregate,
    detection_metrics,
)

FLOAT = "float"
INT = "int"
BOOL = "bool"
STR = "str"

#: Per-image columns and their types (for CSV round trips), in table order.
ROW_COLUMNS: dict[str, str] = {
    "dataset": STR,
    "id": STR,
    "image_path": STR,
    "mask_path": STR,
    "npz": STR,
    "label": INT,
    "status": STR,
    "error": STR,
    "not_scored": STR,
    "note": STR,  # what a reader must know about a row scored in full (a mask that may be misaligned)
    "reused": BOOL,
    "score": FLOAT,
    "f1_best": FLOAT,
    "f1_fixed": FLOAT,
    "mcc_best": FLOAT,
    "mcc_fixed": FLOAT,
    "iou_fixed": FLOAT,
    "pixel_auc": FLOAT,
    "n_forged": INT,
    "n_pristine": INT,
    "best_threshold": FLOAT,
    "best_inverted": BOOL,
    "map_probability": BOOL,  # False: the scored map values lie outside 0..1, so no metric at 0.5
    "mask_fraction": FLOAT,
    "height": INT,
    "width": INT,
    "megapixels": FLOAT,
    "jpeg_quality": INT,
    "mean_conf": FLOAT,
    "mean_conf_in_mask": FLOAT,
    "weights_sha256": STR,
    "computed": STR,
    "mask_convention": STR,
}

#: Row names of the localization metrics (``LocalizationMetrics`` field -> row column).
LOC_COLUMNS = {name: ("pixel_auc" if name == "auc" else name) for name in LOCALIZATION_FIELDS}

#: ``not_scored`` tags of a row that is ``ok`` but scored in part (comma-separated in the row).
NOT_SCORED = {
    "score": "score not finite: left out of detection",
    "mask": "mask unusable: no localization",
    "map": "map holds NaN on scored pixels: no localization",
}


def parse(value: str, kind: str) -> Any:
    if kind == STR:
        return value or None
    if value == "":
        return math.nan if kind == FLOAT else None
    if kind == FLOAT:
        return float(value)
    if kind == INT:
        return int(float(value))
    return value.strip().lower() == "true"


def nan(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------------------------
# the mask convention, recorded in each row
# --------------------------------------------------------------------------------------------


def convention_record(convention: MaskConvention) -> str:
    """``convention`` as one line of JSON (every field, the colour rule included)."""
    return json.dumps(dataclasses.asdict(convention), sort_keys=True, separators=(",", ":"))


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def convention_from_record(text: str) -> MaskConvention:
    """The :class:`MaskConvention` that :func:`convention_record` wrote; DatasetError (one line)
    when the text is not such a record."""
    try:
        d = json.loads(text)
        colour = d.pop("colour", None)
        if colour is not None:
            colour = ColourRule(**{k: _tuples(v) for k, v in colour.items()})
        return MaskConvention(**{k: _tuples(v) for k, v in d.items()}, colour=colour)
    except (ValueError, TypeError, AttributeError) as e:
        raise DatasetError(f"recorded mask convention {text[:80]!r} is unreadable ({e})") from None


# --------------------------------------------------------------------------------------------
# failed rows
# --------------------------------------------------------------------------------------------


def not_scored(r: Mapping[str, Any]) -> set[str]:
    """The :data:`NOT_SCORED` tags of a row (a row of an older CSV with an error but no tag:
    its mask was unusable, the only partial failure then)."""
    tags = {t for t in str(r.get("not_scored") or "").split(",") if t}
    if not tags and r.get("status") == "ok" and r.get("error"):
        tags = {"mask"}
    return tags


def is_failed(r: Mapping[str, Any]) -> bool:
    """Failed: not evaluated (``status != "ok"``), or evaluated with a part not scored (an
    ``error`` on an ok row: NaN score, unusable mask, NaN map). The one definition used by
    ``Evaluation.failed``, the summary's ``n_failed`` and its line."""
    return r.get("status") != "ok" or bool(r.get("error"))


def failed_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per failed row (:func:`is_failed`), naming the file."""
    return [str(r.get("error") or f"{r.get('image_path')}: failed") for r in rows if is_failed(r)]


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------


def _loc_from_row(r: Mapping[str, Any]) -> LocalizationMetrics:
    return LocalizationMetrics(
        **{f: nan(r.get(col)) for f, col in LOC_COLUMNS.items()},
        n_forged=int(r.get("n_forged") or 0),
        n_pristine=int(r.get("n_pristine") or 0),
        best_threshold=nan(r.get("best_threshold")),
        best_inverted=bool(r.get("best_inverted")),
    )


def one_value(values: Iterable[Any]) -> str | None:
    """The value every row shares; ``"mixed: a, b"`` when rows differ (so that a summary never
    claims one model for numbers that several made); ``None`` when no row says."""
    seen = sorted({str(v) for v in values if v not in (None, "")})
    if len(seen) > 1:
        return "mixed: " + ", ".join(seen)
    return seen[0] if seen else None


def weights_short(value: Any) -> str:
    """A summary's ``weights_sha256`` in a few characters: a sha256 (or values digest) by its first
    12, ``"mixed (N)"`` when rows of N weights were summarised, ``"not recorded"`` when none says."""
    if value is None:
        return "not recorded"
    if str(value).startswith("mixed: "):
        return f"mixed ({len(str(value).split(', '))})"
    return str(value)[:19] if str(value).startswith("values:") else str(value)[:12]


def mask_note(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """A warning when most usable masks of the rows are more than half forged or have no forged
    pixel (the signs of a mask convention read inverted); None otherwise."""
    fracs = [nan(r.get("mask_fraction")) for r in rows if r.get("status") == "ok" and r.get("label") == 1]
    fracs = [f for f in fracs if not math.isnan(f)]
    big, empty = sum(f > 0.5 for f in fracs), sum(f == 0 for f in fracs)
    if not fracs or 2 * (big + empty) <= len(fracs):
        return None
    how = one_value(r.get("mask_convention") for r in rows) or "not recorded"
    return (
        f"masks look inverted? {big} of {len(fracs)} usable mask(s) are more than half forged and {empty} have "
        f"no forged pixel (read as {how}); check the mask convention (invert: black = forged)"
    )


def _one_class(r: Mapping[str, Any]) -> bool:
    forged, pristine = int(r.get("n_forged") or 0), int(r.get("n_pristine") or 0)
    return forged + pristine > 0 and (forged == 0 or pristine == 0)


def _unscored(r: Mapping[str, Any]) -> bool:
    """A mask that leaves no pixel to score (its dilation covers the picture and its erosion
    leaves nothing, a mask of scattered dots): every metric NaN, the official script's too."""
    return int(r.get("n_forged") or 0) + int(r.get("n_pristine") or 0) == 0


def _not_probability(r: Mapping[str, Any]) -> bool:
    """A map whose scored values lie outside 0..1: its metrics at 0.5 are NaN. A row of a CSV
    written before ``map_probability`` was recorded: its fixed F1 is NaN with both classes scored,
    which nothing else gives; or with one class and a best threshold (a value of the map on a
    scored pixel) outside the probability range (a one-class mask's map agreeing with it at 0.5
    holds probabilities, so its best threshold lies inside: the reason was misread as that)."""
    if r.get("map_probability") is not None:
        return r["map_probability"] is False
    if _unscored(r) or not math.isnan(nan(r.get("f1_fixed"))) or math.isnan(nan(r.get("f1_best"))):
        return False
    if not _one_class(r):
        return True
    v = nan(r.get("best_threshold"))  # NaN (not recorded): no sign either way
    return v < -PROBABILITY_SLACK or v > 1 + PROBABILITY_SLACK


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    scored = [r for r in ok if r.get("label") in (0, 1)]
    finite = [s if math.isfinite(s) else math.nan for s in (nan(r.get("score")) for r in scored)]
    det = detection_metrics(finite, [int(r["label"]) for r in scored])
    loc_rows = [r for r in ok if r.get("label") == 1 and r.get("n_forged") is not None]
    agg = aggregate([_loc_from_row(r) for r in loc_rows])
    fakes = [r for r in ok if r.get("label") == 1]
    out: dict[str, Any] = {
        "n_images": len(rows),
        "n_ok": len(ok),
        "n_failed": sum(1 for r in rows if is_failed(r)),
        "n_scored_in_part": sum(1 for r in ok if r.get("error")),
        "n_fake": det.n_fake,
        "n_real": det.n_real,
        "n_localized": agg.n_images,
        # fakes scored for detection whose mask could not be used (missing, other size, unreadable)
        "n_mask_unusable": sum(1 for r in fakes if "mask" in not_scored(r)),
        # fakes whose map holds NaN on scored pixels (the output's fault, not the mask's)
        "n_map_unusable": sum(1 for r in fakes if "map" in not_scored(r)),
        # scored masks left with one class (no forged pixel after the erosion, or no pristine one):
        # their official best-threshold F1 is trivial (0, or 1 whatever the map); the F1 at 0.5 of an
        # all-forged one is not (the better of map > 0.5 and its inverse)
        "n_mask_one_class": sum(1 for r in loc_rows if _one_class(r)),
        # ... of which the official F1 at 0.5 is NaN too: the map at 0.5 holds that one class as well
        "n_mask_one_class_no_fixed": sum(
            1 for r in loc_rows if _one_class(r) and math.isnan(nan(r.get("f1_fixed"))) and not _not_probability(r)
        ),
        # masks that leave no pixel to score (every metric NaN), maps whose values are no probabilities
        # (no metric at 0.5): with the two above, every NaN the localization means skip has its reason
        "n_mask_unscored": sum(1 for r in loc_rows if _unscored(r)),
        "n_map_not_probability": sum(1 for r in loc_rows if _not_probability(r)),
        "detection_auc": det.auc,
        # one class present: no *balanced* accuracy (tpr or tnr holds its one rate), as the line says
        "balanced_accuracy": det.balanced_accuracy if det.n_fake and det.n_real else math.nan,
        "tpr": det.tpr,
        "tnr": det.tnr,
        "n_score_dropped": det.n_dropped,
        "weights_sha256": one_value(r.get("weights_sha256") for r in ok),
        "computed": one_value(r.get("computed") for r in ok),
        "mask_convention": one_value(r.get("mask_convention") for r in rows),
        "mask_note": mask_note(rows),
    }
    for f, col in LOC_COLUMNS.items():
        out[col] = agg.mean[f]
    for f, col in LOC_COLUMNS.items():
        out[f"{col}_n_nan"] = agg.n_nan[f]
    return out


def _mean_of(s: Mapping[str, Any], col: str) -> str:
    """A mean and, when some images were NaN (skipped, as the official nanmean), over how many."""
    n, skipped = s["n_localized"], s.get(f"{col}_n_nan") or 0
    return fmt(s[col]) + (f" ({n - skipped} of {n})" if skipped else "")


def summary_line(name: str, s: Mapping[str, Any]) -> str:
    """One dataset's summary (:func:`summarize`) as one line."""
    if s["n_localized"]:
        loc = f"F1 best {_mean_of(s, 'f1_best')}, fixed {_mean_of(s, 'f1_fixed')} over {s['n_localized']} mask(s)"
    else:
        loc = "no masks"
    if s.get("n_mask_unusable"):
        loc += f" ({s['n_mask_unusable']} fake(s) without a usable mask)"
    if s.get("n_mask_one_class"):
        loc += (
            f" ({s['n_mask_one_class']} mask(s) with no forged pixel after the official erosion, or no "
            "pristine one: their best-threshold F1 is 0 or 1 whatever the map"
        )
        if s.get("n_mask_one_class_no_fixed"):
            loc += f"; {s['n_mask_one_class_no_fixed']} of them no F1 at 0.5: the map there holds that one class too"
        loc += ")"
    if s.get("n_mask_unscored"):
        loc += (
            f" ({s['n_mask_unscored']} mask(s) leaving no pixel to score after the official erosion and dilation: "
            "no metric for them)"
        )
    if s.get("n_map_not_probability"):
        loc += f" ({s['n_map_not_probability']} map(s) with values outside 0..1: no metric at 0.5 for them)"
    if s.get("n_map_unusable"):
        loc += f" ({s['n_map_unusable']} fake(s) whose map holds NaN on scored pixels)"
    if s["n_fake"] and s["n_real"]:
        det = f"detection AUC {fmt(s['detection_auc'])}, bACC {fmt(s['balanced_accuracy'])}"
        if math.isnan(nan(s["balanced_accuracy"])):  # both classes scored: only a score outside 0..1 does that
            det += " (scores outside 0..1: 0.5 is no threshold there)"
    elif s["n_fake"] or s["n_real"]:  # one class: no AUC, and a 'balanced' accuracy of one class misleads
        only, rate = ("fake", f"TPR {fmt(s['tpr'])}") if s["n_fake"] else ("real", f"TNR {fmt(s['tnr'])}")
        det = f"only {only} images: {rate} at 0.5 (AUC and bACC need both classes)"
    else:
        det = "no scores"
    dropped = f", {s['n_score_dropped']} score(s) dropped (not finite)" if s.get("n_score_dropped") else ""
    failed = f"{s['n_failed']} failed"
    if s.get("n_scored_in_part"):
        failed += f" ({s['n_scored_in_part']} of them scored in part)"
    note = f"; {s['mask_note']}" if s.get("mask_note") else ""
    if str(s.get("weights_sha256") or "").startswith("mixed: "):  # numbers of several models, said
        note += f"; rows of different weights pooled ({weights_short(s['weights_sha256'])}): not one model's numbers"
    return (
        f"{name}: {s['n_ok']} image(s) ({s['n_fake']} fake, {s['n_real']} real{dropped}), {det}; {loc}; {failed}{note}"
    )
