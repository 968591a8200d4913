"""``ResultViewer``: one or several Results with the overlay control panel (the localization map
on the image, the map itself and the confidence map)."""

from __future__ import annotations

from typing import Any

from trufor_lab.common.paths import short_name
from trufor_lab.viz.figures import (
    crop_region,
    display_stride,
    draw_map,
    draw_overlay,
    for_display,
    frame_panel,
    hidden_color,
    map_cmap,
    result_title,
    display_limits,
)
from trufor_lab.widgets.display import Viewer, as_masks, as_results, as_titles, new_figure
from trufor_lab.widgets.overlay import OverlayControls

__all__ = ["ResultViewer"]


class ResultViewer(OverlayControls, Viewer):
    """Results with an overlay control panel: opacity, threshold, confidence masking, colour map,
    zoom (``zoom=(y0, x0, y1, x1)``), and an image selector (``index``) for several results.

    Panels: image with the map on top (ground-truth outline when ``masks`` are given, said in
    its title), the localization map (fixed [0, 1] scale) and the confidence ("no confidence
    map" when the result has none; pixels hidden by ``conf_min`` in a neutral colour, said in the
    title); the image (ground truth outlined alike) and Noiseprint++ when there is no map. An
    :class:`~trufor_lab.interpret.attribution.Attribution` (anything with ``to_result()``) is
    shown as its ``to_result()``. A mask is 2-D, boolean, 0/1 or 0/255, on its result's grid
    (turn it too for a result turned :meth:`~trufor_lab.inference.result.Result.as_shown`); a
    bad mask or colormap is refused at construction; ``opacity``, ``threshold`` and ``conf_min``
    outside [0, 1] (or NaN) are refused. ``titles``: one per result, drawn above its own title
    line and named in the image selector. A zoom larger than 2048 pixels is averaged down over
    blocks for drawing (display only; a stride doubled the contrast of Noiseprint++).
    """

    def __init__(
        self,
        results: Any,
        masks: Any = None,
        *,
        opacity: float = 0.5,
        threshold: float = 0.0,
        conf_min: float = 0.0,
        cmap: str = "RdBu_r",
        titles: Any = None,
    ) -> None:
        self.results = as_results(results, "ResultViewer")
        if not self.results:
            raise ValueError("ResultViewer needs at least one Result")
        self.masks = as_masks(self.results, masks, "ResultViewer")
        #: One title per result (``titles=``), above its own title line; None: the results' own.
        self.titles = as_titles(titles, len(self.results), "ResultViewer")
        shape = self.results[0].size
        state = dict(index=0, opacity=opacity, threshold=threshold, conf_min=conf_min, cmap=cmap, zoom=None)
        super().__init__(self._overlay_normalize(state, shape))

    @property
    def result(self) -> Any:
        """The result shown now."""
        return self.results[self._state["index"]]

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        if "index" in changes:
            i = int(changes["index"])
            if not 0 <= i < len(self.results):
                raise IndexError(f"index {i} out of range for {len(self.results)} results")
            changes["index"] = i
        shape = self.results[changes.get("index", self._state["index"])].size
        if "index" in changes and "zoom" not in changes and changes["index"] != self._state["index"]:
            changes["zoom"] = None  # the whole new image
        return self._overlay_normalize(changes, shape)

    def _make_controls(self, w: Any) -> dict[str, Any]:
        ctrls = {}
        if len(self.results) > 1:
            ctrls["index"] = w.Dropdown(
                options=[(f"{i}: {self._title(i) or short_name(r.name)}", i) for i, r in enumerate(self.results)],
                value=self._state["index"],
                description="image",
            )
        ctrls.update(self._overlay_controls(w, self.result.size))
        return ctrls

    def _sync_control_options(self) -> None:
        self._overlay_sync_options()
        h, w_ = self.result.size
        for key, hi in (("zoom_y", h), ("zoom_x", w_)):
            c = self._controls.get(key) if self._controls else None
            if c is not None and c.max != hi:
                c.max = hi

    _control_value = OverlayControls._overlay_control_value
    _control_to_state = OverlayControls._overlay_control_to_state

    def render(self):
        s, r = self._state, self.result
        mask = self.masks[s["index"]]
        z = s["zoom"]
        img = crop_region(r.image, z)
        step = display_stride(img.shape)  # one step for every panel: they stay aligned
        img = for_display(img, step)
        full_mask = None if mask is None else crop_region(mask, z)
        crop_mask = self._shrunk(mask, z, step)  # the forged share of each block, outlined at 0.5
        if r.map is None:
            fig = new_figure((7, 3.6))
            axes = fig.subplots(1, 2, squeeze=False)[0]
            draw_overlay(axes[0], img, None, mask=crop_mask)  # the ground truth outlined, as with a map
            lo, hi = display_limits(crop_region(r.noiseprint, z), step)  # from the values, not averaged
            npm = self._shrunk(r.noiseprint, z, step)
            axes[1].imshow(npm, cmap=map_cmap("gray"), vmin=lo, vmax=hi)
            axes[0].set_title("Image" + mask_note(full_mask), fontsize=10)
            axes[1].set_title(r.captures.get("shown", "Noiseprint++"), fontsize=10, parse_math=False)
            for ax in axes:
                frame_panel(ax)
        else:
            fig = new_figure((10, 3.6))
            axes = fig.subplots(1, 3, squeeze=False)[0]
            heat, conf = self._shrunk(r.map, z, step), self._shrunk(r.conf, z, step)
            draw_overlay(
                axes[0],
                img,
                heat,
                opacity=s["opacity"],
                threshold=s["threshold"],
                conf=conf,
                conf_min=s["conf_min"],
                cmap=s["cmap"],
                mask=crop_mask,
            )
            axes[0].set_title("Overlay" + mask_note(full_mask), fontsize=10)
            hidden = (conf < s["conf_min"]) if conf is not None and s["conf_min"] > 0 else None
            im = draw_map(axes[1], heat, hidden, cmap=s["cmap"], hidden_color=hidden_color(s["cmap"]))
            if s["threshold"] > 0 and min(heat.shape) >= 2:  # a contour needs 2x2 values
                axes[1].contour(heat, levels=[s["threshold"]], colors="k", linewidths=0.8)
            fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
            title = r.captures.get("map_title", "Localization map")
            if hidden is not None:
                title += f"\n(hidden: confidence < {s['conf_min']:.2f})"
            axes[1].set_title(title, fontsize=10, parse_math=False)
            if conf is None:
                axes[2].text(0.5, 0.5, "no confidence map", ha="center", va="center", transform=axes[2].transAxes)
            else:
                im = axes[2].imshow(conf, cmap=map_cmap("gray"), vmin=0, vmax=1, interpolation="nearest")
                fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
            axes[2].set_title("Confidence", fontsize=10)
            for ax in axes:
                frame_panel(ax)
        title = self._title(s["index"])
        fig.suptitle(f"{title}\n{result_title(r)}" if title else result_title(r), fontsize=11, parse_math=False)
        return fig

    def _title(self, index: int) -> str:
        return self.titles[index] if self.titles else ""


def mask_note(mask: Any) -> str:
    """What the image panel shows of the ground truth (a mask with nothing to outline is said)."""
    if mask is None:
        return ""
    if not mask.any() or mask.all():
        return f"\n(ground truth: {'all' if mask.any() else 'nothing'} forged here)"
    return "\n(ground truth in yellow)" if min(mask.shape) >= 2 else "\n(ground truth too thin to outline)"
