"""Interactive viewers (ipywidgets) for results, comparisons, features and Noiseprint++.

Every viewer keeps its state in a dict, renders it with matplotlib (no pyplot) into PNG bytes
and shows them in an ``ipywidgets.Image``. The Python API is the same with or without a
front end: ``viewer.set(opacity=0.8)`` changes state and redraws, ``viewer.png`` is the
current picture, ``viewer.controls`` are the widgets (changing one calls ``set``). Where
widgets cannot render (ipywidgets missing, static notebook renderers) the viewer displays as
a static PNG; displaying never raises.

>>> ResultViewer([r1, r2], masks=[m1, m2])          # overlay, threshold, confidence mask, zoom
>>> CompareViewer([r, r_ablated], ["full", "no FRM"])
>>> FeatureExplorer(model, "photo.jpg")               # one forward, then browse captures
>>> NoiseprintViewer(r)                               # map, variance, spectrum, two regions
"""
from __future__ import annotations

import base64
import difflib
import fnmatch
import html
import io
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from trufor_lab.inference.analyze import analyze
from trufor_lab.interpret.features import channel_stats, pca_rgb, to_chw
from trufor_lab.model.capture import layer_catalog, resolve_names
from trufor_lab.viz.figures import (
    crop_region,
    draw_overlay,
    plot_feature_grid,
    robust_limits,
)
from trufor_lab.viz.noiseprint import compare_regions, plot_noiseprint

__all__ = ["CompareViewer", "FeatureExplorer", "NoiseprintViewer", "ResultViewer", "widgets_available"]

COLORMAPS = ("RdBu_r", "jet", "viridis", "magma", "inferno", "gray")


def widgets_available() -> bool:
    """Whether ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401  # lazy: the widget stack is only needed in a notebook
    except Exception:
        return False
    return True


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # lazy: matplotlib takes about a second to import; only drawing needs it
    return Figure(figsize=figsize)


class StaticFallbackDisplay:
    """Notebook display for objects with a ``widget`` and a ``_static_png()``: the widget view
    where widgets render, with the static PNG in the same bundle as a fallback; never raises."""

    widget: Any

    def _static_png(self) -> bytes | None:  # pragma: no cover - overridden
        return None

    def _repr_png_(self) -> bytes | None:
        return self._static_png()

    def _repr_html_(self) -> str:
        png = self._static_png()
        if png is None:
            return f"<pre>{html.escape(repr(self))} (could not render)</pre>"
        return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view where widgets render, with the static PNG as fallback in the same bundle."""
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        png = self._static_png()
        if png is not None:
            bundle["image/png"] = png
        try:
            box = self.widget
            if box is not None:
                view = box._repr_mimebundle_()
                if view:
                    bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        except Exception:
            pass
        return bundle


class _Viewer(StaticFallbackDisplay):
    """State dict -> matplotlib Figure -> PNG bytes -> ``ipywidgets.Image``; controls call :meth:`set`."""

    dpi: int = 72

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = dict(state)
        self._png: bytes = b""
        self._controls: dict[str, Any] | None = None
        self._image_widget: Any = None
        self._box: Any = None
        self._syncing = False
        #: Number of renders so far (tests and profiling).
        self.redraw_count = 0

    # -- to implement -----------------------------------------------------------------------
    def render(self):
        """A matplotlib Figure of the current state."""
        raise NotImplementedError

    def _make_controls(self, w: Any) -> dict[str, Any]:
        """``{key: widget}``; a widget's value maps to state via :meth:`_control_to_state`."""
        return {}

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate/convert changes (subclasses clip values, expand convenience keys)."""
        return changes

    def _after_change(self, changed: set[str]) -> None:
        """Adjust dependent state after ``changed`` keys (e.g. reset zoom on a new image)."""

    def _control_value(self, key: str) -> Any:
        return self._state[key]

    def _control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        return {key: value}

    def _sync_control_options(self) -> None:
        """Update control ranges/options that depend on the state."""

    # -- API --------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the current state."""
        return dict(self._state)

    def set(self, **changes: Any) -> bytes:
        """Change state (keys of :attr:`state`) and redraw; returns the new PNG bytes."""
        changes = self._normalize(dict(changes))
        unknown = [k for k in changes if k not in self._state]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self._state), n=1)
            raise KeyError(f"unknown viewer setting {unknown[0]!r}"
                           + (f"; did you mean {close[0]!r}?" if close else f"; one of {sorted(self._state)}"))
        changed = {k for k, v in changes.items() if _differs(self._state[k], v)}
        self._state.update(changes)
        if changed:
            self._after_change(changed)
        self._sync_controls()
        return self.redraw()

    def redraw(self) -> bytes:
        """Render the current state to PNG (and into the widget); returns the bytes."""
        fig = self.render()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        self._png = buf.getvalue()
        self.redraw_count += 1
        if self._image_widget is not None:
            self._image_widget.value = self._png
        return self._png

    @property
    def png(self) -> bytes:
        """The current picture as PNG bytes (rendered on first access)."""
        if not self._png:
            self.redraw()
        return self._png

    @property
    def controls(self) -> dict[str, Any]:
        """The control widgets by state key (empty without ipywidgets)."""
        self.widget  # noqa: B018  (builds them)
        return dict(self._controls or {})

    @property
    def widget(self) -> Any:
        """The ipywidgets UI (controls above the picture), or ``None`` without ipywidgets."""
        if self._box is not None:
            return self._box
        try:
            import ipywidgets as w  # lazy: the widget stack is only needed in a notebook
        except Exception:
            self._controls = {}
            return None
        self._controls = self._make_controls(w)
        for key, ctrl in self._controls.items():
            ctrl.observe(self._observer(key), names="value")
        self._image_widget = w.Image(value=self.png, format="png", layout=w.Layout(max_width="100%"))
        rows = [w.HBox(list(self._controls.values())[i:i + 3]) for i in range(0, len(self._controls), 3)]
        self._box = w.VBox([*rows, self._image_widget])
        self._sync_controls()
        return self._box

    def _observer(self, key: str) -> Callable[[dict], None]:
        def on_change(change: dict) -> None:
            if not self._syncing:
                self.set(**self._control_to_state(key, change["new"]))
        return on_change

    def _sync_controls(self) -> None:
        if not self._controls:
            return
        self._syncing = True
        try:
            self._sync_control_options()
            for key, ctrl in self._controls.items():
                v = self._control_value(key)
                if _differs(ctrl.value, v):
                    ctrl.value = v
        finally:
            self._syncing = False

    # -- display ----------------------------------------------------------------------------
    def _static_png(self) -> bytes | None:
        try:
            return self.png
        except Exception:
            return None


    def show(self) -> None:
        """Display in the notebook (the widget, or the static picture where widgets cannot render)."""
        try:
            from IPython.display import display  # lazy: the widget stack is only needed in a notebook
        except Exception:
            return
        display(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._state.items())})"


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        a = tuple(a)
    if isinstance(b, list):
        b = tuple(b)
    try:
        return bool(a != b)
    except Exception:
        return True


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _clip01(v: Any) -> float:
    return float(min(1.0, max(0.0, float(v))))


def _check_zoom(zoom: Sequence[int] | None, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    if zoom is None:
        return 0, 0, shape[0], shape[1]
    y0, x0, y1, x1 = (int(v) for v in zoom)
    y0, y1 = sorted((min(max(y0, 0), shape[0]), min(max(y1, 0), shape[0])))
    x0, x1 = sorted((min(max(x0, 0), shape[1]), min(max(x1, 0), shape[1])))
    if y1 - y0 < 1 or x1 - x0 < 1:
        raise ValueError(f"zoom {tuple(zoom)} is empty inside a {shape[0]}x{shape[1]} image")
    return y0, x0, y1, x1


class _OverlayControls:
    """Opacity, threshold, confidence mask, colour map and zoom: shared by the result viewers."""

    _state: dict[str, Any]

    def _overlay_normalize(self, changes: dict[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
        for key in ("opacity", "threshold", "conf_min"):
            if key in changes:
                changes[key] = _clip01(changes[key])
        if "cmap" in changes:
            import matplotlib  # lazy: matplotlib takes about a second to import; only drawing needs it
            if changes["cmap"] not in matplotlib.colormaps:
                raise ValueError(f"unknown colormap {changes['cmap']!r}")
        if "zoom" in changes:
            changes["zoom"] = _check_zoom(changes["zoom"], shape)
        return changes

    def _overlay_controls(self, w: Any, shape: tuple[int, int]) -> dict[str, Any]:
        s = self._state
        style = {"description_width": "initial"}
        return {
            "opacity": w.FloatSlider(value=s["opacity"], min=0, max=1, step=0.05, description="opacity", style=style),
            "threshold": w.FloatSlider(value=s["threshold"], min=0, max=1, step=0.05, description="threshold",
                                       style=style),
            "conf_min": w.FloatSlider(value=s["conf_min"], min=0, max=1, step=0.05,
                                      description="hide conf <", style=style),
            "cmap": w.Dropdown(options=list(dict.fromkeys([s["cmap"], *COLORMAPS])), value=s["cmap"],
                               description="colormap", style=style),
            "zoom_y": w.IntRangeSlider(value=(s["zoom"][0], s["zoom"][2]), min=0, max=shape[0], description="rows",
                                       style=style),
            "zoom_x": w.IntRangeSlider(value=(s["zoom"][1], s["zoom"][3]), min=0, max=shape[1], description="cols",
                                       style=style),
        }

    def _overlay_control_value(self, key: str) -> Any:
        z = self._state["zoom"]
        if key == "zoom_y":
            return z[0], z[2]
        if key == "zoom_x":
            return z[1], z[3]
        return self._state[key]

    def _overlay_control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        z = self._state["zoom"]
        if key == "zoom_y":
            return {"zoom": (value[0], z[1], value[1], z[3])}
        if key == "zoom_x":
            return {"zoom": (z[0], value[0], z[2], value[1])}
        return {key: value}


def _title(result: Any) -> str:
    t = result.name or "image"
    if getattr(result, "label", None):
        t = f"{result.label}: {t}"
    if result.score is not None:
        t += f"  (score {result.score:.3f})"
    return t


class ResultViewer(_OverlayControls, _Viewer):
    """Results with an overlay control panel: opacity, threshold, confidence masking, colour map,
    zoom (``zoom=(y0, x0, y1, x1)``), and an image selector (``index``) for several results.

    Panels: image with the map on top (ground-truth outline when ``masks`` are given), the
    localization map (fixed [0, 1] scale) and the confidence; Noiseprint++ when there is no map.
    """

    def __init__(self, results: Any, masks: Any = None, *, opacity: float = 0.5, threshold: float = 0.0,
                 conf_min: float = 0.0, cmap: str = "RdBu_r") -> None:
        self.results = _as_list(results)
        if not self.results:
            raise ValueError("ResultViewer needs at least one Result")
        self.masks = _as_list(masks) + [None] * (len(self.results) - len(_as_list(masks)))
        shape = self.results[0].size
        super().__init__(dict(index=0, opacity=_clip01(opacity), threshold=_clip01(threshold),
                              conf_min=_clip01(conf_min), cmap=cmap, zoom=(0, 0, shape[0], shape[1])))

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
            ctrls["index"] = w.Dropdown(options=[(f"{i}: {r.name or 'image'}", i) for i, r in enumerate(self.results)],
                                        value=self._state["index"], description="image")
        ctrls.update(self._overlay_controls(w, self.result.size))
        return ctrls

    def _sync_control_options(self) -> None:
        h, w_ = self.result.size
        for key, hi in (("zoom_y", h), ("zoom_x", w_)):
            c = self._controls.get(key) if self._controls else None
            if c is not None and c.max != hi:
                c.max = hi

    _control_value = _OverlayControls._overlay_control_value
    _control_to_state = _OverlayControls._overlay_control_to_state

    def render(self):
        s, r = self._state, self.result
        mask = self.masks[s["index"]]
        z = s["zoom"]
        img = crop_region(r.image, z)
        crop_mask = None if mask is None else crop_region(np.asarray(mask), z)
        if r.map is None:
            fig = _figure((7, 3.6))
            axes = fig.subplots(1, 2, squeeze=False)[0]
            axes[0].imshow(img)
            npm = crop_region(r.noiseprint, z)
            lo, hi = robust_limits(npm)
            axes[1].imshow(npm, cmap="gray", vmin=lo, vmax=hi)
            axes[0].set_title("Image", fontsize=10)
            axes[1].set_title("Noiseprint++", fontsize=10)
            for ax in axes:
                ax.set_axis_off()
        else:
            fig = _figure((10, 3.6))
            axes = fig.subplots(1, 3, squeeze=False)[0]
            heat, conf = crop_region(r.map, z), crop_region(r.conf, z)
            draw_overlay(axes[0], img, heat, opacity=s["opacity"], threshold=s["threshold"], conf=conf,
                         conf_min=s["conf_min"], cmap=s["cmap"], mask=crop_mask)
            axes[0].set_title("Overlay", fontsize=10)
            shown = np.ma.masked_array(heat, (conf < s["conf_min"]) if s["conf_min"] > 0 else False)
            im = axes[1].imshow(shown, cmap=s["cmap"], vmin=0, vmax=1, interpolation="nearest")
            if s["threshold"] > 0:
                axes[1].contour(heat, levels=[s["threshold"]], colors="k", linewidths=0.8)
            fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
            axes[1].set_title("Localization map", fontsize=10)
            im = axes[2].imshow(conf, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
            axes[2].set_title("Confidence", fontsize=10)
            for ax in axes:
                ax.set_axis_off()
        fig.suptitle(_title(r), fontsize=11)
        return fig


class CompareViewer(_OverlayControls, _Viewer):
    """Several results side by side with one set of linked controls (same opacity, threshold,
    confidence mask, colour map and zoom for every panel); ``panel`` picks what each column shows:
    ``"overlay"``, ``"map"``, ``"conf"`` or ``"noiseprint"``."""

    PANELS = ("overlay", "map", "conf", "noiseprint")

    def __init__(self, results: Sequence[Any], labels: Sequence[str] | None = None, *, opacity: float = 0.5,
                 threshold: float = 0.0, conf_min: float = 0.0, cmap: str = "RdBu_r", panel: str = "overlay") -> None:
        self.results = _as_list(results)
        if not self.results:
            raise ValueError("CompareViewer needs at least one Result")
        self.labels = list(labels) if labels is not None else [
            r.label or r.name or f"#{i}" for i, r in enumerate(self.results)]
        if len(self.labels) != len(self.results):
            raise ValueError(f"{len(self.labels)} labels for {len(self.results)} results")
        self._shape = (min(r.size[0] for r in self.results), min(r.size[1] for r in self.results))
        super().__init__(dict(opacity=_clip01(opacity), threshold=_clip01(threshold), conf_min=_clip01(conf_min),
                              cmap=cmap, zoom=(0, 0, *self._shape), panel=panel))
        self._normalize({"panel": panel})

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        if "panel" in changes and changes["panel"] not in self.PANELS:
            raise ValueError(f"panel must be one of {self.PANELS}, got {changes['panel']!r}")
        return self._overlay_normalize(changes, self._shape)

    def _make_controls(self, w: Any) -> dict[str, Any]:
        ctrls = {"panel": w.ToggleButtons(options=list(self.PANELS), value=self._state["panel"])}
        ctrls.update(self._overlay_controls(w, self._shape))
        return ctrls

    _control_value = _OverlayControls._overlay_control_value
    _control_to_state = _OverlayControls._overlay_control_to_state

    def render(self):
        s = self._state
        n = len(self.results)
        fig = _figure((3.3 * n, 3.7))
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, r, label in zip(axes, self.results, self.labels):
            z = s["zoom"]
            panel = s["panel"] if r.map is not None else "noiseprint"
            if panel == "overlay":
                draw_overlay(ax, crop_region(r.image, z), crop_region(r.map, z), opacity=s["opacity"],
                             threshold=s["threshold"], conf=crop_region(r.conf, z), conf_min=s["conf_min"],
                             cmap=s["cmap"])
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
            ax.set_title(f"{label}{score}", fontsize=10)
            ax.set_axis_off()
        fig.suptitle(s["panel"], fontsize=10)
        return fig


# -- features ---------------------------------------------------------------------------------
_STAGE_RE = re.compile(r"^(rgb|noiseprint)\.stage(\d+)\.(patch_embed|block\d+|out)$")
_FUSION_RE = re.compile(r"^fusion\.stage(\d+)\.(frm)\.(rgb|noiseprint)$|^fusion\.stage(\d+)\.(ffm)$")
_DECODER_RE = re.compile(r"^decoder\.(anomaly|confidence)\.(c(\d+)|fused|logits)$")
_DNCNN_RE = re.compile(r"^noiseprint\.dncnn\.(level\d+)$|^(noiseprint)$")

#: What :class:`FeatureExplorer` captures by default.
EXPLORER_LAYERS = ("rgb.stage*.patch_embed", "rgb.stage*.block*[0-9]", "rgb.stage*.out",
                   "noiseprint.stage*.patch_embed", "noiseprint.stage*.block*[0-9]", "noiseprint.stage*.out",
                   "fusion.*", "decoder.*")


def _explorer_key(name: str) -> tuple[str, int, str] | None:
    """Catalog name -> (branch, stage, layer) for the explorer's three pickers."""
    if m := _STAGE_RE.match(name):
        return m.group(1), int(m.group(2)), m.group(3)
    if m := _FUSION_RE.match(name):
        if m.group(1):
            return m.group(3), int(m.group(1)), "frm"
        return "fused", int(m.group(4)), "ffm"
    if m := _DECODER_RE.match(name):
        head, what, idx = m.groups()
        return "decoder", int(idx) if idx else 1, head if idx else f"{head}.{what}"
    if m := _DNCNN_RE.match(name):
        return "dncnn", 0, m.group(1) or "output"
    return None


class FeatureExplorer(_Viewer):
    """Browse a model's intermediate features for one image.

    Pick ``branch`` (rgb, noiseprint, fused, decoder), ``stage`` and ``layer``; ``mode`` shows one
    ``channel``, a ``grid`` of channels (ranked by energy, starting at rank ``channel``) or a ``pca``
    picture; ``side_by_side`` shows RGB, Noiseprint++ and fused maps of the stage together.
    The model runs once, in the constructor (:func:`trufor_lab.inference.analyze` with captures); every
    control only re-renders.
    """

    MODES = ("channel", "grid", "pca")

    def __init__(self, model: Any, image: Any, *, layers: Sequence[str] = EXPLORER_LAYERS,
                 max_elements: int | None = 4_000_000, grid_size: int = 16) -> None:
        catalog = layer_catalog(model)
        wanted = [n for n in resolve_names(catalog, [p for p in layers if _matches_any(catalog, p)] or ["*"])
                  if catalog[n].kind != "attention" and _explorer_key(n)]
        if not wanted:  # e.g. Noiseprint++ alone
            wanted = [n for n in catalog if _explorer_key(n)]
        self.result = analyze(model, image, capture=wanted, max_elements=max_elements)
        self.captures: Mapping[str, Any] = self.result.captures
        self.tree: dict[tuple[str, int, str], str] = {}
        for n in self.captures:
            key = _explorer_key(n)
            if key is not None and getattr(self.captures[n], "ndim", 0) == 4:
                self.tree[key] = n
        if not self.tree:
            raise ValueError("nothing to explore: no feature map was captured")
        self.grid_size = grid_size
        self._arrays: dict[str, np.ndarray] = {}
        self._pca: dict[str, Any] = {}
        self._order: dict[str, np.ndarray] = {}
        branch, stage, layer = next(iter(self.tree))
        for pref in (("rgb", 1, "out"), ("fused", 1, "ffm")):
            if pref in self.tree:
                branch, stage, layer = pref
                break
        super().__init__(dict(branch=branch, stage=stage, layer=layer, mode="pca", channel=0, side_by_side=False))

    # -- cached views of the captures --------------------------------------------------------
    @property
    def name(self) -> str:
        """Catalog name of the map shown now."""
        s = self._state
        return self.tree[(s["branch"], s["stage"], s["layer"])]

    def array(self, name: str) -> np.ndarray:
        """The capture ``name`` as a cached ``(C, H, W)`` numpy array."""
        if name not in self._arrays:
            self._arrays[name] = to_chw(self.captures[name]).astype(np.float32)
        return self._arrays[name]

    def pca(self, name: str) -> Any:
        if name not in self._pca:
            self._pca[name] = pca_rgb(self.array(name), name=name)
        return self._pca[name]

    def ranked_channels(self, name: str) -> np.ndarray:
        if name not in self._order:
            self._order[name] = channel_stats(self.array(name)).top(self.array(name).shape[0])
        return self._order[name]

    def options(self, branch: str | None = None, stage: int | None = None) -> dict[str, list]:
        """Choices for the pickers given ``branch`` and ``stage``."""
        branch = branch or self._state["branch"]
        stage = self._state["stage"] if stage is None else stage
        branches = list(dict.fromkeys(k[0] for k in self.tree))
        stages = sorted({k[1] for k in self.tree if k[0] == branch})
        layers = [k[2] for k in self.tree if k[0] == branch and k[1] == stage]
        return {"branch": branches, "stage": stages, "layer": layers}

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        s = {**self._state, **changes}
        if "mode" in changes and changes["mode"] not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {changes['mode']!r}")
        opts = self.options(s["branch"], 0)
        if s["branch"] not in opts["branch"]:
            raise ValueError(f"branch must be one of {opts['branch']}, got {s['branch']!r}")
        opts = self.options(s["branch"], s["stage"])
        if s["stage"] not in opts["stage"]:
            changes["stage"] = s["stage"] = opts["stage"][0]
            opts = self.options(s["branch"], s["stage"])
        if s["layer"] not in opts["layer"]:
            if "layer" in changes and not {"branch", "stage"} & set(changes):
                raise ValueError(f"layer must be one of {opts['layer']}, got {s['layer']!r}")
            same = [lay for lay in opts["layer"] if lay.startswith(str(s["layer"]).split(".")[0])]
            changes["layer"] = (same or opts["layer"])[0]
        if "channel" in changes:
            changes["channel"] = max(0, int(changes["channel"]))
        if "side_by_side" in changes:
            changes["side_by_side"] = bool(changes["side_by_side"])
        return changes

    def _after_change(self, changed: set[str]) -> None:
        c = self.array(self.name).shape[0]
        if self._state["channel"] >= c:
            self._state["channel"] = c - 1

    def _make_controls(self, w: Any) -> dict[str, Any]:
        s, o = self._state, self.options()
        return {
            "branch": w.Dropdown(options=o["branch"], value=s["branch"], description="branch"),
            "stage": w.Dropdown(options=o["stage"], value=s["stage"], description="stage"),
            "layer": w.Dropdown(options=o["layer"], value=s["layer"], description="layer"),
            "mode": w.ToggleButtons(options=list(self.MODES), value=s["mode"]),
            "channel": w.IntSlider(value=s["channel"], min=0, max=self.array(self.name).shape[0] - 1,
                                   description="channel"),
            "side_by_side": w.Checkbox(value=s["side_by_side"], description="RGB | Noiseprint++ | fused"),
        }

    def _sync_control_options(self) -> None:
        o = self.options()
        for key in ("branch", "stage", "layer"):
            c = self._controls[key]
            if list(c.options) != list(o[key]):
                c.options = o[key]
        ch = self._controls["channel"]
        top = self.array(self.name).shape[0] - 1
        if ch.max != top:
            ch.max = top

    def _side_names(self) -> list[tuple[str, str]]:
        s = self._state
        layer = s["layer"] if s["branch"] in ("rgb", "noiseprint") else "out"
        out = []
        for branch, label in (("rgb", "RGB"), ("noiseprint", "Noiseprint++")):
            key = (branch, s["stage"], layer)
            if key not in self.tree:
                key = (branch, s["stage"], "out")
            if key in self.tree:
                out.append((self.tree[key], f"{label} {key[2]}"))
        if ("fused", s["stage"], "ffm") in self.tree:
            out.append((self.tree[("fused", s["stage"], "ffm")], "fused (FFM)"))
        return out

    def _draw_map(self, ax, name: str, label: str) -> None:
        s = self._state
        a = self.array(name)
        if s["mode"] == "pca":
            p = self.pca(name)
            ax.imshow(p.image, interpolation="nearest")
            ax.set_title(f"{label}\nPCA ({p.explained.sum():.0%} var)", fontsize=9)
        else:
            c = min(s["channel"], a.shape[0] - 1)
            if s["mode"] == "grid" or s["side_by_side"]:
                c = int(self.ranked_channels(name)[c])
            lo, hi = robust_limits(a[c])
            ax.imshow(a[c], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{label}\nch {c}", fontsize=9)
        ax.set_axis_off()

    def render(self):
        s = self._state
        if s["side_by_side"]:
            names = self._side_names()
            fig = _figure((3.2 * len(names), 3.6))
            for ax, (name, label) in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
                self._draw_map(ax, name, label)
            fig.suptitle(f"stage {s['stage']}  ({s['mode']})", fontsize=10)
            return fig
        name = self.name
        a = self.array(name)
        if s["mode"] == "grid":
            ranked = self.ranked_channels(name)
            start = min(s["channel"], max(0, len(ranked) - self.grid_size))
            chans = ranked[start:start + self.grid_size]
            ncols = int(np.ceil(np.sqrt(len(chans))))
            fig = _figure((1.6 * ncols + 0.5, 1.6 * int(np.ceil(len(chans) / ncols)) + 0.6))
            plot_feature_grid(a, channels=chans, ncols=ncols, fig=fig,
                              title=f"{name}: channels ranked {start}..{start + len(chans) - 1} by energy")
            return fig
        fig = _figure((4.6, 4.4))
        ax = fig.add_subplot(1, 1, 1)
        self._draw_map(ax, name, f"{name} {tuple(a.shape)}")
        return fig


def _matches_any(catalog: Mapping[str, Any], pattern: str) -> bool:
    """Whether ``pattern`` (a name or glob) matches anything in ``catalog``."""
    return pattern in catalog or bool(fnmatch.filter(catalog, pattern))


# -- Noiseprint++ ------------------------------------------------------------------------------
class NoiseprintViewer(_Viewer):
    """Noiseprint++ of a result: ``mode="overview"`` (map, local variance, spectrum) or
    ``mode="compare"`` (two regions ``region_a``/``region_b`` = (y0, x0, y1, x1) side by side)."""

    MODES = ("overview", "compare")

    def __init__(self, result: Any, region_a: Sequence[int] | None = None, region_b: Sequence[int] | None = None,
                 *, mode: str = "overview", variance_size: int = 15) -> None:
        self.noiseprint = np.asarray(getattr(result, "noiseprint", result), dtype=np.float64)
        self.title = getattr(result, "name", "") or ""
        h, w = self.noiseprint.shape
        ra = region_a or (h // 4, 0, h // 4 + max(2, h // 2), max(2, w // 2))
        rb = region_b or (h // 4, w - max(2, w // 2), h // 4 + max(2, h // 2), w)
        super().__init__(dict(mode=mode, variance_size=int(variance_size), region_a=tuple(ra), region_b=tuple(rb)))
        self._state.update(self._normalize(dict(self._state)))

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        h, w = self.noiseprint.shape
        if "mode" in changes and changes["mode"] not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {changes['mode']!r}")
        if "variance_size" in changes:
            changes["variance_size"] = max(3, int(changes["variance_size"]))
        for key in ("region_a", "region_b"):
            if key in changes:
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
        ctrls = {"mode": w.ToggleButtons(options=list(self.MODES), value=s["mode"]),
                 "variance_size": w.IntSlider(value=s["variance_size"], min=3, max=63, step=2,
                                              description="variance window")}
        for key in ("region_a", "region_b"):
            r = s[key]
            ctrls[f"{key}_y"] = w.IntRangeSlider(value=(r[0], r[2]), min=0, max=h, description=f"{key[-1]} rows")
            ctrls[f"{key}_x"] = w.IntRangeSlider(value=(r[1], r[3]), min=0, max=wd, description=f"{key[-1]} cols")
        return ctrls

    def _control_value(self, key: str) -> Any:
        if key.endswith(("_y", "_x")):
            r = self._state[key[:-2]]
            return (r[0], r[2]) if key.endswith("_y") else (r[1], r[3])
        return self._state[key]

    def _control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        if key.endswith(("_y", "_x")):
            r = self._state[key[:-2]]
            new = (value[0], r[1], value[1], r[3]) if key.endswith("_y") else (r[0], value[0], r[2], value[1])
            return {key[:-2]: new}
        return {key: value}

    def render(self):
        s = self._state
        if s["mode"] == "overview":
            fig = _figure((10.5, 3.8))
            return plot_noiseprint(self.noiseprint, fig=fig, variance_size=s["variance_size"], title=self.title or None)
        fig = _figure((12, 6))
        return compare_regions(self.noiseprint, s["region_a"], s["region_b"], fig=fig,
                               variance_size=min(s["variance_size"], 15))
