"""Result figures. pyplot is imported lazily; functions return the Figure."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from trufor_lab.common.arrays import channel_energy, pca_project, to_chw, top_k
from trufor_lab.common.paths import short_name
from trufor_lab.model.identity import changed_in_memory, is_own_training
from trufor_lab.viz.display import (  # noqa: F401 - display helpers re-exported here
    MAX_DISPLAY_SIDE,
    as_picture,
    display_limits,
    display_mean,
    display_stride,
    for_display,
    image_kwargs,
    outline,
    robust_limits,
    show_image,
)

if TYPE_CHECKING:  # pragma: no cover
    from trufor_lab.inference.result import Result


#: Longest side over shortest beyond which :func:`plot_result` stretches the panels (aspect "auto").
MAX_ASPECT = 20
#: Colour of NaN pixels in the confidence and Noiseprint++ panels (else transparent: looks like
#: the background, or like a confidence of 1 on white).
BAD_COLOR = "magenta"


def map_cmap(name: str):
    """Colormap ``name`` with NaN (bad) pixels in :data:`BAD_COLOR`; for maps never masked on purpose
    (a masked array's hidden pixels would take that colour too)."""
    import matplotlib  # lazy: matplotlib takes about a second to import; only drawing needs it

    return matplotlib.colormaps[name].with_extremes(bad=BAD_COLOR)


def frame_panel(ax) -> None:
    """No ticks or labels but a thin grey frame, so a panel whose values are drawn white (a
    confidence of 1) still shows where the picture is."""
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.65")
        spine.set_linewidth(0.8)


def draw_map(
    ax,
    heat: np.ndarray,
    hidden: np.ndarray | None = None,
    *,
    cmap: str = "RdBu_r",
    vmin: float = 0.0,
    vmax: float = 1.0,
    alpha: float | None = None,
    hidden_color: str | None = None,
):
    """``heat`` drawn with its ``hidden`` pixels (below a threshold, low confidence) in
    ``hidden_color`` (``None``: transparent, for an overlay on the image) and its NaN pixels in
    :data:`BAD_COLOR` (a masked array draws both alike: NaN looked like 'hidden', or like 0.5 on
    white); returns the AxesImage of the map (for a colorbar)."""
    heat = np.asarray(heat)
    hidden = np.zeros(heat.shape, bool) if hidden is None else np.asarray(hidden, bool)
    im = ax.imshow(
        np.ma.masked_array(heat, hidden), cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest"
    )
    if hidden_color is not None:
        _paint(ax, hidden, hidden_color, alpha)
    _paint(ax, np.isnan(heat) & ~hidden, BAD_COLOR, alpha)
    return im


def _paint(ax, where: np.ndarray, color: str, alpha: float | None) -> None:
    """The pixels ``where`` drawn in one flat ``color`` (nothing when there are none)."""
    from matplotlib.colors import ListedColormap  # lazy: matplotlib takes about a second to import

    if where.any():
        ax.imshow(
            np.ma.masked_array(np.ones(where.shape), ~where),
            cmap=ListedColormap([color]),
            vmin=0,
            vmax=1,
            alpha=alpha,
            interpolation="nearest",
        )


#: Colours of hidden map pixels: mid grey, else (a colormap passing near grey) the farthest of the others.
HIDDEN_COLORS = ("#808080", "#8c6d3f", "#3f6f5a")


def hidden_color(cmap: Any, min_distance: float = 0.25) -> str:
    """The colour of hidden map pixels (below a threshold, low confidence) for ``cmap``: mid grey,
    unless the colormap comes within ``min_distance`` (RGB) of it, then the one of
    :data:`HIDDEN_COLORS` farthest from every colour of the map. Left transparent they read as a
    value: white is RdBu_r's 0.5."""
    import matplotlib  # lazy: matplotlib takes about a second to import; only drawing needs it
    from matplotlib.colors import to_rgb  # lazy: as above

    colors = (cmap if isinstance(cmap, matplotlib.colors.Colormap) else matplotlib.colormaps[cmap])(
        np.linspace(0, 1, 256)
    )[:, :3]
    distance = {c: float(np.min(np.linalg.norm(colors - np.array(to_rgb(c)), axis=1))) for c in HIDDEN_COLORS}
    return HIDDEN_COLORS[0] if distance[HIDDEN_COLORS[0]] >= min_distance else max(distance, key=distance.get)


def check_grid(result: "Result") -> None:
    """Refuse a result whose map, confidence or Noiseprint++ is not on its image's grid (it would
    be drawn misaligned, e.g. a transposed map): every figure and viewer."""
    size = tuple(np.shape(result.image)[:2])
    for key in ("map", "conf", "noiseprint"):
        a = getattr(result, key, None)
        if a is not None and tuple(np.shape(a)) != size:
            turned = tuple(np.shape(a)) == size[::-1]
            raise ValueError(
                f"{result.name or 'image'}: {key} is {tuple(np.shape(a))}, the image {size}: it would be "
                "drawn misaligned (image and maps must be on one grid"
                + ("; one turned by its EXIF orientation, the other not?)" if turned else ")")
            )


def check_mask(result: "Result", mask: np.ndarray | None) -> np.ndarray | None:
    """The ground-truth mask as booleans (True = forged), or ``None``; refused in one line unless
    it is 2-D, on ``result``'s grid, and boolean, 0/1 or 0/255 (as the metrics take it): an RGB
    mask file read as an array, or a soft mask, is not drawn as something else."""
    if mask is None:
        return None
    name, m = result.name or "image", np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:  # one channel: a grey mask with its axis kept
        m = m[..., 0]
    if m.ndim != 2:
        hint = (
            " (a picture with colour channels: read the file with trufor_lab.lab.datasets.read_mask, "
            "or take one channel, mask[..., 0] > 0)"
            if m.ndim == 3
            else ""
        )
        raise ValueError(f"{name}: the mask must be 2-D (H, W), got shape {m.shape}{hint}")
    if m.shape != tuple(result.size):
        raise ValueError(f"{name}: mask is {m.shape}, the result {tuple(result.size)}{_grid_hint(result)}")
    if m.dtype == bool:
        return m
    values = np.unique(m) if m.dtype.kind in "iuf" else None
    if values is None or not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        held = (
            f"dtype {m.dtype}"
            if values is None
            else f"{values.size} values ({', '.join(f'{v:g}' for v in values[:4])}{', ...' if values.size > 4 else ''})"
        )
        raise ValueError(f"{name}: the mask must be boolean, 0/1 or 0/255; it holds {held}: threshold it first")
    return m > 0


def _grid_hint(result: "Result") -> str:
    """Why a mask may be on another grid than a result whose file EXIF-turns its picture."""
    o = getattr(result, "exif_orientation", None)
    if o in (None, 1):
        return ""
    if getattr(result, "shown", False):
        return f" (this result is turned as viewers show the file: turn the mask too, turn_as_shown(mask, {o}))"
    return (
        f" (this result is on the file's stored grid, which viewers show turned, EXIF orientation {o}: "
        "for a mask drawn on the picture as shown, use result.as_shown())"
    )


def plot_result(result: "Result", mask: np.ndarray | None = None, fig=None, overlay_alpha: float = 0.5):
    """Image, ground truth (if given), Noiseprint++, localization map (fixed [0, 1], diverging
    colormap), confidence map (when there is one) and an overlay; the score is in the title. A
    Result that shows something else names its panels in ``captures``: ``"shown"`` (the raw
    panel, e.g. a classic detector's output) and ``"map_title"`` (e.g. an attribution scaled for
    display). Arrays longer than :data:`MAX_DISPLAY_SIDE` are averaged down for drawing (all panels
    alike); NaN confidence and Noiseprint++ pixels are drawn in :data:`BAD_COLOR`. A picture more
    than :data:`MAX_ASPECT` times longer than wide is drawn stretched to the panels (said in a
    note under them): at its own aspect it was a sliver 0 pixels high."""
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

    check_grid(result)
    mask = check_mask(result, mask)
    overlay_alpha = check01(overlay_alpha, "overlay_alpha")  # before a figure is made
    step = display_stride(result.size)
    image, heat = for_display(result.image, step), for_display(result.map, step)
    image = as_picture(image, result.name or "image")  # refused before a figure is made
    h, w = result.size
    long = max(h, w) > MAX_ASPECT * min(h, w)
    stretched = f"panels stretched to be seen: the picture is {h}x{w} pixels (H x W)" if long else ""
    panels = [("Image", image, {}, False)]
    if mask is not None:
        m = for_display(mask, step).astype(float)
        panels.append(("Ground truth", m, dict(cmap="gray", vmin=0, vmax=1), False))
    npm = for_display(result.noiseprint, step)
    lo, hi = display_limits(result.noiseprint, step)
    shown = result.captures.get("shown", "Noiseprint++")  # a classic detector shows its raw output here
    panels.append((shown, npm, dict(cmap=map_cmap("gray"), vmin=lo, vmax=hi), False))
    if heat is not None:
        map_title = result.captures.get("map_title", "Localization map")
        panels.append((map_title, heat, dict(cmap=map_cmap("RdBu_r"), vmin=0, vmax=1), True))
        if result.conf is not None:
            conf = for_display(result.conf, step)
            panels.append(("Confidence", conf, dict(cmap=map_cmap("gray"), vmin=0, vmax=1), True))
        panels.append(("Overlay", None, {}, False))
    if fig is None:
        fig = plt.figure(figsize=(3.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, data, kw, colorbar) in zip(axes, panels):
        if data is None:
            draw_overlay(ax, image, heat, opacity=overlay_alpha)
        else:
            im = show_image(ax, data) if title == "Image" else ax.imshow(data, **kw)
            if colorbar:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title, fontsize=10, parse_math=False)
        frame_panel(ax)
        if stretched:
            ax.set_aspect("auto")
    fig.suptitle(result_title(result), fontsize=11, parse_math=False)
    if stretched:  # a note under the panels: a second title line ran into the panel titles
        fig.text(0.5, 0.01, stretched, ha="center", va="bottom", fontsize=8, color="0.3")
    return fig


def score_source(result: "Result") -> str:
    """Whose score ``result`` holds (``"unverified checkpoint"``); ``""``: the verified official one."""
    info = result.weights
    if info is None or (info.kind == "official" and info.verified):
        return ""
    if changed_in_memory(info):  # no checkpoint holds them: not "unverified checkpoint"
        return "weights changed in memory"
    if is_own_training(info):  # its own config entry: never the official file
        return "weights trained with trufor_lab, not the official TruFor"
    unverified = info.kind in ("official", "custom")  # custom: its origin is not known, not "not official"
    return "unverified checkpoint" if unverified else f"{info.kind} weights, not the official TruFor"


def result_title(result: "Result") -> str:
    """A figure's title for a result: its name (and label), its score worded for the weights
    that made it (the paper's "integrity score" for the verified official checkpoint only), and
    a word when the pictures are the file's stored grid while viewers show it turned."""
    title = short_name(result.name)
    if result.label and result.label != result.name:  # e.g. an ablation of the same image
        title += f" [{result.label}]"
    else:  # an ablation or a hook acted: the figure is not the model's own answer
        under = [n.split(" #")[0][15:] for n in getattr(result, "notes", ()) if n.startswith("computed under ")]
        title += f" [under {under[0]}]" if under else ""
    info = result.weights
    if result.score is not None and info is not None and info.kind == "official" and info.verified:
        title += f"  —  integrity score {result.score:.3f}"  # the paper's meaning: official weights only
    elif result.score is not None:
        whose = score_source(result)
        title += f"  —  score {result.score:.3f}{f' ({whose})' if whose else ''}"
    elif result.map is None:
        title += "  —  Noiseprint++ only (no TruFor checkpoint)"
    else:
        title += "  —  no global score"
    turned = stored_note(result)
    return f"{title}\n{turned}" if turned else title


def stored_note(result: Any) -> str:
    """Why the picture is turned from the file as viewers show it (a result on the file's stored
    grid whose EXIF orientation turns it), else ``""``: one wording for every figure and viewer."""
    o = getattr(result, "exif_orientation", None)
    if o in (None, 1) or getattr(result, "shown", False):
        return ""
    return f"as stored: viewers show it turned (EXIF orientation {o}; see .as_shown())"


# -- helpers ----------------------------------------------------------------------------------
def check01(v: Any, name: str) -> float:
    """``v`` as a float in [0, 1], else a one-line refusal naming the option ``name`` (NaN was
    taken as 0 and 7 as 1, silently: an invisible or an opaque overlay)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    return f


def figure_html(fig, heading: str = "", dpi: int = 80) -> str:
    """A figure as notebook HTML (an inline PNG under an escaped bold ``heading``), the figure
    closed even on error: one left open is drawn a second time below the cell."""
    import matplotlib.pyplot as plt  # lazy: only drawing needs it

    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    head = f"<div><b>{html.escape(heading)}</b></div>" if heading else ""
    return f'{head}<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def new_figure(figsize: tuple[float, float], **kwargs):
    """A pyplot figure, so notebooks display it; the library never calls ``plt.show()``."""
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

    return plt.figure(figsize=figsize, **kwargs)


def plain_figure(figsize: tuple[float, float], **kwargs):
    """A matplotlib Figure not registered with pyplot: nothing to close, nothing leaks (a notebook
    still displays it when it is a cell's value)."""
    from matplotlib.figure import Figure  # lazy: matplotlib takes about a second to import; only drawing needs it

    return Figure(figsize=figsize, **kwargs)


_new_figure = new_figure


def _fig_ax(ax, figsize: tuple[float, float] = (5, 3.5)):
    if ax is None:
        fig = _new_figure(figsize)
        return fig, fig.add_subplot(1, 1, 1)
    return ax.figure, ax


def crop_region(a: np.ndarray | None, zoom: tuple[int, int, int, int] | None) -> np.ndarray | None:
    """``a[y0:y1, x0:x1]`` for ``zoom = (y0, x0, y1, x1)`` (``None``: the whole array; an absent
    map, ``None``, stays ``None``)."""
    if zoom is None or a is None:
        return a
    y0, x0, y1, x1 = zoom
    return a[y0:y1, x0:x1]


def draw_overlay(
    ax,
    image: np.ndarray,
    heat: np.ndarray | None,
    *,
    opacity: float = 0.5,
    threshold: float = 0.0,
    conf: np.ndarray | None = None,
    conf_min: float = 0.0,
    cmap: str = "RdBu_r",
    mask: np.ndarray | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
):
    """The image with ``heat`` on top (``opacity``); values below ``threshold`` and pixels whose
    confidence is below ``conf_min`` are left transparent; ``mask`` (ground truth) is outlined.
    Arrays larger than :data:`MAX_DISPLAY_SIDE` are averaged down alike (on ``image``'s grid; a mask
    is outlined around every block that holds a forged pixel: a region thinner than a block is
    outlined, not dropped).
    Returns the overlay's AxesImage (or the image's when ``heat`` is None)."""
    step = display_stride(np.shape(image))
    image, heat, conf = for_display(image, step), for_display(heat, step), for_display(conf, step)
    if mask is not None:  # 0/1, 0/255 or boolean; averaged as the fraction forged (a float: one already)
        mask = for_display(mask if step == 1 or np.asarray(mask).dtype.kind == "f" else np.asarray(mask) != 0, step)
    im = show_image(ax, image)
    if heat is not None:
        hidden = heat < threshold if threshold > 0 else np.zeros(heat.shape, bool)
        if conf is not None and conf_min > 0:
            hidden |= conf < conf_min
        im = draw_map(ax, heat, hidden, cmap=cmap, vmin=vmin, vmax=vmax, alpha=opacity)
    if mask is not None:
        outline(ax, mask)
    ax.set_axis_off()
    return im


# -- features ---------------------------------------------------------------------------------
def _small(a: np.ndarray) -> np.ndarray:
    """A feature picture at screen size (:func:`for_display`; full-resolution captures, such as
    the DnCNN levels, were drawn whole); colour scales are taken from the whole array first."""
    return for_display(a, display_stride(np.shape(a)))


def plot_feature_grid(
    fmap,
    channels=None,
    k: int = 16,
    ncols: int | None = None,
    fig=None,
    title: str | None = None,
    cmap: str = "viridis",
):
    """Channels of a feature map as small images (default: the ``k`` with most energy), each with
    its own robust colour scale; returns the Figure."""
    a = to_chw(fmap)
    chans = np.asarray(top_k(channel_energy(a), k) if channels is None else channels, dtype=int).ravel()
    bad = chans[(chans < 0) | (chans >= a.shape[0])]
    if bad.size:  # refused before the figure is made (one made, then failed, stayed open)
        raise ValueError(f"plot_feature_grid: channel {bad[0]} is not in 0..{a.shape[0] - 1} of this feature map")
    from matplotlib import colormaps  # lazy: only drawing needs matplotlib

    if isinstance(cmap, str) and cmap not in colormaps:  # failed inside imshow, the figure left open
        raise ValueError(f"plot_feature_grid: unknown colormap {cmap!r}")
    n = max(1, len(chans))
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    if fig is None:
        fig = _new_figure((1.9 * ncols, 1.9 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, c in zip(axes, chans):
        lo, hi = robust_limits(a[c])
        ax.imshow(_small(a[c]), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"ch {c}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, parse_math=False)
    return fig


def plot_pca(pca, ax=None, title: str | None = None):
    """A PCA picture (a record with ``image``, ``explained`` and ``name``, such as
    :class:`~trufor_lab.interpret.features.PCAImage`; or a feature map, projected here) in RGB."""
    if hasattr(pca, "image"):
        image, explained, name = pca.image, pca.explained, getattr(pca, "name", "")
    else:
        (image, explained, _), name = pca_project(pca), ""
    fig, ax = _fig_ax(ax, (4, 4))
    ax.imshow(_small(image), interpolation="nearest")
    ev = ", ".join(f"{v:.0%}" for v in explained)
    ax.set_title(title or f"{name + ': ' if name else ''}PCA ({ev})", fontsize=9, parse_math=False)
    ax.set_axis_off()
    return fig


def plot_channel_stats(stats, ax=None, max_channels: int = 512):
    """Energy per channel (bars) with each channel's mean ± std; returns the Figure."""
    fig, ax = _fig_ax(ax, (7, 3))
    n = min(stats.channels, max_channels)
    x = np.arange(n)
    ax.bar(x, stats.energy[:n], color="#bbbbbb", width=1.0, label="energy (mean square)")
    ax.errorbar(x, stats.mean[:n], yerr=stats.std[:n], fmt=".", ms=2, lw=0.5, color="C0", label="mean ± std")
    ax.set_xlabel("channel")
    shown = f" (the first {n} shown)" if n < stats.channels else ""  # the title gave the count, the bars fewer
    ax.set_title(
        f"{stats.name + ': ' if stats.name else ''}{stats.channels} channels{shown}", fontsize=10, parse_math=False
    )
    ax.legend(fontsize=8)
    return fig


def plot_spatial_stats(stats, fig=None):
    """Channel mean and std at every pixel, two panels; returns the Figure."""
    if fig is None:
        fig = _new_figure((7, 3.4))
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, (label, a, cmap) in zip(
        axes, (("mean over channels", stats.mean, "RdBu_r"), ("std over channels", stats.std, "magma"))
    ):
        lo, hi = robust_limits(a)
        if cmap == "RdBu_r":
            m = max(abs(lo), abs(hi))
            lo, hi = -m, m
        im = ax.imshow(_small(a), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(label, fontsize=9, parse_math=False)
        ax.set_axis_off()
    if stats.name:
        fig.suptitle(stats.name, fontsize=10, parse_math=False)
    return fig


def plot_branch_comparison(comparison, fig=None, maps: bool = False):
    """Cosine similarity of the RGB and Noiseprint++ streams per stage, before and after FRM
    (mean per-pixel and global); ``maps=True`` adds the per-pixel maps. Returns the Figure."""
    s = len(comparison.stages)
    if fig is None:
        fig = _new_figure((max(5.0, 2.2 * s) if maps else 5.0, 6.5 if maps else 3.5))
    if maps:
        gs = fig.add_gridspec(3, s, height_ratios=[1.3, 1, 1])
        ax = fig.add_subplot(gs[0, :])
    else:
        ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(comparison.stages)
    ax.plot(x, comparison.before, "o-", color="C0", label="before FRM (per pixel)")
    ax.plot(x, comparison.after, "o-", color="C3", label="after FRM (per pixel)")
    ax.plot(x, comparison.before_global, "s--", color="C0", alpha=0.5, label="before FRM (global)")
    ax.plot(x, comparison.after_global, "s--", color="C3", alpha=0.5, label="after FRM (global)")
    ax.set_xticks(x, [f"stage {v}" for v in x])
    ax.set_ylabel("cosine similarity RGB vs Noiseprint++")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    if maps:
        for j, st in enumerate(comparison.stages):
            for i, (label, m) in enumerate(
                (("before", comparison.maps_before[j]), ("after", comparison.maps_after[j]))
            ):
                a = fig.add_subplot(gs[1 + i, j])
                a.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
                a.set_title(f"stage {st} {label}", fontsize=8)
                a.set_axis_off()
    return fig


def plot_histograms(tensors, bins: int = 100, ax=None, log: bool = True, max_samples: int = 1_000_000):
    """Histograms of activation values, one curve per named tensor (a dict or a single tensor):
    1-D values, or a feature map (H, W), (C, H, W) or (B, C, H, W) (every item's values). NaN and
    infinite values are left out, their count in the legend (an infinite one raised numpy's
    error; NaN ones were dropped unsaid)."""
    if not hasattr(tensors, "items"):
        tensors = {"": tensors}
    values = {name: _activation_values(t, name) for name, t in tensors.items()}  # checked before the figure
    fig, ax = _fig_ax(ax, (6, 3.5))
    rng = np.random.default_rng(0)
    for name, v in values.items():
        finite = np.isfinite(v)
        left = f"{v.size - int(finite.sum())} NaN/inf left out" if not finite.all() else ""
        label = f"{name} ({left})" if name and left else name or left or None
        v = v[finite]
        if not v.size:  # nothing finite: its legend entry says so
            ax.plot([], [], label=label)
            continue
        if v.size > max_samples:
            v = rng.choice(v, max_samples, replace=False)
        ax.hist(v, bins=bins, histtype="step", log=log, label=label, density=True)
    ax.set_xlabel("activation")
    ax.set_ylabel("density")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return fig


def _activation_values(t: Any, name: str) -> np.ndarray:
    """One tensor's values for :func:`plot_histograms`, flattened; refused in one line otherwise."""
    t = t if hasattr(t, "ndim") else np.asarray(t)
    if t.ndim not in (1, 2, 3, 4):
        raise ValueError(
            f"plot_histograms: {name or 'the tensor'} has shape {tuple(t.shape)}; expected 1-D values "
            "or a feature map (H, W), (C, H, W) or (B, C, H, W)"
        )
    parts = [t[i : i + 1] for i in range(t.shape[0])] if t.ndim == 4 else [t[None] if t.ndim == 1 else t]
    return np.concatenate([to_chw(p).ravel() for p in parts])  # a batch: every item's values


def plot_stage_branches(captures, stage: int, mode: str = "pca", channel: int | None = None, fig=None):
    """RGB, Noiseprint++ (stage outputs, before FRM) and the fused FFM map of one stage side by
    side, as PCA pictures (``mode="pca"``) or one channel (``mode="channel"``)."""
    if hasattr(captures, "tensors"):
        captures = captures.tensors
    names = [
        (f"rgb.stage{stage}.out", "RGB"),
        (f"noiseprint.stage{stage}.out", "Noiseprint++"),
        (f"fusion.stage{stage}.ffm", "fused (FFM)"),
    ]
    missing = [n for n, _ in names if n not in captures]
    if missing:
        raise KeyError(f"captures lack {missing}")
    if fig is None:
        fig = _new_figure((9.5, 3.4))
    axes = fig.subplots(1, 3, squeeze=False)[0]
    for ax, (name, label) in zip(axes, names):
        a = to_chw(captures[name])
        if mode == "pca":
            image, explained, _ = pca_project(a)
            ax.imshow(_small(image), interpolation="nearest")
            ax.set_title(f"{label} (PCA {explained.sum():.0%})", fontsize=9)
        elif mode == "channel":
            c = 0 if channel is None else int(channel) % a.shape[0]
            lo, hi = robust_limits(a[c])
            ax.imshow(_small(a[c]), cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{label} ch {c}", fontsize=9)
        else:
            raise ValueError(f"mode must be 'pca' or 'channel', got {mode!r}")
        ax.set_axis_off()
    fig.suptitle(f"stage {stage}", fontsize=10)
    return fig
