"""``CompareViewer``: several Results side by side (e.g. the full model and an ablation) with one
set of linked overlay controls."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trufor_lab.viz.figures import crop_region, draw_overlay, robust_limits
from trufor_lab.widgets.display import Viewer, as_list, clip01, new_figure
from trufor_lab.widgets.overlay import OverlayControls

__all__ = ["CompareViewer"]


class CompareViewer(OverlayControls, Viewer):
    """Several results side by side with one set of linked controls (same opacity, threshold,
    confidence mask, colour map and zoom for every panel); ``panel`` picks what each column shows:
    ``"overlay"``, ``"map"``, ``"conf"`` or ``"noiseprint"``. The zoom is given in the first
    result's pixels; a result of another size shows the same part of its own picture (the box
    scaled to its size, said in its title)."""

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
    ) -> None:
        self.results = as_list(results)
        if not self.results:
            raise ValueError("CompareViewer needs at least one Result")
        self.labels = (
            list(labels) if labels is not None else [r.label or r.name or f"#{i}" for i, r in enumerate(self.results)]
        )
        if len(self.labels) != len(self.results):
            raise ValueError(f"{len(self.labels)} labels for {len(self.results)} results")
        self._shape = tuple(self.results[0].size)
        super().__init__(
            dict(
                opacity=clip01(opacity),
                threshold=clip01(threshold),
                conf_min=clip01(conf_min),
                cmap=cmap,
                zoom=(0, 0, *self._shape),
                panel=panel,
            )
        )
        self._normalize({"panel": panel})

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

    def render(self):
        s = self._state
        n = len(self.results)
        fig = new_figure((3.3 * n, 3.7))
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, r, label in zip(axes, self.results, self.labels):
            z = self._zoom_of(r, s["zoom"])
            panel = s["panel"] if r.map is not None else "noiseprint"
            if tuple(r.size) != self._shape:
                label = f"{label} ({r.size[1]}x{r.size[0]}, zoom scaled)"
            if panel != s["panel"]:
                label = f"{label}\n(Noiseprint++: no map)"
            if panel == "overlay":
                draw_overlay(
                    ax,
                    crop_region(r.image, z),
                    crop_region(r.map, z),
                    opacity=s["opacity"],
                    threshold=s["threshold"],
                    conf=crop_region(r.conf, z),
                    conf_min=s["conf_min"],
                    cmap=s["cmap"],
                )
            elif panel == "map":
                heat = crop_region(r.map, z)
                hidden = heat < s["threshold"] if s["threshold"] > 0 else np.zeros(heat.shape, bool)
                if s["conf_min"] > 0:
                    hidden |= crop_region(r.conf, z) < s["conf_min"]
                ax.imshow(np.ma.masked_array(heat, hidden), cmap=s["cmap"], vmin=0, vmax=1, interpolation="nearest")
            elif panel == "conf":
                ax.imshow(crop_region(r.conf, z), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                npm = crop_region(r.noiseprint, z)
                lo, hi = robust_limits(npm)
                ax.imshow(npm, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            score = f"\nscore {r.score:.3f}" if r.score is not None else ""
            ax.set_title(f"{label}{score}", fontsize=10, parse_math=False)
            ax.set_axis_off()
        fig.suptitle(s["panel"], fontsize=10)
        return fig
