"""The overlay controls shared by the result viewers: opacity, threshold, confidence mask,
colour map and zoom (``zoom=(y0, x0, y1, x1)``)."""

from __future__ import annotations

import difflib
from typing import Any, Sequence

from trufor_lab.viz.figures import check01
from trufor_lab.widgets.display import widen_range

__all__ = ["COLORMAPS", "OverlayControls", "check_cmap", "check_zoom"]

COLORMAPS = ("RdBu_r", "jet", "viridis", "magma", "inferno", "gray")


def check_zoom(zoom: Sequence[int] | None, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    if zoom is None:
        return 0, 0, shape[0], shape[1]
    y0, x0, y1, x1 = (int(v) for v in zoom)
    y0, y1 = sorted((min(max(y0, 0), shape[0]), min(max(y1, 0), shape[0])))
    x0, x1 = sorted((min(max(x0, 0), shape[1]), min(max(x1, 0), shape[1])))
    if y1 - y0 < 1 or x1 - x0 < 1:
        raise ValueError(f"zoom {tuple(zoom)} is empty inside a {shape[0]}x{shape[1]} image")
    return y0, x0, y1, x1


def check_cmap(name: Any) -> Any:
    """``name`` if matplotlib knows the colormap (or a Colormap object itself), else a one-line
    refusal with the nearest names (checked before it becomes the state: a bad name made every
    later redraw fail)."""
    import matplotlib  # lazy: matplotlib takes about a second to import; only drawing needs it

    if (isinstance(name, str) and name in matplotlib.colormaps) or isinstance(name, matplotlib.colors.Colormap):
        return name
    known = list(matplotlib.colormaps)
    same = [n for n in known if n.lower() == str(name).lower()]
    close = same or difflib.get_close_matches(str(name), known, n=2)
    raise ValueError(
        f"unknown colormap {name!r}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
    )


def _cmap_options(cmaps: list[Any]) -> list[tuple[str, Any]]:
    """(label, colormap) pairs for the dropdown, each once: a name, or a Colormap object by its name."""
    out: list[tuple[str, Any]] = []
    for c in cmaps:
        if not any(v is c or v == c for _, v in out):
            out.append((c if isinstance(c, str) else getattr(c, "name", repr(c)), c))
    return out


class OverlayControls:
    """Opacity, threshold, confidence mask, colour map and zoom: shared by the result viewers.
    ``opacity``, ``threshold`` and ``conf_min`` are numbers in [0, 1]; others are refused."""

    _state: dict[str, Any]
    _controls: dict[str, Any] | None

    def _overlay_normalize(self, changes: dict[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
        for key in ("opacity", "threshold", "conf_min"):
            if key in changes:
                changes[key] = check01(changes[key], key)
        if "cmap" in changes:
            changes["cmap"] = check_cmap(changes["cmap"])
        if "zoom" in changes:
            changes["zoom"] = check_zoom(changes["zoom"], shape)
        return changes

    def _overlay_controls(self, w: Any, shape: tuple[int, int]) -> dict[str, Any]:
        s = self._state
        style = {"description_width": "initial"}
        return {
            "opacity": w.FloatSlider(value=s["opacity"], min=0, max=1, step=0.05, description="opacity", style=style),
            "threshold": w.FloatSlider(
                value=s["threshold"], min=0, max=1, step=0.05, description="threshold", style=style
            ),
            "conf_min": w.FloatSlider(
                value=s["conf_min"], min=0, max=1, step=0.05, description="hide conf <", style=style
            ),
            "cmap": w.Dropdown(
                options=_cmap_options([s["cmap"], *COLORMAPS]),
                value=s["cmap"],
                description="colormap",
                style=style,
            ),
            "zoom_y": w.IntRangeSlider(
                value=(s["zoom"][0], s["zoom"][2]), min=0, max=shape[0], description="rows", style=style
            ),
            "zoom_x": w.IntRangeSlider(
                value=(s["zoom"][1], s["zoom"][3]), min=0, max=shape[1], description="cols", style=style
            ),
        }

    def _overlay_sync_options(self) -> None:
        """A colormap set in code that the dropdown lacks joins its options (the dropdown refused
        it, and state and control parted)."""
        c = (self._controls or {}).get("cmap")
        if c is not None and not any(v is self._state["cmap"] or v == self._state["cmap"] for _, v in c.options):
            c.options = _cmap_options([*(v for _, v in c.options), self._state["cmap"]])

    def _overlay_control_value(self, key: str) -> Any:
        z = self._state["zoom"]
        if key == "zoom_y":
            return z[0], z[2]
        if key == "zoom_x":
            return z[1], z[3]
        return self._state[key]

    def _overlay_control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        z = self._state["zoom"]
        if key in ("zoom_y", "zoom_x"):  # a drag that closed the range shows one pixel there
            value = widen_range(value, 1, int((self._controls or {})[key].max))
        if key == "zoom_y":
            return {"zoom": (value[0], z[1], value[1], z[3])}
        if key == "zoom_x":
            return {"zoom": (z[0], value[0], z[2], value[1])}
        return {key: value}
