"""Result figures. pyplot is imported lazily; functions return the Figure."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..analyze import Result


def _robust_limits(a: np.ndarray, pct: float = 1.0) -> tuple[float, float]:
    lo, hi = np.percentile(a, [pct, 100 - pct])
    return float(lo), float(hi) if hi > lo else float(lo) + 1e-6


def plot_result(result: "Result", mask: np.ndarray | None = None, fig=None, overlay_alpha: float = 0.5):
    """Image, ground truth (if given), Noiseprint++, localization map (fixed [0, 1], diverging
    colormap), confidence map and an overlay; the score is in the title."""
    import matplotlib.pyplot as plt
    panels = [("Image", result.image, {})]
    if mask is not None:
        panels.append(("Ground truth", mask.astype(float), dict(cmap="gray", vmin=0, vmax=1)))
    lo, hi = _robust_limits(result.noiseprint)
    panels.append(("Noiseprint++", result.noiseprint, dict(cmap="gray", vmin=lo, vmax=hi)))
    if result.map is not None:
        panels.append(("Localization map", result.map, dict(cmap="RdBu_r", vmin=0, vmax=1)))
        panels.append(("Confidence", result.conf, dict(cmap="gray", vmin=0, vmax=1)))
        panels.append(("Overlay", None, {}))
    if fig is None:
        fig = plt.figure(figsize=(3.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, data, kw) in zip(axes, panels):
        if data is None:
            ax.imshow(result.image)
            ax.imshow(result.map, cmap="RdBu_r", vmin=0, vmax=1, alpha=overlay_alpha)
        else:
            im = ax.imshow(data, **kw)
            if title in ("Localization map", "Confidence"):
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    title = result.name or "image"
    if result.score is not None:
        title += f"  —  integrity score {result.score:.3f}"
    elif result.notice:
        title += "  —  Noiseprint++ only (no TruFor checkpoint)"
    fig.suptitle(title, fontsize=11)
    return fig
