"""``FeatureExplorer``: browse the intermediate features (RGB and Noiseprint++ encoder stages,
CMX fusion FRM/FFM, decoders, DnCNN levels) of one image; the model runs once."""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Mapping, Sequence

import numpy as np

from trufor_lab.inference.analyze import analyze
from trufor_lab.interpret.features import channel_stats, pca_rgb, to_chw
from trufor_lab.model.catalog import layer_catalog, resolve_names
from trufor_lab.viz.figures import plot_feature_grid, robust_limits
from trufor_lab.widgets.display import Viewer, new_figure, stored_note

__all__ = ["EXPLORER_LAYERS", "FeatureExplorer"]

_STAGE_RE = re.compile(r"^(rgb|noiseprint)\.stage(\d+)\.(patch_embed|block\d+|out)$")
_FUSION_RE = re.compile(r"^fusion\.stage(\d+)\.(frm)\.(rgb|noiseprint)$|^fusion\.stage(\d+)\.(ffm)$")
_DECODER_RE = re.compile(r"^decoder\.(anomaly|confidence)\.(c(\d+)|fused|logits)$")
_DNCNN_RE = re.compile(r"^noiseprint\.dncnn\.(level\d+)$|^(noiseprint)$")

#: What :class:`FeatureExplorer` captures by default.
EXPLORER_LAYERS = (
    "rgb.stage*.patch_embed",
    "rgb.stage*.block*[0-9]",
    "rgb.stage*.out",
    "noiseprint.stage*.patch_embed",
    "noiseprint.stage*.block*[0-9]",
    "noiseprint.stage*.out",
    "fusion.*",
    "decoder.*",
)


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


class FeatureExplorer(Viewer):
    """Browse a model's intermediate features for one image.

    Pick ``branch`` (rgb, noiseprint, fused, decoder), ``stage`` and ``layer``; ``mode`` shows one
    ``channel``, a ``grid`` of channels (ranked by energy, starting at rank ``channel``) or a ``pca``
    picture; ``side_by_side`` shows RGB, Noiseprint++ and fused maps of the stage together.
    The model runs once, in the constructor (:func:`trufor_lab.inference.analyze` with captures); every
    control only re-renders. ``FeatureExplorer(result)`` shows a Result already analysed with
    ``capture=`` (e.g. ``capture=EXPLORER_LAYERS``) without running anything (``layers`` and
    ``max_elements`` then do not apply).

    ``layers``: catalog names or globs (a misspelled name raises ``KeyError`` with the closest
    ones); globs keep the feature maps they match. The default, :data:`EXPLORER_LAYERS`, keeps
    what the model has (Noiseprint++ alone: its DnCNN levels). Maps subsampled to stay under
    ``max_elements`` say so in their titles (and in ``result.notes``).
    """

    MODES = ("channel", "grid", "pca")

    def __init__(
        self,
        model: Any,
        image: Any = None,
        *,
        layers: Sequence[str] = EXPLORER_LAYERS,
        max_elements: int | None = 4_000_000,
        grid_size: int = 16,
    ) -> None:
        if image is None:  # FeatureExplorer(result): the features it captured, the model not run
            if not isinstance(getattr(model, "captures", None), Mapping):
                raise TypeError(
                    f"FeatureExplorer takes (model, image), or a Result analysed with capture=..., "
                    f"not a {type(model).__name__} alone"
                )
            self.result = model
        else:
            self.result = analyze(model, image, capture=self._wanted(model, layers), max_elements=max_elements)
        self._explore(grid_size)

    @staticmethod
    def _wanted(model: Any, layers: Sequence[str]) -> list[str]:
        """The catalog names to capture for ``layers`` (the defaults fitted to the model)."""
        catalog = layer_catalog(model)
        shown = lambda n: catalog[n].kind != "attention" and _explorer_key(n) is not None  # noqa: E731
        if tuple(layers) == EXPLORER_LAYERS:  # only the defaults are fitted to the model
            found = [p for p in layers if _matches_any(catalog, p)]
            wanted = [n for n in resolve_names(catalog, found) if shown(n)] if found else []
            wanted = wanted or [n for n in catalog if shown(n)]  # e.g. Noiseprint++ alone
        else:
            layers = [layers] if isinstance(layers, str) else list(layers)
            wanted = [n for n in resolve_names(catalog, layers) if shown(n)]  # unknown: KeyError
            bad = [p for p in layers if p in catalog and not shown(p)]
            if bad or not wanted:
                raise ValueError(
                    f"the explorer shows feature maps (encoder stages, fusion, decoders, DnCNN); "
                    f"{bad or layers} name none"
                )
        return wanted

    def _explore(self, grid_size: int) -> None:
        """The pickers' tree from ``self.result``'s captures, and the first view."""
        self.captures: Mapping[str, Any] = self.result.captures
        #: name -> how the capture was subsampled (from ``result.notes``)
        self.subsampled: dict[str, str] = {}
        for note in self.result.notes:
            name, _, msg = note.removeprefix("capture ").partition(": ")
            if note.startswith("capture ") and name in self.captures:
                self.subsampled[name] = msg.split(":")[0]
        self.tree: dict[tuple[str, int, str], str] = {}
        for n in self.captures:
            key = _explorer_key(n)
            if key is not None and getattr(self.captures[n], "ndim", 0) == 4:
                self.tree[key] = n
        if not self.tree:
            raise ValueError("nothing to explore: no feature map was captured")
        self.grid_size = grid_size
        #: the feature maps are on the file's stored grid: said when viewers show the file turned
        self._turned = f"\n{note}" if (note := stored_note(self.result)) else ""
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
            changes["side_by_side"] = s["side_by_side"] = bool(changes["side_by_side"])
        if s["side_by_side"] and not self._side_names({**s, **changes}):
            if changes.get("side_by_side"):  # asked for: say why there is nothing to show
                raise ValueError(
                    f"side by side shows the RGB and Noiseprint++ encoder stages and the fused maps; "
                    f"there are none at stage {s['stage']} of what was captured"
                )
            changes["side_by_side"] = False  # moved to a stage without them: the single map
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
            "channel": w.IntSlider(
                value=s["channel"], min=0, max=self.array(self.name).shape[0] - 1, description="channel"
            ),
            "side_by_side": w.Checkbox(
                value=s["side_by_side"],
                description="RGB | Noiseprint++ | fused",
                disabled=not any(k[0] in ("rgb", "noiseprint", "fused") for k in self.tree),  # e.g. Noiseprint++ alone
            ),
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

    def _side_names(self, state: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
        """(catalog name, label) of the maps side by side for ``state`` (default: the current one)."""
        s = self._state if state is None else state
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

    def _said(self, name: str) -> str:
        """`` [spatially subsampled by stride s]`` for a subsampled capture, else nothing."""
        return f" [{self.subsampled[name]}]" if name in self.subsampled else ""

    def _draw_map(self, ax, name: str, label: str) -> None:
        s = self._state
        a = self.array(name)
        label += self._said(name)
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
            fig = new_figure((3.2 * len(names), 3.6))
            for ax, (name, label) in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
                self._draw_map(ax, name, label)
            fig.suptitle(f"stage {s['stage']}  ({s['mode']}){self._turned}", fontsize=10)
            return fig
        name = self.name
        a = self.array(name)
        if s["mode"] == "grid":
            ranked = self.ranked_channels(name)
            start = min(s["channel"], max(0, len(ranked) - self.grid_size))
            chans = ranked[start : start + self.grid_size]
            ncols = int(np.ceil(np.sqrt(len(chans))))
            fig = new_figure((1.6 * ncols + 0.5, 1.6 * int(np.ceil(len(chans) / ncols)) + 0.6))
            plot_feature_grid(
                a,
                channels=chans,
                ncols=ncols,
                fig=fig,
                title=f"{name}: channels ranked {start}..{start + len(chans) - 1} by energy{self._said(name)}"
                + self._turned,
            )
            return fig
        fig = new_figure((4.6, 4.4))
        ax = fig.add_subplot(1, 1, 1)
        self._draw_map(ax, name, f"{name} {tuple(a.shape)}")
        if self._turned:
            fig.suptitle(self._turned.lstrip("\n"), fontsize=9)
        return fig


def _matches_any(catalog: Mapping[str, Any], pattern: str) -> bool:
    """Whether ``pattern`` (a name or glob) matches anything in ``catalog``."""
    return pattern in catalog or bool(fnmatch.filter(catalog, pattern))
