"""Noiseprint++ views: the map, its local variance, its 2-D log power spectrum, two regions compared.

A camera's/processing chain's fingerprint shows in the spectrum as periodic peaks: the JPEG 8x8
block grid puts peaks at multiples of 1/8 cycles per pixel, demosaicing at 1/2. A spliced region
from another source has a different local variance and different peaks.

>>> from trufor_lab.viz.noiseprint import plot_noiseprint, compare_regions
>>> plot_noiseprint(result.noiseprint)
>>> compare_regions(result.noiseprint, (0, 0, 64, 64), (64, 64, 128, 128))
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from trufor_lab.viz.figures import display_mean, display_stride, for_display, map_cmap, robust_limits

__all__ = [
    "Region",
    "as_map",
    "check_window",
    "compare_regions",
    "local_variance",
    "log_spectrum",
    "periodic_peak_ratio",
    "plot_noiseprint",
    "region_stats",
]

Region = tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive

#: A side shorter than this many periods leaves no bins between the harmonics to compare with.
MIN_PERIODS = 4


def as_map(noiseprint: Any) -> np.ndarray:
    """A 2-D float array from an array, a tensor or a :class:`~trufor_lab.inference.analyze.Result`."""
    if hasattr(noiseprint, "noiseprint") and not isinstance(noiseprint, np.ndarray):
        noiseprint = noiseprint.noiseprint
    if hasattr(noiseprint, "detach"):
        noiseprint = noiseprint.detach().cpu().float().numpy()
    a = np.asarray(noiseprint, dtype=np.float64)
    while a.ndim > 2 and a.shape[0] == 1:  # batch / channel axes only: a 64x1 map stays 2-D
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D Noiseprint++ map, got shape {np.shape(noiseprint)}")
    return a


def _check_region(region: Sequence[int], shape: tuple[int, int]) -> Region:
    if len(region) != 4:
        raise ValueError(f"a region is (y0, x0, y1, x1), got {region!r}")
    y0, x0, y1, x1 = (int(v) for v in region)
    if min(y0, x0, y1, x1) < 0 or y1 > shape[0] or x1 > shape[1]:  # was clipped: another region measured
        raise ValueError(f"region {tuple(region)} runs outside the {shape[0]}x{shape[1]} map (y0, x0, y1, x1)")
    if y1 - y0 < 2 or x1 - x0 < 2:
        raise ValueError(f"region {tuple(region)} is empty or smaller than 2x2 inside a {shape[0]}x{shape[1]} map")
    return y0, x0, y1, x1


def check_window(size: Any, name: str = "size") -> int:
    """``size`` as a whole number of pixels >= 1, else a one-line refusal naming ``name`` (0 drew
    an all-zero panel; NaN or a fraction is no window)."""
    try:
        ok = float(size) == int(size) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number of pixels >= 1, got {size!r}")
    return int(size)


def local_variance(noiseprint: Any, size: int = 15) -> np.ndarray:
    """Variance in a ``size`` x ``size`` sliding window (reflect padding), same shape as the map."""
    from scipy.ndimage import uniform_filter  # lazy: scipy is slow to import; only this function needs it

    size = check_window(size)
    a = as_map(noiseprint)
    m = uniform_filter(a, size=size, mode="reflect")
    m2 = uniform_filter(a * a, size=size, mode="reflect")
    return np.maximum(m2 - m * m, 0.0)


def log_spectrum(noiseprint: Any, window: bool = True, eps: float = 1e-12) -> np.ndarray:
    """``log10`` power spectrum, zero frequency centred (``fftshift``); mean removed, Hann window."""
    a = as_map(noiseprint)
    a = a - a.mean()
    if window:
        a = a * np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    p = np.abs(np.fft.fftshift(np.fft.fft2(a))) ** 2
    return np.log10(p + eps * max(float(p.max()), 1.0))


def periodic_peak_ratio(noiseprint: Any, period: int = 8) -> float:
    """Power at the harmonics of ``1/period`` cycles/pixel (DC excluded) over the power around them.

    The map is Hann-windowed; the mean power of each harmonic's 3x3 bins is compared with the
    power of the ring of bins 2-3 away (bins near other harmonics excluded), so smooth content
    and the window's leakage do not count as peaks; the strongest harmonic is returned. A few
    units for noise, much larger for a ``period``-periodic pattern such as the JPEG 8x8 grid.
    NaN (not measurable) when a side is shorter than ``4 * period`` (:data:`MIN_PERIODS`): the
    harmonics' bins then touch and no ring is left to compare with (1.0 read as "no grid"); NaN
    too when the map holds a NaN or infinite value: its spectrum is undefined (it gave 1.0).
    """
    a = as_map(noiseprint)
    if min(a.shape) < MIN_PERIODS * period or not np.isfinite(a).all():
        return math.nan
    a = a - a.mean()
    a = a * np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    p = np.abs(np.fft.fft2(a)) ** 2
    h, w = a.shape
    fy = np.unique(np.round(np.arange(period) * h / period).astype(int) % h)
    fx = np.unique(np.round(np.arange(period) * w / period).astype(int) % w)
    near = np.zeros_like(p, dtype=bool)
    for y in fy:
        for x in fx:
            near[np.ix_(np.arange(y - 1, y + 2) % h, np.arange(x - 1, x + 2) % w)] = True
    ratios = []
    for y in fy:
        for x in fx:
            if y == 0 and x == 0:
                continue
            ys, xs = np.arange(y - 3, y + 4) % h, np.arange(x - 3, x + 4) % w
            ring = p[np.ix_(ys, xs)][~near[np.ix_(ys, xs)]]
            if ring.size:
                peak = p[np.ix_(ys[2:5], xs[2:5])].mean()
                bg = float(np.median(ring)) / np.log(2)  # median of exponential power -> its mean
                ratios.append(peak / bg if bg > 0 else (np.inf if peak > 0 else 1.0))
    return float(max(ratios)) if ratios else math.nan


def region_stats(noiseprint: Any, region: Sequence[int], period: int = 8) -> dict[str, float]:
    """Mean, std and the 8x8-grid peak ratio of the map inside ``region`` (y0, x0, y1, x1); the
    ratio is NaN for a region too small to measure it or holding NaN/inf values
    (:func:`periodic_peak_ratio`). A region running outside the map (a negative start, an end
    past it) is refused, not clipped."""
    a = as_map(noiseprint)
    y0, x0, y1, x1 = _check_region(region, a.shape)
    crop = a[y0:y1, x0:x1]
    return {"mean": float(crop.mean()), "std": float(crop.std()), "grid_peak_ratio": periodic_peak_ratio(crop, period)}


def _spectrum_extent(shape: tuple[int, int]) -> list[float]:
    h, w = shape
    # cycles per pixel; a 1-pixel side has only frequency 0: give it a unit extent, not an empty one
    return [-0.5, 0.5 - 1.0 / w if w > 1 else 0.5, 0.5 - 1.0 / h if h > 1 else 0.5, -0.5]


def _no_spectrum(a: np.ndarray) -> str:
    """Why ``a`` has no spectrum (its NaN or infinite pixels make every bin NaN: the panel was
    blank under its plain title), else ``""``."""
    bad = int(np.count_nonzero(~np.isfinite(a)))
    return f": none, {bad} NaN/inf pixel{'s' if bad > 1 else ''}" if bad else ""


def plot_noiseprint(
    noiseprint: Any, fig=None, variance_size: int = 15, title: str | None = None, label: str = "Noiseprint++"
):
    """Three panels: the Noiseprint++ map, its local variance and its log spectrum; returns the
    Figure. ``label`` names the map (a classic detector's raw output is not Noiseprint++).
    Variance, spectrum and colour scales are computed on the whole map; the map and its variance
    are drawn averaged over blocks to :data:`~trufor_lab.viz.figures.MAX_DISPLAY_SIDE` at most
    (:func:`~trufor_lab.viz.figures.display_mean`: a 12 MP panel took seconds to draw at a few
    hundred pixels, and looks the same), the spectrum whole (its peaks are single bins)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

    a = as_map(noiseprint)
    variance_size = check_window(variance_size, "variance_size")  # before a figure is made
    if fig is None:
        fig = plt.figure(figsize=(10.5, 3.8))
    # room between the panels: the variance's colourbar labels ran into the spectrum's axis labels
    axes = fig.subplots(1, 3, squeeze=False, gridspec_kw={"wspace": 0.45})[0]
    lo, hi = robust_limits(a)
    step = display_stride(a.shape)
    axes[0].imshow(display_mean(a, step), cmap=map_cmap("gray"), vmin=lo, vmax=hi)  # NaN pixels visible
    axes[0].set_title(label, fontsize=10, parse_math=False)
    var = local_variance(a, variance_size)
    im = axes[1].imshow(display_mean(var, step), cmap="magma", vmin=0, vmax=robust_limits(var)[1])
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    axes[1].set_title(f"Local variance ({variance_size}x{variance_size})", fontsize=10)
    spec = log_spectrum(a)
    slo, shi = robust_limits(spec, 0.5)
    axes[2].imshow(spec, cmap="viridis", vmin=slo, vmax=shi, extent=_spectrum_extent(a.shape))
    axes[2].set_title(f"log10 power spectrum{_no_spectrum(a)}", fontsize=10)
    axes[2].set_xlabel("cycles/pixel", fontsize=8)
    for ax in axes[:2]:
        ax.set_axis_off()
    axes[2].tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11, parse_math=False)
    return fig


def compare_regions(
    noiseprint: Any,
    region_a: Sequence[int],
    region_b: Sequence[int],
    fig=None,
    labels: tuple[str, str] = ("A", "B"),
    variance_size: int = 9,
    label: str = "Noiseprint++",
):
    """Two regions (y0, x0, y1, x1) of a Noiseprint++ map (``label``: what the map is) side by side.

    Left: the whole map with both regions outlined. Then one row per region: the crop (shared
    grey scale), its local variance in a ``variance_size`` window (shared scale) and its log
    spectrum; titles give the std and the 8x8-grid peak ratio ("too small to measure" under 32
    pixels a side). A region running outside the map is refused. The map, the crops and their
    variances are drawn averaged over blocks to at most
    :data:`~trufor_lab.viz.figures.MAX_DISPLAY_SIDE` pixels a side (the whole map's panel at its
    own pixel coordinates), their colour scales and every number from the whole arrays; the
    spectra whole (their peaks are single bins). Returns the Figure.
    """
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it
    from matplotlib.patches import Rectangle  # lazy: matplotlib takes about a second to import; only drawing needs it

    a = as_map(noiseprint)
    regions = [_check_region(region_a, a.shape), _check_region(region_b, a.shape)]
    variance_size = check_window(variance_size, "variance_size")
    if fig is None:
        fig = plt.figure(figsize=(12, 6))
    gs = fig.add_gridspec(2, 4, width_ratios=[1.4, 1, 1, 1])
    ax_full = fig.add_subplot(gs[:, 0])
    lo, hi = robust_limits(a)
    step = display_stride(a.shape)
    full = display_mean(a, step)  # drawn on the map's own pixel grid: the regions' outlines in its pixels
    extent = (-0.5, full.shape[1] * step - 0.5, full.shape[0] * step - 0.5, -0.5)
    ax_full.imshow(full, cmap=map_cmap("gray"), vmin=lo, vmax=hi, extent=extent)
    ax_full.set_xlim(-0.5, a.shape[1] - 0.5)  # the last, partial blocks drawn whole ran past the map
    ax_full.set_ylim(a.shape[0] - 0.5, -0.5)
    colors = ("#e41a1c", "#377eb8")
    crops = [a[y0:y1, x0:x1] for y0, x0, y1, x1 in regions]
    variances = [local_variance(c, variance_size) for c in crops]
    vmax = max(robust_limits(v)[1] for v in variances)
    spectra = [log_spectrum(c) for c in crops]
    slo = min(robust_limits(s, 0.5)[0] for s in spectra)
    shi = max(robust_limits(s, 0.5)[1] for s in spectra)
    small = lambda v: for_display(v, display_stride(v.shape))  # noqa: E731 - a large region at screen size
    for row, ((y0, x0, y1, x1), crop, var, spec, name, color) in enumerate(
        zip(regions, crops, variances, spectra, labels, colors)
    ):
        ax_full.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=2, ec=color))
        ax_full.text(x0, y0, f" {name}", color=color, va="top", fontsize=10, fontweight="bold", parse_math=False)
        stats = region_stats(a, (y0, x0, y1, x1))
        ax = fig.add_subplot(gs[row, 1])
        ax.imshow(small(crop), cmap=map_cmap("gray"), vmin=lo, vmax=hi)
        ax.set_title(f"{name}: std {stats['std']:.3g}", fontsize=9, color=color, parse_math=False)
        ax.set_axis_off()
        ax = fig.add_subplot(gs[row, 2])
        ax.imshow(small(var), cmap="magma", vmin=0, vmax=vmax)
        title = f"{name}: local variance ({variance_size}x{variance_size})"
        ax.set_title(title, fontsize=9, color=color, parse_math=False)
        ax.set_axis_off()
        ax = fig.add_subplot(gs[row, 3])
        ax.imshow(spec, cmap="viridis", vmin=slo, vmax=shi, extent=_spectrum_extent(crop.shape))
        ratio, none = stats["grid_peak_ratio"], _no_spectrum(crop)
        peaks = "too small to measure" if math.isnan(ratio) else f"x{ratio:.1f}"
        title = f"{name}: spectrum{none}" if none else f"{name}: spectrum (8x8 peaks {peaks})"
        ax.set_title(title, fontsize=9, color=color, parse_math=False)
        ax.tick_params(labelsize=6)
    ax_full.set_title(label, fontsize=10, parse_math=False)
    ax_full.set_axis_off()
    return fig
