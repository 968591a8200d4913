"""Evaluate TruFor on a benchmark: resumable, per-image table, per-dataset summary.

>>> from trufor_lab.lab.datasets import folder_dataset, load_dataset
>>> from trufor_lab.lab.evaluate import evaluate
>>> ds = load_dataset("CASIA1", root="/data/CASIA1", list_dir="lists/")  # doctest: +SKIP
>>> ds = folder_dataset("images", "masks")       # or your own: a mask named as its image, white = forged
>>> ev = evaluate(model, ds, "runs/eval")        # writes runs/eval/<ds.name>/<image>.npz
>>> ev.summary[ds.name]["detection_auc"], ev.summary[ds.name]["f1_best"]
>>> ev.to_csv("runs/eval/per_image.csv")

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
:func:`~trufor_lab.lab.metrics.localization_metrics` (the pixel ROC AUC is named ``pixel_auc``;
``map_probability`` False: the map's values lie outside 0..1, so no metric at 0.5);
descriptors: ``mask_fraction`` (forged share of the mask, NaN without a mask), ``height``,
``width``, ``megapixels``, ``jpeg_quality`` (nearest IJG quality, ``None`` for non-JPEG),
``mean_conf`` and ``mean_conf_in_mask`` (mean confidence, overall and on forged pixels); what
made the numbers: ``weights_sha256`` and ``computed`` (e.g. ``"exact float32"``), and how masks
were read: ``mask_convention`` (the dataset's :class:`~trufor_lab.lab.datasets.MaskConvention`
as JSON), which the summary repeats (one value, or ``"mixed: ..."`` when rows differ). A row
that is ``ok`` but scored in part has an ``error`` and ``not_scored`` tags (``score``: not
finite, left out of detection; ``mask``: unusable mask; ``map``: NaN on scored pixels); such a
row counts as failed (:mod:`trufor_lab.lab.eval_rows`). When most usable masks of a dataset are
more than half forged or empty, the summary line (``mask_note``) and stderr ask whether the
masks were read inverted.

``trufor-lab eval`` (:mod:`trufor_lab.cli.eval`) does the same from a shell.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError
from torch import Tensor, nn
from tqdm.auto import tqdm

from trufor_lab.common.callables import callable_label
from trufor_lab.common.files import ChangedMeanwhile, atomic_write_text, csv_uncell, file_state
from trufor_lab.common.errors import escaped
from trufor_lab.common.image_files import DAMAGED_FILE_ERRORS, open_unwarned, stored_size
from trufor_lab.common.unreadable import unrecognised_reason
from trufor_lab.common.table import Table
from trufor_lab.forensics.jpeg import estimate_quality
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.load import is_full_model, unwrapped
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.inference.predict import hooked
from trufor_lab.inference.stored import computed_label, output_refusal, reuse_problem
from trufor_lab.inference.weights import sha256_of
from trufor_lab.lab.datasets import Dataset, DatasetError, Sample
from trufor_lab.lab.eval_outputs import output_path, output_paths  # noqa: F401 - output_path: public here too
from trufor_lab.model.identity import values_digest
from trufor_lab.lab.eval_rows import (
    FLOAT,
    LOC_COLUMNS,
    ROW_COLUMNS,
    STR,
    convention_record,
    failed_lines,
    one_value,
    parse,
    summarize,
    summary_line,
    weights_short,
)
from trufor_lab.lab.metrics import localization_metrics, scored_regions
from trufor_lab.model.interventions import intervention_label

__all__ = ["Evaluation", "ROW_COLUMNS", "evaluate", "output_path"]

AnalyzeFn = Callable[[nn.Module, Any], Result]

# --------------------------------------------------------------------------------------------
# the result of an evaluation
# --------------------------------------------------------------------------------------------


#: Columns every per-image CSV holds (what tells one from a summary or another table).
REQUIRED_COLUMNS = ("dataset", "id", "image_path", "label", "status", "score")


class _NotPerImage(ValueError):
    pass


class Evaluation:
    """Per-image rows of one or more evaluated datasets, with summaries computed from them.

    ``rows``: one dict per image (:data:`ROW_COLUMNS`), failed images included with
    ``status == "error"`` and NaN metrics; ``failed``: one line per failed row naming the file,
    rebuilt from the rows (:func:`~trufor_lab.lab.eval_rows.is_failed`: not evaluated, or
    evaluated with a part not scored), so that it agrees with the summary's ``n_failed`` and
    with an Evaluation read back from CSV (a ``failed`` argument that disagrees raises
    ValueError); ``datasets``: the :class:`Dataset` objects evaluated (empty when read from CSV).
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        failed: Sequence[str] = (),
        out_dir: str | os.PathLike | None = None,
        datasets: Mapping[str, Dataset] | None = None,
    ) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        if failed and list(failed) != self.failed:
            raise ValueError("failed lines must be those of the rows' errors (Evaluation.failed is rebuilt from rows)")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.datasets: dict[str, Dataset] = dict(datasets or {})

    # -- views ------------------------------------------------------------------------------
    @property
    def failed(self) -> list[str]:
        """One line per failed row, naming the file (see the class docstring)."""
        return failed_lines(self.rows)

    def ok_rows(self) -> list[dict[str, Any]]:
        """The rows of images that were evaluated (``status == "ok"``; scored in part included)."""
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
        return {name: summarize([r for r in self.rows if str(r.get("dataset")) == name]) for name in self.dataset_names}

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
            with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: the mark a spreadsheet adds
                reader = csv.DictReader(f, strict=True)
                missing = [k for k in REQUIRED_COLUMNS if k not in (reader.fieldnames or ())]
                if missing:  # a summary CSV, someone's table: read as rows of None it gave "1 failed"
                    raise _NotPerImage(f"its header has no {', '.join(missing)} column(s)")
                for raw in reader:
                    rows.append(
                        {
                            k: parse(csv_uncell(v or ""), ROW_COLUMNS.get(k, STR))
                            for k, v in raw.items()
                            if k is not None
                        }
                    )
        except _NotPerImage as e:
            raise ValueError(f"{path}: not a per-image CSV written by trufor_lab ({e})") from None
        except (csv.Error, ValueError, UnicodeDecodeError) as e:  # a damaged or foreign file: one line
            raise ValueError(f"{path}: not a per-image CSV written by trufor_lab (line {len(rows) + 2}: {e})") from None
        return cls(rows)

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
        return [summary_line(name, s) for name, s in self.summary.items()]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        weights = one_value(r.get("weights_sha256") for r in self.ok_rows())  # whose numbers, in short
        return (
            f"Evaluation({len(self.rows)} rows, datasets={self.dataset_names}, "
            f"{self.n_computed} computed, {self.n_reused} reused, {len(self.failed)} failed, "
            f"weights={weights_short(weights)})"
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


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


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
        with open_unwarned(path) as im:
            w, h = stored_size(im)  # the grid the image is analysed on
    except UnidentifiedImageError:
        raise ImageError(f"{path}: {unrecognised_reason(str(path))}") from None
    except DAMAGED_FILE_ERRORS as e:
        raise ImageError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None
    try:
        q = estimate_quality(path)
    except ValueError:
        q = None
    return h, w, (q.quality if q is not None else None)


def _one_line(path: Path, exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = msg[:300]
    name = str(path)  # a name with a newline is in an error's text escaped, or spaced by the split above
    named = any(n in msg for n in (name, " ".join(name.split()), escaped(name)))
    return msg if named else f"{path}: {msg}"


def _base_row(dataset: Dataset, sample: Sample, npz: Path | None) -> dict[str, Any]:
    row: dict[str, Any] = {k: (math.nan if t == FLOAT else None) for k, t in ROW_COLUMNS.items()}
    row.update(
        dataset=dataset.name,
        id=sample.id,
        image_path=str(sample.image_path),
        mask_path=None if sample.mask_path is None else str(sample.mask_path),
        npz=None if npz is None else str(npz),
        label=int(sample.label),
        status="ok",
        mask_convention=convention_record(dataset.convention),  # how masks were read, for later readers
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
    seen = file_state(npz)  # replaced only while it is what was seen: never another run's output
    refused = None if overwrite else output_refusal(npz, image_path, digest, "overwrite")
    if refused:  # someone's file with the output's name, or another dataset's image of that name
        raise ValueError(refused)
    if not overwrite and npz.is_file():
        why = reuse_problem(npz, digest, weights_digest, computed=computed, shape=(h, w))
        if why is None:  # (an earlier version's empty 'not applicable' map records no numerics: recomputed)
            cached = _read_npz(npz, (h, w))
        else:
            tqdm.write(escaped(f"note: {npz}: {why}; recomputing"), file=sys.stderr)
    if cached is not None:
        m, c, score = cached
        row["reused"] = True
    else:
        result = analyze_fn(model, image_path)
        if result.map is None or result.conf is None or result.score is None:
            raise RuntimeError(f"{image_path}: the model gave no localization map (Noiseprint++ only)")
        if getattr(result, "shown", False):  # a 180° turn keeps the shape: scored misaligned, unsaid
            raise RuntimeError(
                f"{image_path}: analyze_fn returned maps turned as viewers show the file (EXIF orientation "
                f"{result.exif_orientation}: exif_transpose=True or as_shown()); the evaluation scores the "
                "stored grid its masks are read on: return the analysis as stored"
            )
        # one number (a 0-d tensor, a numpy scalar, a 1-element array): several ended the whole run
        score = _one_score(result.score, image_path)
        if dataclasses.is_dataclass(result):  # saved as scored (a duck-typed result saves itself)
            result = dataclasses.replace(result, score=score)
        for what, a in (("map", result.map), ("confidence map", result.conf)):
            if np.shape(a) != (h, w):  # a confidence of another grid ended the run (IndexError on its mask)
                raise RuntimeError(f"{image_path}: {what} size {np.shape(a)} differs from image size {(h, w)}")
        meanwhile = {"expect": seen} if isinstance(result, Result) else {}  # (a duck-typed result saves itself)
        try:
            result.save_npz(
                npz,
                input_sha256=digest,
                computed=computed,
                input_path=image_path,
                weights_digest=weights_digest,
                **meanwhile,
            )
        except ChangedMeanwhile as e:  # another run wrote it meanwhile: theirs stays, done when it is this run's
            why = reuse_problem(npz, digest, weights_digest, computed=computed, shape=(h, w))
            theirs = None if why else _read_npz(npz, (h, w))
            if theirs is None:
                raise ValueError(
                    f"{str(e).removesuffix('; not replaced')} ({why or 'unreadable'}); not replaced"
                ) from None
            m, c, score = theirs
            row["reused"] = True
        else:
            # scored as saved (float32 maps), so that a resumed run, which reads the npz, agrees exactly
            m, c = result.map.astype(np.float32, copy=False), result.conf.astype(np.float32, copy=False)
            row["reused"] = False

    row["score"] = float(score)
    row["mean_conf"] = float(np.mean(c, dtype=np.float64))
    problems: dict[str, str] = {}
    if not math.isfinite(row["score"]):  # dropped from detection (the official protocol): said, not silent
        shown = "NaN" if math.isnan(row["score"]) else row["score"]
        problems["score"] = f"{image_path}: score is {shown} (left out of detection; output {npz})"
    if sample.label == 1 and sample.mask_path is not None:
        # a mask that cannot be used costs the localization only: the score still counts for
        # detection, which the official protocol computes from scores and labels alone
        try:
            mask = dataset.load_mask(sample)
        except (DatasetError, ValueError, OSError) as e:
            problems["mask"] = f"{_one_line(Path(sample.mask_path), e)} (localization not scored; the score is)"
        else:
            if np.isnan(m).any() and np.isnan(m[np.logical_or(*scored_regions(mask))]).any():
                problems["map"] = (
                    f"{npz}: the localization map of {image_path} holds NaN on scored pixels "
                    "(localization not scored; the score is)"
                )
            else:
                _localize(row, m, c, mask)
                noting = getattr(dataset, "mask_orientation_note", None)  # a Dataset's; a duck-typed one may lack it
                row["note"] = noting(sample) if noting else None
                if row["note"]:  # scored as the official protocol does, and said where the run is watched
                    tqdm.write(escaped(f"note: {row['note']}"), file=sys.stderr)
    if problems:
        row.update(error="; ".join(problems.values()), not_scored=",".join(problems))
    return row


def _one_score(score: Any, image_path: Path) -> float:
    """An ``analyze_fn``'s score as a float: a number, a numpy scalar, a 0-d or 1-element array or
    tensor; several values (or none, or text) are this image's failure (RuntimeError, one line)."""
    if isinstance(score, (str, bytes)):  # np.asarray('0.3', float) would read text as a score
        raise RuntimeError(f"{image_path}: analyze_fn gave the score {str(score)[:40]!r} (text), not a number")
    try:
        a = np.asarray(score.detach().double().cpu() if isinstance(score, Tensor) else score, dtype=np.float64)
    except (TypeError, ValueError):
        raise RuntimeError(
            f"{image_path}: analyze_fn gave a score of type {type(score).__name__}, not a number"
        ) from None
    if a.size != 1:
        raise RuntimeError(
            f"{image_path}: analyze_fn gave a score of {a.size} values (shape {tuple(a.shape)}), not one number"
        )
    return float(a.reshape(()))


def _localize(row: dict[str, Any], m: np.ndarray, c: np.ndarray, mask: np.ndarray) -> None:
    lm = localization_metrics(m, mask)
    row["mask_fraction"] = float(mask.mean())
    row["mean_conf_in_mask"] = float(c[mask].mean(dtype=np.float64)) if mask.any() else math.nan
    for f, col in LOC_COLUMNS.items():
        row[col] = float(getattr(lm, f))
    row.update(
        n_forged=lm.n_forged,
        n_pristine=lm.n_pristine,
        best_threshold=lm.best_threshold,
        best_inverted=lm.best_inverted,
        map_probability=lm.probability,
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
    these weights (``weights_sha256``, default the model's ``weights_info.sha256``; weights of no
    known file, or changed in memory since loading, are named by a digest of their values,
    :func:`~trufor_lab.model.identity.values_digest`) and was computed the same way (``computed``, recorded
    in each npz: default ``"exact float32"`` (or float64) for the built-in analysis, else the
    ``computed`` attribute of ``analyze_fn``, else ``"custom <its name> #<digest>"`` of its code,
    arguments (a ``functools.partial``'s) and captured values; and, under an ablation or a
    hook on the model, its name added (``"plain float32 under rgb_only"``: the plain forward runs
    then), so that another ablation setting written to the same folder is recomputed, never reused;
    :func:`~trufor_lab.inference.stored.computed_label`);
    otherwise it is recomputed with a one-line note. A sample id that would write outside
    ``out_dir`` is refused with one line.

    ``analyze_fn(model, image_path) -> Result`` replaces :func:`~trufor_lab.inference.analyze.analyze`
    (e.g. under an ablation; ``model`` is passed to it as given). Per-image failures are
    recorded in ``Evaluation.failed`` and in rows with ``status == "error"``; the run goes on.
    A fake whose mask cannot be used (missing, another size) or whose map holds NaN on scored
    pixels keeps its score for detection; a NaN score is left out of detection; the row's
    ``error`` (naming the mask, or the output and image) and ``Evaluation.failed`` say so.
    Without ``analyze_fn``, raises ValueError unless ``model`` is a full TruFor (Noiseprint++
    alone gives no localization map and no score).
    """
    model = None if model is None else unwrapped(model)  # DataParallel / compile around TruFor

    if analyze_fn is None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"evaluate needs a TruFor model, got {type(model).__name__}")
        if not is_full_model(model):
            raise ValueError(
                "evaluate needs a full TruFor model (this one is Noiseprint++ only: no localization map, no score)"
            )
    if not computed:
        acting = intervention_label(model) if isinstance(model, nn.Module) else ""
        if analyze_fn is None:  # what analyze runs: the exact path, or the plain forward under hooks
            computed = computed_label("plain" if hooked(model) else "exact", next(model.parameters()).dtype)
        else:
            computed = getattr(analyze_fn, "computed", None) or f"custom {callable_label(analyze_fn)}"
        computed += f" under {acting}" if acting else ""  # an ablation's outputs are not the model's
    analyze_fn = analyze_fn or analyze
    repeated = dataset.repeated()
    if repeated:
        raise DatasetError(repeated)
    lines = (
        dataset.note_lines()
        if isinstance(dataset, Dataset)
        else [f"{dataset.name}: {n}" for n in getattr(dataset, "notes", ())]
    )
    for line in lines:  # how the dataset was read (a convention taken from its name, ...)
        tqdm.write(escaped(f"note: {line}"), file=sys.stderr)
    if weights_sha256 is None:
        info = getattr(model, "weights_info", None)
        weights_sha256 = info.sha256 if info is not None and info.sha256 not in ("", "-") else None
        if weights_sha256 is None and isinstance(model, nn.Module):  # no known file (or changed in memory)
            weights_sha256 = values_digest(model)
    weights_digest = weights_sha256
    rows: list[dict[str, Any]] = []
    targets = output_paths(out_dir, dataset)
    for sample in tqdm(list(dataset), desc=f"eval {dataset.name}", unit="img", disable=not progress, file=sys.stderr):
        npz = targets[id(sample)]
        if isinstance(npz, str):  # no output of its own: refused, the run goes on
            row = _base_row(dataset, sample, None)
            row.update(status="error", error=npz)
            rows.append(row)
            continue
        try:
            rows.append(_evaluate_one(model, dataset, sample, npz, overwrite, analyze_fn, weights_digest, computed))
        except (ImageError, DatasetError, ValueError, RuntimeError, MemoryError, OSError) as e:
            msg = _one_line(Path(sample.image_path), e)
            row = _base_row(dataset, sample, npz)
            row.update(status="error", error=msg)
            rows.append(row)
    ev = Evaluation(rows, (), out_dir, {dataset.name: dataset})
    note = ev.summary.get(dataset.name, {}).get("mask_note")
    if note:  # also in the summary line; said here too, where the run is watched
        tqdm.write(escaped(f"note: {dataset.name}: {note}"), file=sys.stderr)
    return ev
