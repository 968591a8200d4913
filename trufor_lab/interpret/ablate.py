"""Ablation studies: every image under every ablation, one row per (image, ablation) with the
score, its change against the baseline, how much the map moved and, with masks, localization
metrics; the main module users call (the interventions themselves, re-exported here, are
:mod:`trufor_lab.interpret.ablations`).

>>> from trufor_lab.interpret import ablate
>>> with ablate.rgb_only(model) as ab:
...     r = ab.analyze("photo.png")          # a normal Result, r.label == "rgb_only"
>>> study = ablate.ablation_study(model, images, masks, ["rgb_only", "no_frm", "drop_c4"])
>>> study.plot()
>>> study.to_csv("study.csv")                # atomic, UTF-8; returns the CSV text
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from trufor_lab.common.arrays import record_repr
from trufor_lab.common.paths import short_name, shorten, shown_text
from trufor_lab.common.table import Table, fmt
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.load import unwrapped
from trufor_lab.inference.preprocess import ImageLike, load_image
from trufor_lab.inference.weights import WeightsInfo
from trufor_lab.interpret.ablations import (
    ABLATIONS,
    Ablation,
    AblationRegistry,
    AblationSpec,
    UnknownAblation,
    baseline,
    compose,
    drop_scales,
    get_ablation,
    map_only_detection,
    no_ffm_cross,
    no_frm,
    noiseprint_from,
    noiseprint_noise,
    noiseprint_only,
    register_ablation,
    rgb_only,
    uniform_pooling,
)
from trufor_lab.lab.metrics import binary_mask, localization_metrics
from trufor_lab.model.identity import other_weights, row_weights, weights_label
from trufor_lab.viz.figures import new_figure

__all__ = [
    "ABLATIONS",
    "Ablation",
    "AblationRegistry",
    "AblationSpec",
    "AblationStudy",
    "DEFAULT_STUDY",
    "METRIC_KEYS",
    "UnknownAblation",
    "ablation_study",
    "baseline",
    "compose",
    "drop_scales",
    "get_ablation",
    "map_only_detection",
    "no_ffm_cross",
    "no_frm",
    "noiseprint_from",
    "noiseprint_noise",
    "noiseprint_only",
    "register_ablation",
    "rgb_only",
    "uniform_pooling",
]

# --------------------------------------------------------------------------------------------
# studies
# --------------------------------------------------------------------------------------------

METRIC_KEYS = ("f1_best", "f1_fixed", "mcc_best", "iou_fixed", "auc")
DEFAULT_STUDY = (
    "rgb_only",
    "noiseprint_only",
    "no_frm",
    "no_ffm_cross",
    "drop_c4",
    "uniform_pooling",
    "map_only_detection",
)


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


@dataclass
class AblationStudy:
    """One row per (image, ablation): ``image``, ``ablation``, ``score``, ``det_logit``,
    ``delta_score`` (vs. baseline), ``mean_conf``, ``map_mean``, ``map_change`` (mean |map -
    baseline map|) and, with masks, ``f1_best``, ``f1_fixed``, ``mcc_best``, ``iou_fixed``, ``auc`` (the
    map's pixel ROC AUC, not a detection AUC).
    ``results[ablation]`` holds the Results (one per image, ``label`` = ablation). ``weights``:
    the studied model's record (its ``weights_info``), said in the repr and the figure; each row's
    ``weights`` names it (:func:`~trufor_lab.model.identity.weights_label`), so that rows of two
    studies put together, or their CSV files, still say which model each row is of.
    """

    table: Table
    results: dict[str, list[Result]] = field(repr=False)
    images: list[str] = field(default_factory=list)
    weights: WeightsInfo | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        """One line: the table's rows counted, not printed; whose weights were studied."""
        text = record_repr(self)
        return text if self.weights is None else f"{text[:-1]}, weights={weights_label(self.weights)!r})"

    def __post_init__(self) -> None:
        if not isinstance(self.table, Table):
            self.table = Table(self.table)
        self.table.title = f"ablation study ({len(self.images)} image(s) x {len(self.results)} ablation(s))"

    @property
    def ablations(self) -> list[str]:
        return list(self.results)

    def column(self, key: str, ablation: str | None = None) -> np.ndarray:
        """One column as floats (optionally the rows of one ablation)."""
        rows = [r for r in self.table if ablation is None or r["ablation"] == ablation]
        return np.array([_num(r.get(key)) for r in rows], dtype=np.float64)

    def for_image(self, image: int | str = 0) -> list[Result]:
        """The Results of every ablation for one image (e.g. for a CompareViewer)."""
        i = self.images.index(image) if isinstance(image, str) else image
        return [rs[i] for rs in self.results.values()]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The table as CSV text (also written to ``path``, atomically and in UTF-8, if given)."""
        return self.table.csv() if path is None else self.table.to_csv(path)

    def to_pandas(self):
        """The table as a pandas DataFrame."""
        return self.table.to_pandas()

    to_dataframe = to_pandas

    def plot(self, metric: str | None = None, ax=None):
        """Bar chart (one image) or image x ablation heatmap of ``metric`` (default ``f1_best``
        with masks, else ``score``); returns the Figure."""
        if metric is None:
            metric = "f1_best" if any(not math.isnan(_num(r.get("f1_best"))) for r in self.table) else "score"
        abl = self.ablations
        vals = np.array([[_num(r.get(metric)) for r in self.table if r["image"] == im] for im in self.images])
        if ax is None:
            fig = new_figure(
                figsize=(max(4.0, 0.8 * len(abl) + 2), 3.2 if len(self.images) == 1 else 1.0 + 0.45 * len(self.images))
            )
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        if len(self.images) == 1:
            colors = ["0.5" if a == "baseline" else "C0" for a in abl]
            ax.bar(np.arange(len(abl)), vals[0], color=colors)
            ax.set_xticks(np.arange(len(abl)))
            ax.set_xticklabels(abl, rotation=35, ha="right", fontsize=8, parse_math=False)
            ax.set_ylabel(metric)
            ax.set_title(short_name(self.images[0]), fontsize=9, parse_math=False)
            ax.grid(axis="y", alpha=0.3)
            if metric in _UNIT_RANGE:
                ax.set_ylim(0, 1)
        else:
            im = ax.imshow(vals, aspect="auto", **_heatmap_scale(metric, vals))
            for (i, j), v in np.ndenumerate(vals):
                r, g, b, _ = im.cmap(im.norm(v)) if np.isfinite(v) else (1, 1, 1, 1)
                ink = "k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "w"  # readable on its cell
                ax.text(j, i, fmt(float(v), 3), ha="center", va="center", fontsize=7, color=ink)
            ax.set_xticks(np.arange(len(abl)))
            ax.set_xticklabels(abl, rotation=35, ha="right", fontsize=8, parse_math=False)
            ax.set_yticks(np.arange(len(self.images)))
            # file names: '$' as written, control characters as '?'
            ax.set_yticklabels(_row_labels(self.images), fontsize=8, parse_math=False)
            fig.colorbar(im, ax=ax, label=metric)
        by = "" if self.weights is None else f"\n{weights_label(self.weights)}"
        fig.suptitle(f"Ablation study: {metric}{by}", fontsize=10, parse_math=False)
        return fig

    def _repr_html_(self) -> str:
        by = "" if self.weights is None else f"<div>by {html.escape(weights_label(self.weights))}</div>"
        if not self.table:
            return f"<b>ablation study</b>: no rows{by}"
        return self.table._repr_html_() + by


#: Table columns that lie in [0, 1]: drawn on that fixed scale (an auto scale made +0.026 look
#: like the largest possible value).
_UNIT_RANGE = {"score", "f1_best", "f1_fixed", "iou_fixed", "auc", "mean_conf", "map_mean", "map_change"}
#: Signed columns with a fixed range: drawn on [-1, 1] (a change of score of +0.004 was darkest red).
_SIGNED_UNIT_RANGE = {"delta_score", "mcc_best"}


def _heatmap_scale(metric: str, vals: np.ndarray) -> dict:
    """imshow arguments for an ablation heatmap of ``metric``: [0, 1] metrics on that scale,
    changes of score and MCC on [-1, 1], other signed ones (logits) on a diverging map centred on
    zero and scaled to their largest value."""
    if metric in _UNIT_RANGE:
        return dict(cmap="viridis", vmin=0.0, vmax=1.0)
    if metric in _SIGNED_UNIT_RANGE:
        return dict(cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    finite = np.abs(vals[np.isfinite(vals)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return dict(cmap="RdBu_r", vmin=-top, vmax=top)


def _is_single_image(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike, bytes, np.ndarray, torch.Tensor, Image.Image))


def _row_labels(names: list[str]) -> list[str]:
    """The heatmap's row labels: the images' base names, unless two share one ('CASIA/1.png' and
    'Columbia/1.png': rows that could not be told apart), then the names as given."""
    labels = [short_name(n) for n in names]
    return labels if len(set(labels)) == len(labels) else [shorten(shown_text(n)) for n in names]


def ablation_study(
    model: nn.Module,
    images: ImageLike | Sequence[ImageLike],
    masks: np.ndarray | Sequence[np.ndarray | None] | None = None,
    ablations: Sequence[AblationSpec] = DEFAULT_STUDY,
    analyze_fn: Callable[[nn.Module, ImageLike], Result] | None = None,
    *,
    include_baseline: bool = True,
    names: Sequence[str] | None = None,
) -> AblationStudy:
    """Analyse every image under every ablation (and the unablated baseline first).

    ``ablations`` are registry names, bound :class:`Ablation` objects or factories
    ``f(model) -> Ablation``. ``masks`` (boolean, 0/1 or 0/255, 1 = forged, the image's size, checked
    before any analysis; ``None`` entries
    for pristine images) add localization metrics from :func:`trufor_lab.lab.metrics.localization_metrics`.
    Each ablation is entered once for all images and always left again.
    """
    imgs = [images] if _is_single_image(images) else list(images)
    if masks is None:
        mks: list[Any] = [None] * len(imgs)
    elif isinstance(masks, (np.ndarray, torch.Tensor)) and len(imgs) == 1 and masks.ndim == 2:
        mks = [masks]  # one image, one 2-D mask (a stack of masks is a list, whatever its length)
    else:
        mks = list(masks)
    if len(mks) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(mks)} masks")
    if names is not None and len(names) != len(imgs):  # checked before any work is done
        raise ValueError(f"{len(imgs)} images but {len(names)} names")
    if names is not None and len(set(map(str, names))) != len(names):  # the table is keyed by name
        dup = sorted({str(n) for n in names if list(map(str, names)).count(str(n)) > 1})
        raise ValueError(f"duplicate image names in the study: {dup} (give each image its own name)")
    fn = analyze if analyze_fn is None else analyze_fn
    if isinstance(ablations, (str, Ablation)) or callable(ablations):  # one ablation, not its letters
        ablations = [ablations]
    specs: list[AblationSpec] = (["baseline"] if include_baseline else []) + [
        a for a in ablations if not (include_baseline and a == "baseline")
    ]
    bound = [get_ablation(model, s) for s in specs]
    seen = [a.name for a in bound]
    dup = {n for n in seen if seen.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate ablation names in the study: {sorted(dup)}")
    metrics_fn = None
    if any(m is not None for m in mks):
        metrics_fn = localization_metrics
        # checked before any analysis (a wrong mask raised after every image x ablation had run);
        # the size against the image's when the maps are analyze()'s, on the stored grid
        mks = [
            None if mk is None else binary_mask(mk, None if analyze_fn is not None else load_image(im).rgb.shape[:2])
            for im, mk in zip(imgs, mks)
        ]

    inner = unwrapped(model)  # DataParallel around the model: its weights are the model's (analyze reads them so)
    studied = getattr(inner, "weights_info", None)
    # what made each row: the weights as read under its ablation (it may change them in place), or
    # a classic detector (no weights)
    row_whose: dict[str, list[str | None]] = {}
    results: dict[str, list[Result]] = {}
    for ab in bound:
        with ab:
            results[ab.name] = [fn(model, im) for im in imgs]
            now = getattr(inner, "weights_info", None)
        for im, r in zip(imgs, results[ab.name]):
            made = getattr(r, "weights", None)
            if other_weights(made, now):  # its row would compare two models, as one model's ablation
                raise ValueError(
                    f"ablation_study: under {ab.name}, analyze_fn returned the analysis of {weights_label(made)}, "
                    f"not of the studied model ({weights_label(now)}); analyse the model it is given"
                )
            row_whose.setdefault(ab.name, []).append(row_weights(r, now))  # before the relabel
            r.label = ab.name

    img_names = list(names) if names is not None else []
    if not img_names:
        first = next(iter(results.values()))
        for i, r in enumerate(first):
            n = os.path.basename(r.name) if r.name and not r.name.startswith("<") else f"image{i}"
            img_names.append(n if n not in img_names else f"{n}#{i}")
    base = results.get("baseline")  # also when listed by hand with include_baseline=False

    table: list[dict[str, Any]] = []
    for i, im_name in enumerate(img_names):
        for ab_name, rs in results.items():
            r = rs[i]
            row: dict[str, Any] = {
                "image": im_name,
                "ablation": ab_name,
                "score": _num(r.score),
                "det_logit": _num(r.det_logit),
                "delta_score": math.nan,
                "mean_conf": math.nan if r.conf is None else float(np.mean(r.conf)),
                "map_mean": math.nan if r.map is None else float(np.mean(r.map)),
                "map_change": math.nan,
                "weights": row_whose[ab_name][i],
            }
            if base is not None:
                b = base[i]
                if r.score is not None and b.score is not None:
                    row["delta_score"] = float(r.score - b.score)
                if r.map is not None and b.map is not None and r.map.shape == b.map.shape:
                    row["map_change"] = float(np.mean(np.abs(r.map.astype(np.float64) - b.map)))
            if metrics_fn is not None:
                row.update({k: math.nan for k in METRIC_KEYS}, n_forged=math.nan)
                if mks[i] is not None and r.map is not None:
                    lm = metrics_fn(r.map, mks[i])
                    scored = getattr(lm, "n_forged", None)
                    row["n_forged"] = math.nan if scored is None else int(scored)
                    # a region the metric's erosion removes entirely (or an empty mask) is not
                    # scored: an F1 of 0 on every row would read as the detector failing (as sweep)
                    if scored is None or scored > 0:
                        row.update({k: _num(getattr(lm, k, None)) for k in METRIC_KEYS})
            table.append(row)
    return AblationStudy(Table(table), results, img_names, studied)
