"""Noise-family classic detectors: local noise level, CFA demosaicing traces, and
Noiseprint++ statistics clustered in the spirit of Splicebuster. Same ``(map, score, raw)``
contract as :mod:`trufor_lab.lab.classic_jpeg`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

Output = tuple[np.ndarray, "float | None", dict[str, Any]]


def _gray(rgb: np.ndarray) -> np.ndarray:
    """JFIF luma, float64, summed in place channel by channel (no float64 (H, W, 3) copy)."""
    g = 0.299 * rgb[..., 0].astype(np.float64)
    g += 0.587 * rgb[..., 1].astype(np.float64)
    g += 0.114 * rgb[..., 2].astype(np.float64)
    return g


def _robust_z(v: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """(v - median) / (1.4826 MAD), the scale floored (at ``floor``, and relatively) so flat
    inputs give zeros."""
    med = np.median(v)
    mad = 1.4826 * np.median(np.abs(v - med))
    return (v - med) / max(mad, floor, 1e-3 * (abs(med) + 1e-6), 1e-9)


def _upsample(values: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """Block values at stride ``step`` back to pixels (nearest, then edge-padded): pixel (i, j)
    takes block (i // step, j // step), the last one past the blocks' end; one pixel-size array."""
    rows = np.minimum(np.arange(shape[0]) // step, values.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) // step, values.shape[1] - 1)
    return np.take(np.take(values, rows, axis=0), cols, axis=1)


# ---------------------------------------------------------------------- local noise level


def noise_level(rgb: np.ndarray, *, block: int = 16) -> Output:
    """Local noise inconsistency (Mahdian & Saic 2009): the noise standard deviation of each
    ``block``-pixel tile (in image pixels, an even number) by the median-absolute-deviation estimate
    ``median(|HH1|) / 0.6745`` on the finest diagonal Haar wavelet subband; the map is how far
    a tile's log-sigma is from the image's typical value, in robust z units (added noise and
    blur both stand out). ``raw['sigma']``: per-tile sigma."""
    g = _gray(rgb)
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    a, b = g[0:h:2, 0:w:2], g[0:h:2, 1:w:2]
    c, d = g[1:h:2, 0:w:2], g[1:h:2, 1:w:2]
    hh = np.abs(a - b - c + d) / 2.0
    t = block // 2  # tile side in the half-resolution subband
    th, tw = hh.shape[0] // t, hh.shape[1] // t
    tiles = hh[: th * t, : tw * t].reshape(th, t, tw, t).transpose(0, 2, 1, 3).reshape(th, tw, -1)
    sigma = np.median(tiles, axis=-1) / 0.6745
    # log-sigma spread floored at 0.1 (a 10 % change of noise level per z unit): on a smooth
    # picture most tiles have sigma ~ 0, the spread is 0 and every textured tile saturated
    z = np.abs(_robust_z(np.log(sigma + 0.1), floor=0.1))
    m = ndimage.gaussian_filter(_upsample(ndimage.median_filter(z, 3), g.shape, block), block / 2)
    raw: dict = {"sigma": sigma.astype(np.float32), "block": block}
    flat = float(np.mean(sigma < 0.1))
    if flat > 0.5:
        raw["note"] = f"{flat:.0%} of the tiles are flat (no measurable noise): the map shows texture more than noise"
    return m, None, raw


# --------------------------------------------------------------------------- CFA (Ferrara)


def _em_two_gaussians(x: np.ndarray, iters: int = 50) -> tuple[np.ndarray, dict[str, float]]:
    """Ferrara's mixture: tampered ~ N(0, s2) (no CFA trace), authentic ~ N(mu1, s1); returns
    the posterior of 'tampered' for each value and the fitted parameters."""
    mu1, s1 = float(np.percentile(x, 75)), float(x.std() + 1e-6)
    s2, a = float(x.std() / 2 + 1e-6), 0.5
    for _ in range(iters):
        l1 = a * np.exp(-((x - mu1) ** 2) / (2 * s1**2)) / s1
        l2 = (1 - a) * np.exp(-(x**2) / (2 * s2**2)) / s2
        r = l2 / (l1 + l2 + 1e-300)
        a = float(np.clip(1 - r.mean(), 1e-3, 1 - 1e-3))
        w1 = 1 - r
        mu1 = float((w1 * x).sum() / (w1.sum() + 1e-12))
        s1 = float(np.sqrt((w1 * (x - mu1) ** 2).sum() / (w1.sum() + 1e-12)) + 1e-3)
        s2 = float(np.sqrt((r * x**2).sum() / (r.sum() + 1e-12)) + 1e-3)
    return r, {"mu_authentic": mu1, "sigma_authentic": s1, "sigma_tampered": s2, "p_authentic": a}


def _log_variance(green: np.ndarray, lattice: np.ndarray, window: int) -> np.ndarray:
    """:func:`cfa`'s log local variance of the green prediction error, each pixel over the
    ``window`` pixels of its own quincunx lattice (``lattice``: the even one). The arithmetic of
    the whole-plane expressions, in place where they made a new plane: six float64 planes at the
    peak, not ten (12 MP: 0.55 GiB, not 0.9)."""
    g = green.astype(np.float64)
    k = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64) / 4
    e = g - ndimage.convolve(g, k, mode="mirror")
    del g
    var = np.empty_like(e)
    for lat in (lattice, ~lattice):
        n = ndimage.uniform_filter(lat.astype(np.float64), window)
        t = e * lat  # times the lattice as 0.0 / 1.0, as its float64 copy gave (-0.0 included)
        mean = ndimage.uniform_filter(t, window)
        mean /= n
        np.multiply(e, e, out=t)  # e ** 2
        t *= lat
        v = ndimage.uniform_filter(t, window)
        del t
        v /= n
        np.multiply(mean, mean, out=mean)  # mean ** 2
        v -= mean
        var[lat] = v[lat]
        del v, mean, n
    return np.log(np.maximum(var, 1e-6, out=var), out=var)


def cfa(rgb: np.ndarray, *, block: int = 8, window: int = 7, min_trace: float = 1.0) -> Output:
    """CFA demosaicing consistency (Ferrara, Bianchi, De Rosa & Piva 2012).

    Green is predicted from its four neighbours (the bilinear kernel); where green was
    interpolated the prediction error is small, where it was acquired it is not. The local
    error variance is averaged (geometric mean) over each ``block`` separately on the two
    quincunx lattices; ``L = log(GM acquired / GM interpolated)`` is large in demosaiced
    blocks and ~0 where the CFA trace is missing. The acquired lattice is the one with the
    larger image-wide variance. A two-Gaussian EM (tampered centred at 0) gives the map.

    A block whose ``L`` is below ``-min_trace`` carries a demosaicing trace in the other phase
    (a copy moved by an odd offset, a paste from a camera with another pattern): it is tampered
    (posterior 1) and left out of the EM, whose trace-free component had widened to cover it
    (``raw['out_of_phase']``: the fraction of such blocks).

    Not applicable (zero map, ``raw['not_applicable']`` says why) when the picture shows no
    demosaicing trace: the upper quartile of ``L`` is below ``min_trace`` (JPEG, resampled,
    synthetic).
    """
    shape = rgb.shape[:2]
    lattice = (np.arange(shape[0])[:, None] + np.arange(shape[1])[None, :]) % 2 == 0
    lv = _log_variance(rgb[..., 1], lattice, window)
    h, w = shape[0] // block * block, shape[1] // block * block

    def gm(lat: np.ndarray) -> np.ndarray:
        s = (lv[:h, :w] * lat[:h, :w]).reshape(h // block, block, w // block, block).sum(axis=(1, 3))
        c = lat[:h, :w].reshape(h // block, block, w // block, block).sum(axis=(1, 3))
        return s / c

    l_even, l_odd = gm(lattice), gm(~lattice)
    stat = l_even - l_odd
    if np.median(stat) < 0:  # green was acquired on the odd lattice
        stat = -stat
    raw: dict[str, Any] = {
        "L": stat.astype(np.float32),
        "acquired_lattice": "even" if np.median(l_even - l_odd) >= 0 else "odd",
    }
    # The premise: most of the picture carries a demosaicing trace (L well above 0). A JPEG, a
    # resampled or a synthetic picture has none (L ~ N(0, 0.2-0.5) everywhere), and the EM then
    # split that noise in two and flagged 60-98 % of the picture. Measured upper quartile of L:
    # trace-free 0.13-0.33, demosaiced then JPEG 90-95 0.3-0.95, demosaiced 2.9-5.5 (1.5-2.4 at
    # JPEG 98). The EM's own fit is no test of it: blocks moved out of phase widened its
    # trace-free component until "the authentic mode is within 4 sigma of it" refused the forgery
    p75 = float(np.percentile(stat, 75))
    if p75 < min_trace:
        why = f"upper quartile of L {p75:.2f} < {min_trace}"
        raw["not_applicable"] = f"no CFA trace found (JPEG or resampled image): not applicable ({why})"
        return np.zeros(shape), None, raw
    flipped = stat < -min_trace  # a trace in the other phase: tampered, not trace-free noise
    post = np.ones(stat.shape)
    if not flipped.all():
        post[~flipped], raw["em"] = _em_two_gaussians(stat[~flipped])
    raw["out_of_phase"] = float(flipped.mean())
    m = ndimage.gaussian_filter(_upsample(post, shape, block), block / 2)
    return m, None, raw


# ---------------------------------------------------------------- Noiseprint++ clustering


#: Width of the band along the border where Noiseprint++ (17 zero-padded convolutions) differs
#: from its inside (measured: 10-100x the inside's power within ~10 px of the edge).
NOISEPRINT_BORDER = 16


def _local_features(x: np.ndarray, window: int, step: int) -> np.ndarray:
    """:func:`noiseprint_cluster`'s features of the centred map ``x`` per tile (stride ``step``):
    log local power, log local power of ``x`` minus its 3x3 mean, local mean. The squares one at
    a time (both were made at once: one float64 plane more at the peak)."""
    hp = x - ndimage.uniform_filter(x, 3)
    feats = []
    for i in range(3):  # x ** 2, hp ** 2, x
        f = x * x if i == 0 else np.multiply(hp, hp, out=hp) if i == 1 else x
        loc = ndimage.uniform_filter(f, window)[step // 2 :: step, step // 2 :: step]
        feats.append(np.log(loc + 1e-6) if f is not x else loc)
        del f
    return np.stack(feats, axis=-1)


def noiseprint_cluster(noiseprint: np.ndarray, *, window: int = 32, iters: int = 30) -> Output:
    """Noiseprint++ used alone (after Cozzolino & Verdoliva's Noiseprint + Splicebuster): local
    features of the Noiseprint++ map (log power, log power of its 8x8-periodic part removed,
    and mean) over ``window``-pixel tiles (stride ``window // 2``), clustered by a
    two-component Gaussian mixture (EM, diagonal covariances); the map is the posterior of
    the smaller component, the part whose camera trace differs from the rest.

    Tiles are taken inside the :data:`NOISEPRINT_BORDER` band (its padding artefact was the
    odd part on small pictures: a red frame); the band takes the nearest inside value."""
    full = noiseprint.shape
    b = NOISEPRINT_BORDER if min(full) >= 2 * NOISEPRINT_BORDER + window else 0
    x = noiseprint[b : full[0] - b, b : full[1] - b].astype(np.float64)
    x = x - x.mean()
    step = window // 2
    fmat = _local_features(x, window, step)
    shape = fmat.shape[:2]
    v = fmat.reshape(-1, 3)
    v = (v - np.median(v, axis=0)) / (v.std(axis=0) + 1e-9)
    # EM for two diagonal Gaussians, initialised by the first principal direction
    u = np.linalg.svd(v - v.mean(0), full_matrices=False)[2][0]
    r = (v @ u > np.median(v @ u)).astype(np.float64)
    for _ in range(iters):
        pis, logs = [], []
        for resp in (r, 1 - r):
            wsum = resp.sum() + 1e-9
            mu = (resp[:, None] * v).sum(0) / wsum
            var = (resp[:, None] * (v - mu) ** 2).sum(0) / wsum + 1e-3
            pis.append(wsum / len(v))
            logs.append(np.log(pis[-1]) - 0.5 * (((v - mu) ** 2 / var) + np.log(var)).sum(1))
        r = 1.0 / (1.0 + np.exp(np.clip(logs[1] - logs[0], -50, 50)))
    if r.mean() > 0.5:
        r = 1 - r
    p = r.reshape(shape)
    m = np.pad(ndimage.gaussian_filter(_upsample(p, x.shape, step), step / 2), b, mode="edge")
    return m, None, {"features": fmat.astype(np.float32), "minority_fraction": float(r.mean()), "border": b}
