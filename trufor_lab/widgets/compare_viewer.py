"""``CompareViewer``: several Results side by side (e.g. the full model and an ablation) with one
set of linked overlay controls."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trufor_lab.viz.figures import (
    crop_region,
    display_stride,
    draw_map,
    draw_overlay,
    for_display,
    frame_panel,
    hidden_color,
    map_cmap,
    robust_limits,
    score_source,
)
from trufor_lab.common.paths import short_name
from trufor_lab.viz.display import outline
from trufor_lab.widgets.display import Viewer, as_masks, as_results, as_titles, new_figure, stored_note
from trufor_lab.widgets.overlay import OverlayControls

__all__ = ["CompareViewer"]


class CompareViewer(OverlayControls, Viewer):
    """Several results side by side with one set of linked controls (same opacity, threshold,
    confidence mask, colour map and zoom for every panel); ``panel`` picks what each column shows:
    ``"overlay"``, ``"map"``, ``"conf"`` or ``"noiseprint"``. The zoom is given in the first
    result's pixels; a result of another size shows the same part of its own picture (the box
    scaled to its size, said in its title).

    Results must be on one grid: mixing a result turned as viewers show the file
    (:meth:`~trufor_lab.inference.result.Result.as_shown`) with one left on its stored grid whose
    EXIF orientation turns it is refused (the same zoom would show different places); call
    ``.as_shown()`` on all of them. The ``"noiseprint"`` panel draws every column showing the same
    kind of raw output on one shared grey scale, so a weaker Noiseprint++ looks weaker; NaN
    confidence or Noiseprint++ pixels are drawn in magenta; the ``"map"`` panel draws the pixels
    hidden by ``threshold`` or ``conf_min`` in a neutral colour (said in the title); a zoom larger
    than 2048 pixels is averaged down over blocks for drawing (display only). An
    :class:`~trufor_lab.interpret.attribution.Attribution` (anything with ``to_result()``) is shown
    as its ``to_result()``.

    ``titles`` (one per result; ``labels``, the second positional argument, is its older name)
    head the columns (default: each result's label or file name); ``masks`` (one per result, in
    order, ``None`` for none) are outlined in yellow on every panel, checked as ResultViewer's."""

    PANELS = ("overlay", "map", "conf", "noiseprint")

    def __init__(
        self,
        results: Sequence[Any],
        labels: Sequence[str] | None = None,
        *,
        opacity: float = 0.5,
        threshold: float = 0.0,
        conf_min: float = 0.0,
        cmap: str = "RdBu_r",
        panel: str = "overlay",
        masks: Any = None,
        titles: Sequence[str] | None = None,
    ) -> None:
        self.results = as_results(results, "CompareViewer")
        if not self.results:
            raise ValueError("CompareViewer needs at least one Result")
        if labels is not None and titles is not None:
            raise ValueError("CompareViewer: give titles= (labels is its older name), not both")
        if labels is not None:
            labels = [labels] if isinstance(labels, str) else list(labels)
            if len(labels) != len(self.results):  # the older message
                raise ValueError(f"{len(labels)} labels for {len(self.results)} results")
        given = as_titles(titles if labels is None else labels, len(self.results), "CompareViewer")
        self.labels = given or [
            r.label or (short_name(r.name) if r.name else f"#{i}") for i, r in enumerate(self.results)
        ]
        self.masks = as_masks(self.results, masks, "CompareViewer")
        _check_one_grid(self.results, self.labels)
        self._shape = tuple(self.results[0].size)
        state = dict(opacity=opacity, threshold=threshold, conf_min=conf_min, cmap=cmap, zoom=None, panel=panel)
        super().__init__(self._normalize(state))

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        if "panel" in changes and changes["panel"] not in self.PANELS:
            raise ValueError(f"panel must be one of {self.PANELS}, got {changes['panel']!r}")
        return self._overlay_normalize(changes, self._shape)

    def _make_controls(self, w: Any) -> dict[str, Any]:
        ctrls = {"panel": w.ToggleButtons(options=list(self.PANELS), value=self._state["panel"])}
        ctrls.update(self._overlay_controls(w, self._shape))
        return ctrls

    def _zoom_of(self, r: Any, zoom: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``zoom`` (first result's pixels) as the same part of ``r``'s picture."""
        (h0, w0), (h, w) = self._shape, tuple(r.size)
        if (h, w) == (h0, w0):
            return zoom
        y0, x0, y1, x1 = zoom
        ya, xa = min(int(y0 * h / h0), h - 1), min(int(x0 * w / w0), w - 1)
        yb, xb = max(round(y1 * h / h0), ya + 1), max(round(x1 * w / w0), xa + 1)
        return ya, xa, min(yb, h), min(xb, w)

    _control_value = OverlayControls._overlay_control_value
    _control_to_state = OverlayControls._overlay_control_to_state
    _sync_control_options = OverlayControls._overlay_sync_options

    def render(self):
        s = self._state
        n = len(self.results)
        fig = new_figure((3.3 * n, 3.7))
        axes = fig.subplots(1, n, squeeze=False)[0]
        columns, samples = [], []  # drawn averaged; colour limits from samples of the values
        for r, mask in zip(self.results, self.masks):
            z = self._zoom_of(r, s["zoom"])
            step = display_stride(crop_region(r.image, z).shape)  # one step for the column's arrays
            panel = s["panel"] if r.map is not None else "noiseprint"
            image = lambda a, z=z, step=step: for_display(crop_region(a, z), step)  # noqa: E731
            values = lambda a, z=z, step=step: self._shrunk(a, z, step)  # noqa: E731  block means, kept
            columns.append((r, panel, image, values, mask))
            samples.append(lambda a, z=z, step=step: np.asarray(crop_region(a, z))[::step, ::step])
        raw = {}  # one grey scale per kind of raw output, shared by the columns that show it
        for (r, panel, _, _, _), sample in zip(columns, samples):  # limits from the maps' values, not averaged
            if panel == "noiseprint":
                raw.setdefault(_raw_name(r), []).append(sample(r.noiseprint))
        limits = {k: robust_limits(np.concatenate([np.ravel(a) for a in v])) for k, v in raw.items()}
        for ax, (r, panel, image, crop, mask), label in zip(axes, columns, self.labels):
            if tuple(r.size) != self._shape:
                label = f"{label} ({r.size[1]}x{r.size[0]}, zoom scaled)"
            if panel != s["panel"]:
                label = f"{label}\n({_raw_name(r)}: no map)"
            conf = crop(r.conf)
            if panel == "overlay":
                draw_overlay(
                    ax,
                    image(r.image),
                    crop(r.map),
                    opacity=s["opacity"],
                    threshold=s["threshold"],
                    conf=conf,
                    conf_min=s["conf_min"],
                    cmap=s["cmap"],
                )
            elif panel == "map":
                heat = crop(r.map)
                hidden = heat < s["threshold"] if s["threshold"] > 0 else np.zeros(heat.shape, bool)
                if conf is not None and s["conf_min"] > 0:
                    hidden |= conf < s["conf_min"]
                draw_map(ax, heat, hidden, cmap=s["cmap"], hidden_color=hidden_color(s["cmap"]))
            elif panel == "conf" and conf is None:
                ax.text(0.5, 0.5, "no confidence map", ha="center", va="center", transform=ax.transAxes)
            elif panel == "conf":
                ax.imshow(conf, cmap=map_cmap("gray"), vmin=0, vmax=1, interpolation="nearest")
            else:
                lo, hi = limits[_raw_name(r)]
                ax.imshow(crop(r.noiseprint), cmap=map_cmap("gray"), vmin=lo, vmax=hi, interpolation="nearest")
            if mask is not None:  # the forged share of each block, outlined at 0.5 (as ResultViewer does)
                outline(ax, crop(mask))
            score = f"\nscore {r.score:.3f}" if r.score is not None else ""
            ax.set_title(f"{label}{score}", fontsize=10, parse_math=False)
            frame_panel(ax)
        title = " / ".join(raw) if s["panel"] == "noiseprint" else s["panel"] + _hidden_words(s)
        if any(m is not None for m in self.masks):
            title += "\n(ground truth in yellow)"
        turned = next((note for note in map(stored_note, self.results) if note), "")
        title += f"\n{turned}" if turned else ""
        whose = sorted({score_source(r) for r in self.results if r.score is not None} - {""})
        title += f"\nscores of {' and '.join(whose)}" if whose else ""  # as ResultViewer's titles say
        fig.suptitle(title, fontsize=10, parse_math=False)
        return fig


def _hidden_words(s: dict[str, Any]) -> str:
    """What the map panel hides (drawn in a neutral colour), for the title; empty otherwise."""
    if s["panel"] != "map":
        return ""
    rules = ([f"map < {s['threshold']:.2f}"] if s["threshold"] > 0 else []) + (
        [f"confidence < {s['conf_min']:.2f}"] if s["conf_min"] > 0 else []
    )
    return f" (hidden: {', '.join(rules)})" if rules else ""


def _raw_name(r: Any) -> str:
    """What a result's raw panel shows (``captures["shown"]``, as :func:`plot_result` titles it)."""
    return (getattr(r, "captures", None) or {}).get("shown", "Noiseprint++")


def _check_one_grid(results: Sequence[Any], labels: Sequence[str]) -> None:
    """Refuse results on different grids: one turned as viewers show the file, another on its
    stored grid although its EXIF orientation turns it."""
    turned = {True: None, False: None}
    for r, label in zip(results, labels):
        if getattr(r, "exif_orientation", None) not in (None, 1):
            turned[bool(getattr(r, "shown", False))] = turned[bool(getattr(r, "shown", False))] or (label, r)
    if turned[True] and turned[False]:
        (a, _), (b, rb) = turned[True], turned[False]
        raise ValueError(
            f"CompareViewer: {a!r} is turned as viewers show the file but {b!r} is on its stored grid "
            f"(EXIF orientation {rb.exif_orientation}); call .as_shown() on all results "
            "(or turn them consistently yourself)"
        )
