"""Evaluate TruFor on a benchmark: resumable, per-image table, per-dataset summary.

>>> ds = load_dataset("CASIA1", root="/data/CASIA1", list_dir="lists/")
>>> ev = evaluate(model, ds, "runs/casia")      # writes runs/casia/CASIA1/<image>.npz
>>> ev.summary["CASIA1"]["detection_auc"], ev.summary["CASIA1"]["f1_best"]
>>> ev.to_csv("runs/casia/CASIA1.per_image.csv")

Outputs are the official npz format (``map``, ``conf``, ``score``, ``imgsize``) under
``out_dir/<dataset name>/<image path relative to the dataset root>.npz``. A later run reads
valid npz files back instead of recomputing them (``overwrite=True`` recomputes) when they
record the sha256 of the same image file and the same weights; an npz made from another input
or other weights, or that cannot be read, lacks a key or does not match the image size, is
recomputed. A failure on one
image (unreadable image or mask, too small, out of memory) is recorded as one line naming
the file, and the run goes on.

Per-image rows (:data:`ROW_COLUMNS`): identity, ``status`` (``"ok"``/``"error"``), the
integrity ``score``; for fakes with a mask the localization metrics of
:func:`~trufor_lab.lab.metrics.localization_metrics` (the pixel ROC AUC is named ``pixel_auc``);
descriptors: ``mask_fraction`` (forged share of the mask, NaN without a mask), ``height``,
``width``, ``megapixels``, ``jpeg_quality`` (nearest IJG quality, ``None`` for non-JPEG),
``mean_conf`` and ``mean_conf_in_mask`` (mean confidence, overall and on forged pixels); what
made the numbers: ``weights_sha256`` and ``computed`` (e.g. ``"exact float32"``), which the
summary repeats (one value, or ``"mixed: ..."`` when rows differ).

``trufor-lab eval`` (:mod:`trufor_lab.cli.eval`) does the same from a shell.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from trufor_lab.common.callables import callable_label
from trufor_lab.common.files import atomic_write_text, csv_uncell
from trufor_lab.common.image_files import open_image, stored_size
from trufor_lab.common.paths import OutputPathError, safe_part
from trufor_lab.common.paths import output_path as common_output_path
from trufor_lab.common.table import Table, fmt
from trufor_lab.forensics.jpeg import estimate_quality
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.load import is_full_model
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.inference.result import computed_label, reuse_problem
from trufor_lab.inference.weights import sha256_of
from trufor_lab.lab.datasets import Dataset, DatasetError, Sample
from trufor_lab.lab.metrics import (
    LOCALIZATION_FIELDS,
    LocalizationMetrics,
    aggregate,
    detection_metrics,
    localization_metrics,
)

__all__ = ["Evaluation", "ROW_COLUMNS", "evaluate", "output_path"]

AnalyzeFn = Callable[[nn.Module, Any], Result]

_FLOAT = "float"
_INT = "int"
_BOOL = "bool"
_STR = "str"

#: Per-image columns and their types (for CSV round trips), in table order.
ROW_COLUMNS: dict[str, str] = {
    "dataset": _STR,
    "id": _STR,
    "image_path": _STR,
    "mask_path": _STR,
    "npz": _STR,
    "label": _INT,
    "status": _STR,
    "error": _STR,
    "reused": _BOOL,
    "score": _FLOAT,
    "f1_best": _FLOAT,
    "f1_fixed": _FLOAT,
    "mcc_best": _FLOAT,
    "mcc_fixed": _FLOAT,
    "iou_fixed": _FLOAT,
    "pixel_auc": _FLOAT,
    "n_forged": _INT,
    "n_pristine": _INT,
    "best_threshold": _FLOAT,
    "best_inverted": _BOOL,
    "mask_fraction": _FLOAT,
    "height": _INT,
    "width": _INT,
    "megapixels": _FLOAT,
    "jpeg_quality": _INT,
    "mean_conf": _FLOAT,
    "mean_conf_in_mask": _FLOAT,
    "weights_sha256": _STR,
    "computed": _STR,
}

#: Row names of the localization metrics (``LocalizationMetrics`` field -> row column).
_LOC_COLUMNS = {name: ("pixel_auc" if name == "auc" else name) for name in LOCALIZATION_FIELDS}


def _parse(value: str, kind: str) -> Any:
    if kind == _STR:
        return value or None
    if value == "":
        return math.nan if kind == _FLOAT else None
    if kind == _FLOAT:
        return float(value)
    if kind == _INT:
        return int(float(value))
    return value.strip().lower() == "true"


def _nan(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------------------------
# the result of an evaluation
# --------------------------------------------------------------------------------------------


class Evaluation:
    """Per-image rows of one or more evaluated datasets, with summaries computed from them.

    ``rows``: one dict per image (:data:`ROW_COLUMNS`), failed images included with
    ``status == "error"`` and NaN metrics; ``failed``: one line per failed image naming the
    file; ``datasets``: the :class:`Dataset` objects evaluated (empty when read from CSV),
    used to re-read masks with the right convention.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        failed: Sequence[str] = (),
        out_dir: str | os.PathLike | None = None,
        datasets: Mapping[str, Dataset] | None = None,
    ) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        self.failed: list[str] = list(failed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.datasets: dict[str, Dataset] = dict(datasets or {})

    # -- views ------------------------------------------------------------------------------
    def ok_rows(self) -> list[dict[str, Any]]:
        """The rows of images that were evaluated without error."""
        return [r for r in self.rows if r.get("status") == "ok"]

    @property
    def n_computed(self) -> int:
        return sum(1 for r in self.ok_rows() if not r.get("reused"))

    @property
    def n_reused(self) -> int:
        return sum(1 for r in self.ok_rows() if r.get("reused"))

    @property
    def dataset_names(self) -> list[str]:
        return list(dict.fromkeys(str(r.get("dataset")) for r in self.rows))

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per dataset: counts, detection AUC / balanced accuracy (TPR, TNR) over reals and
        fakes, and mean localization metrics over fakes with masks (NaN-skipping means with
        ``<metric>_n_nan`` counts, as :func:`~trufor_lab.lab.metrics.aggregate`)."""
        return {
            name: _summarize([r for r in self.rows if str(r.get("dataset")) == name]) for name in self.dataset_names
        }

    def summary_table(self) -> Table:
        """The summary as a :class:`Table`, one row per dataset."""
        return Table(({"dataset": name, **s} for name, s in self.summary.items()), title="evaluation summary")

    def table(self) -> Table:
        """The per-image rows as a :class:`Table`."""
        return Table(({k: r.get(k) for k in ROW_COLUMNS} for r in self.rows), title="per-image results")

    # -- files ------------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the per-image rows (all :data:`ROW_COLUMNS`) as CSV, atomically."""
        Table(self.rows, columns=ROW_COLUMNS).to_csv(path)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> "Evaluation":
        """Read rows written by :meth:`to_csv` back (types restored; ``failed`` rebuilt)."""
        rows = []
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f, strict=True)
                for raw in reader:
                    rows.append(
                        {
                            k: _parse(csv_uncell(v or ""), ROW_COLUMNS.get(k, _STR))
                            for k, v in raw.items()
                            if k is not None
                        }
                    )
        except (csv.Error, ValueError, UnicodeDecodeError) as e:  # a damaged or foreign file: one line
            raise ValueError(f"{path}: not a per-image CSV written by trufor_lab (line {len(rows) + 2}: {e})") from None
        failed = [r.get("error") or f"{r.get('image_path')}: failed" for r in rows if r.get("status") != "ok"]
        return cls(rows, failed)

    def write_summary(self, json_path: str | os.PathLike, csv_path: str | os.PathLike | None = None) -> None:
        """Summary as JSON (NaN written as null) and, optionally, CSV; both atomic."""
        clean = {
            name: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}
            for name, s in self.summary.items()
        }
        atomic_write_text(json_path, json.dumps(clean, indent=2) + "\n")
        if csv_path is not None:
            self.summary_table().to_csv(csv_path)

    # -- display ----------------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        """One line per dataset, for logs and the CLI."""
        out = []
        for name, s in self.summary.items():
            loc = (
                f"F1 best {fmt(s['f1_best'])}, fixed {fmt(s['f1_fixed'])} over {s['n_localized']} mask(s)"
                if s["n_localized"]
                else "no masks"
            )
            if s.get("n_mask_unusable"):
                loc += f" ({s['n_mask_unusable']} fake(s) without a usable mask)"
            if s["n_fake"] and s["n_real"]:
                det = f"detection AUC {fmt(s['detection_auc'])}, bACC {fmt(s['balanced_accuracy'])}"
            elif s["n_fake"] or s["n_real"]:  # one class: no AUC, and a 'balanced' accuracy of one class misleads
                only, rate = ("fake", f"TPR {fmt(s['tpr'])}") if s["n_fake"] else ("real", f"TNR {fmt(s['tnr'])}")
                det = f"only {only} images: {rate} at 0.5 (AUC and bACC need both classes)"
            else:
                det = "no scores"
            out.append(
                f"{name}: {s['n_ok']} image(s) ({s['n_fake']} fake, {s['n_real']} real), {det}; "
                f"{loc}; {s['n_failed']} failed"
            )
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (
            f"Evaluation({len(self.rows)} rows, datasets={self.dataset_names}, "
            f"{self.n_computed} computed, {self.n_reused} reused, {len(self.failed)} failed)"
        )

    def _repr_html_(self) -> str:
        parts = [
            self.summary_table()._repr_html_(),
            f"<div>{len(self.rows)} image(s): {self.n_computed} computed, {self.n_reused} reused, "
            f"{len(self.failed)} failed</div>",
        ]
        if self.failed:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in self.failed[:20])
            more = f"<li>... {len(self.failed) - 20} more</li>" if len(self.failed) > 20 else ""
            parts.append(f"<ul>{items}{more}</ul>")
        return "".join(parts)


def _loc_from_row(r: Mapping[str, Any]) -> LocalizationMetrics:
    return LocalizationMetrics(
        **{f: _nan(r.get(col)) for f, col in _LOC_COLUMNS.items()},
        n_forged=int(r.get("n_forged") or 0),
        n_pristine=int(r.get("n_pristine") or 0),
        best_threshold=_nan(r.get("best_threshold")),
        best_inverted=bool(r.get("best_inverted")),
    )


def _one_value(values: Iterable[Any]) -> str | None:
    """The value every row shares; ``"mixed: a, b"`` when rows differ (so that a summary never
    claims one model for numbers that several made); ``None`` when no row says."""
    seen = sorted({str(v) for v in values if v not in (None, "")})
    if len(seen) > 1:
        return "mixed: " + ", ".join(seen)
    return seen[0] if seen else None


def _summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    scored = [r for r in ok if r.get("label") in (0, 1)]
    det = detection_metrics([_nan(r.get("score")) for r in scored], [int(r["label"]) for r in scored])
    loc_rows = [r for r in ok if r.get("label") == 1 and r.get("n_forged") is not None]
    agg = aggregate([_loc_from_row(r) for r in loc_rows])
    out: dict[str, Any] = {
        "n_images": len(rows),
        "n_ok": len(ok),
        "n_failed": len(rows) - len(ok),
        "n_fake": det.n_fake,
        "n_real": det.n_real,
        "n_localized": agg.n_images,
        # fakes scored for detection whose mask could not be used (missing, other size, unreadable)
        "n_mask_unusable": sum(1 for r in ok if r.get("label") == 1 and r.get("error")),
        "detection_auc": det.auc,
        "balanced_accuracy": det.balanced_accuracy,
        "tpr": det.tpr,
        "tnr": det.tnr,
        "n_score_dropped": det.n_dropped,
        "weights_sha256": _one_value(r.get("weights_sha256") for r in ok),
        "computed": _one_value(r.get("computed") for r in ok),
    }
    for f, col in _LOC_COLUMNS.items():
        out[col] = agg.mean[f]
    for f, col in _LOC_COLUMNS.items():
        out[f"{col}_n_nan"] = agg.n_nan[f]
    return out


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def output_path(out_dir: str | os.PathLike, dataset: Dataset, sample: Sample) -> Path:
    """``out_dir/<dataset name>/<image path relative to the root>.npz``, or the listed id when
    the image is not under the root; through :func:`trufor_lab.common.paths.output_path`, so an
    id that is absolute or climbs out with ``..`` raises :class:`OutputPathError` (one line)."""
    image = Path(sample.image_path)
    try:
        rel = image.resolve().relative_to(Path(dataset.root).resolve()).as_posix()
    except ValueError:
        rel = sample.id
    return common_output_path(Path(out_dir) / safe_part(dataset.name), rel)


def _read_npz(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``(map, conf, score)`` from a valid official npz for an image of ``size`` (H, W), else None."""
    try:
        with np.load(path, allow_pickle=False) as d:
            if not {"map", "conf", "score"} <= set(d.files):
                return None
            m = np.asarray(d["map"], dtype=np.float32)
            c = np.asarray(d["conf"], dtype=np.float32)
            s = float(np.asarray(d["score"]).reshape(-1)[0])
    except Exception:  # noqa: BLE001 - an output file is untrusted: unreadable means "recompute"
        return None
    if m.shape != size or c.shape != size or not math.isfinite(s):
        return None
    return m, c, s


def _image_info(path: Path) -> tuple[int, int, int | None]:
    """(height, width, JPEG quality or None) from the file header."""
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with open_image(path) as im:
            w, h = stored_size(im)  # the grid the image is analysed on
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None
    try:
        q = estimate_quality(path)
    except ValueError:
        q = None
    return h, w, (q.quality if q is not None else None)


def _one_line(path: Path, exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = msg[:300]
    return msg if str(path) in msg else f"{path}: {msg}"


def _base_row(dataset: Dataset, sample: Sample, npz: Path | None) -> dict[str, Any]:
    row: dict[str, Any] = {k: (math.nan if t == _FLOAT else None) for k, t in ROW_COLUMNS.items()}
    row.update(
        dataset=dataset.name,
        id=sample.id,
        image_path=str(sample.image_path),
        mask_path=None if sample.mask_path is None else str(sample.mask_path),
        npz=None if npz is None else str(npz),
        label=int(sample.label),
        status="ok",
    )
    return row


def _evaluate_one(
    model: nn.Module,
    dataset: Dataset,
    sample: Sample,
    npz: Path,
    overwrite: bool,
    analyze_fn: AnalyzeFn,
    weights_digest: str | None,
    computed: str,
) -> dict[str, Any]:
    row = _base_row(dataset, sample, npz)
    image_path = Path(sample.image_path)
    h, w, quality = _image_info(image_path)
    row.update(weights_sha256=weights_digest, computed=computed)
    row.update(height=h, width=w, megapixels=h * w / 1e6, jpeg_quality=quality)

    digest = sha256_of(image_path)
    cached = None
    if not overwrite and npz.is_file():
        why = reuse_problem(npz, digest, weights_digest, computed=computed, shape=(h, w))
        if why is None:
            cached = _read_npz(npz, (h, w))
        else:
            tqdm.write(f"note: {npz}: {why}; recomputing", file=sys.stderr)
    if cached is not None:
        m, c, score = cached
        row["reused"] = True
    else:
        result = analyze_fn(model, image_path)
        if result.map is None or result.conf is None or result.score is None:
            raise RuntimeError(f"{image_path}: the model gave no localization map (Noiseprint++ only)")
        if result.map.shape != (h, w):
            raise RuntimeError(f"{image_path}: map size {result.map.shape} differs from image size {(h, w)}")
        result.save_npz(npz, input_sha256=digest, computed=computed)
        # scored as saved (float32 maps), so that a resumed run, which reads the npz, agrees exactly
        m, c = result.map.astype(np.float32, copy=False), result.conf.astype(np.float32, copy=False)
        score = float(result.score)
        row["reused"] = False

    row["score"] = float(score)
    row["mean_conf"] = float(np.mean(c, dtype=np.float64))
    if sample.label == 1 and sample.mask_path is not None:
        # a mask that cannot be used costs the localization only: the score still counts for
        # detection, which the official protocol computes from scores and labels alone
        try:
            _localize(row, m, c, dataset.load_mask(sample))
        except (DatasetError, ValueError, OSError) as e:
            row["error"] = f"{_one_line(Path(sample.mask_path), e)} (localization not scored; the score is)"
    return row


def _localize(row: dict[str, Any], m: np.ndarray, c: np.ndarray, mask: np.ndarray) -> None:
    lm = localization_metrics(m, mask)
    row["mask_fraction"] = float(mask.mean())
    row["mean_conf_in_mask"] = float(c[mask].mean(dtype=np.float64)) if mask.any() else math.nan
    for f, col in _LOC_COLUMNS.items():
        row[col] = float(getattr(lm, f))
    row.update(
        n_forged=lm.n_forged,
        n_pristine=lm.n_pristine,
        best_threshold=lm.best_threshold,
        best_inverted=lm.best_inverted,
    )


def evaluate(
    model: nn.Module | None,
    dataset: Dataset,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    analyze_fn: AnalyzeFn | None = None,
    weights_sha256: str | None = None,
    computed: str | None = None,
) -> Evaluation:
    """Analyse every image of ``dataset`` (or reuse its npz under ``out_dir``) and score it.

    An existing npz is reused only when it records the sha256 of this same image file and of
    these weights (``weights_sha256``, default the model's ``weights_info.sha256``; when neither
    is known, only the image is checked) and was computed the same way (``computed``, recorded
    in each npz: default ``"exact float32"`` (or float64) for the built-in analysis, else the
    ``computed`` attribute of ``analyze_fn``, else ``"custom <its name> #<digest>"`` of its code,
    arguments (a ``functools.partial``'s) and captured values, so that another ablation setting
    written to the same folder is recomputed, never reused;
    :func:`~trufor_lab.inference.result.computed_label`);
    otherwise it is recomputed with a one-line note. A sample id that would write outside
    ``out_dir`` is refused with one line.

    ``analyze_fn(model, image_path) -> Result`` replaces :func:`~trufor_lab.inference.analyze.analyze`
    (e.g. under an ablation; ``model`` is passed to it as given). Per-image failures are
    recorded in ``Evaluation.failed`` and in rows with ``status == "error"``; the run goes on.
    A fake whose mask cannot be used (missing, another size, NaN map on scored pixels) keeps
    its score for detection; the row's ``error`` and ``Evaluation.failed`` say why it has no
    localization.
    Without ``analyze_fn``, raises ValueError unless ``model`` is a full TruFor (Noiseprint++
    alone gives no localization map and no score).
    """

    if analyze_fn is None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"evaluate needs a TruFor model, got {type(model).__name__}")
        if not is_full_model(model):
            raise ValueError(
                "evaluate needs a full TruFor model (this one is Noiseprint++ only: no localization map, no score)"
            )
        analyze_fn = analyze
        computed = computed or computed_label("exact", next(model.parameters()).dtype)
    computed = computed or getattr(analyze_fn, "computed", None) or f"custom {callable_label(analyze_fn)}"
    repeated = dataset.repeated()
    if repeated:
        raise DatasetError(repeated)
    if weights_sha256 is None:
        info = getattr(model, "weights_info", None)
        weights_sha256 = info.sha256 if info is not None and info.sha256 not in ("", "-") else None
    weights_digest = weights_sha256
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for sample in tqdm(list(dataset), desc=f"eval {dataset.name}", unit="img", disable=not progress, file=sys.stderr):
        try:
            npz = output_path(out_dir, dataset, sample)
        except OutputPathError as e:
            msg = f"{sample.image_path}: {e}"
            failed.append(msg)
            row = _base_row(dataset, sample, None)
            row.update(status="error", error=msg)
            rows.append(row)
            continue
        try:
            rows.append(_evaluate_one(model, dataset, sample, npz, overwrite, analyze_fn, weights_digest, computed))
            if rows[-1].get("error"):  # scored for detection, not localized: said like a failure
                failed.append(rows[-1]["error"])
        except (ImageError, DatasetError, ValueError, RuntimeError, MemoryError, OSError) as e:
            msg = _one_line(Path(sample.image_path), e)
            failed.append(msg)
            row = _base_row(dataset, sample, npz)
            row.update(status="error", error=msg)
            rows.append(row)
    return Evaluation(rows, failed, out_dir, {dataset.name: dataset})
