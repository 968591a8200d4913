"""``NoiseprintViewer``: a Noiseprint++ map with its local variance and spectrum, or two regions
compared side by side."""

from __future__ import annotations

from typing import Any, Sequence

from trufor_lab.viz.noiseprint import as_map, check_window, compare_regions, plot_noiseprint
from trufor_lab.common.paths import short_name
from trufor_lab.viz.display import display_mean, display_stride, outline
from trufor_lab.widgets.display import Viewer, as_masks, as_titles, new_figure, stored_note, widen_range

__all__ = ["NoiseprintViewer"]


class NoiseprintViewer(Viewer):
    """Noiseprint++ of a result: ``mode="overview"`` (map, local variance, spectrum) or
    ``mode="compare"`` (two regions ``region_a``/``region_b`` = (y0, x0, y1, x1) side by side).
    A result whose raw panel shows something else (``captures["shown"]``, e.g. a classic
    detector's output) is labelled so. A region slider closed below 2 pixels shows 2; a
    ``variance_size`` of 1 or 2 shows 3 (the slider's least), below 1 or NaN is refused.

    ``result`` may also be given as a one-item list (``results=``, as the other viewers take
    them); ``masks`` (one, for that result) is outlined in yellow on the map of the overview;
    ``titles`` (one) replaces the file name in the figure's title."""

    MODES = ("overview", "compare")

    def __init__(
        self,
        result: Any,
        region_a: Sequence[int] | None = None,
        region_b: Sequence[int] | None = None,
        *,
        mode: str = "overview",
        variance_size: int = 15,
        masks: Any = None,
        titles: Any = None,
    ) -> None:
        if isinstance(result, (list, tuple)):  # results=, as every viewer takes them: one here
            if len(result) != 1:
                raise ValueError(f"NoiseprintViewer shows one result, got {len(result)}; make one viewer each")
            result = result[0]
        if callable(getattr(result, "to_result", None)):  # an Attribution: its raw map, named so
            result = result.to_result()
        self.noiseprint = as_map(result)
        #: The ground truth outlined on the map (``masks=``: one, for the one result), or None.
        self.mask = None
        if masks is not None:
            if not hasattr(result, "image"):
                raise TypeError("NoiseprintViewer: masks= needs a Result (a bare map has no image grid to check)")
            self.mask = as_masks([result], masks, "NoiseprintViewer")[0]
        given = as_titles(titles, 1, "NoiseprintViewer")
        name, turned = getattr(result, "name", "") or "", stored_note(result)
        first = given[0] if given else (short_name(name) if name else "")
        self.title = "\n".join(t for t in (first, turned) if t)
        self.label = str((getattr(result, "captures", None) or {}).get("shown", "Noiseprint++"))
        h, w = self.noiseprint.shape
        self._regions_possible = h >= 2 and w >= 2
        if not self._regions_possible and (region_a or region_b or mode == "compare"):
            raise ValueError(f"a {h}x{w} Noiseprint++ map is too small to compare regions (2x2 at least)")
        whole = (0, 0, h, w)
        ra = region_a or ((h // 4, 0, h // 4 + max(2, h // 2), max(2, w // 2)) if self._regions_possible else whole)
        rb = region_b or ((h // 4, w - max(2, w // 2), h // 4 + max(2, h // 2), w) if self._regions_possible else whole)
        super().__init__(dict(mode=mode, variance_size=variance_size, region_a=tuple(ra), region_b=tuple(rb)))
        self._state.update(self._normalize(dict(self._state)))

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        h, w = self.noiseprint.shape
        if "mode" in changes and changes["mode"] not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {changes['mode']!r}")
        if "variance_size" in changes:
            changes["variance_size"] = max(3, check_window(changes["variance_size"], "variance_size"))
        if changes.get("mode") == "compare" and not self._regions_possible:
            raise ValueError(f"a {h}x{w} Noiseprint++ map is too small to compare regions (2x2 at least)")
        for key in ("region_a", "region_b"):
            if key in changes and self._regions_possible:
                y0, x0, y1, x1 = (int(v) for v in changes[key])
                y0, y1 = sorted((min(max(y0, 0), h), min(max(y1, 0), h)))
                x0, x1 = sorted((min(max(x0, 0), w), min(max(x1, 0), w)))
                if y1 - y0 < 2 or x1 - x0 < 2:
                    raise ValueError(f"{key} {tuple(changes[key])} is smaller than 2x2 inside {h}x{w}")
                changes[key] = (y0, x0, y1, x1)
        return changes

    def _make_controls(self, w: Any) -> dict[str, Any]:
        s = self._state
        h, wd = self.noiseprint.shape
        ctrls = {
            "mode": w.ToggleButtons(options=list(self.MODES), value=s["mode"]),
            "variance_size": w.IntSlider(
                value=s["variance_size"], min=3, max=63, step=2, description="variance window"
            ),
        }
        for key in ("region_a", "region_b"):
            r = s[key]
            ctrls[f"{key}_y"] = w.IntRangeSlider(value=(r[0], r[2]), min=0, max=h, description=f"{key[-1]} rows")
            ctrls[f"{key}_x"] = w.IntRangeSlider(value=(r[1], r[3]), min=0, max=wd, description=f"{key[-1]} cols")
        return ctrls

    def _sync_control_options(self) -> None:
        c = (self._controls or {}).get("variance_size")
        if c is not None and c.max < self._state["variance_size"]:  # a window set in code beyond the slider
            c.max = self._state["variance_size"]

    def _control_value(self, key: str) -> Any:
        if key.endswith(("_y", "_x")):
            r = self._state[key[:-2]]
            return (r[0], r[2]) if key.endswith("_y") else (r[1], r[3])
        return self._state[key]

    def _control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        if key.endswith(("_y", "_x")):
            r = self._state[key[:-2]]
            value = widen_range(value, 2, self.noiseprint.shape[0 if key.endswith("_y") else 1])
            new = (value[0], r[1], value[1], r[3]) if key.endswith("_y") else (r[0], value[0], r[2], value[1])
            return {key[:-2]: new}
        return {key: value}

    def render(self):
        s = self._state
        if s["mode"] == "overview":
            fig = new_figure((10.5, 3.8))
            fig = plot_noiseprint(
                self.noiseprint, fig=fig, variance_size=s["variance_size"], title=self.title or None, label=self.label
            )
            if self.mask is not None:  # on the map as drawn (averaged alike), the ground truth in yellow
                outline(fig.axes[0], display_mean(self.mask.astype(float), display_stride(self.mask.shape)))
                fig.axes[0].set_title(f"{self.label}\n(ground truth in yellow)", fontsize=10, parse_math=False)
            return fig
        fig = compare_regions(
            self.noiseprint,
            s["region_a"],
            s["region_b"],
            fig=new_figure((12, 6)),
            variance_size=s["variance_size"],
            label=self.label,
        )
        if self.title:
            fig.suptitle(self.title, fontsize=11, parse_math=False)
        return fig
