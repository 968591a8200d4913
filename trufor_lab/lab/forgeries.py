"""Synthetic forgeries with exact ground truth, for testing detectors where the answer is known.

One cohesive thing: every generator shares the same seed, mask and ``params`` contract, and
the helpers (region shapes, blending, JPEG traces) serve all of them.

Every generator is deterministic given ``seed`` (a whole number >= 0, for
``np.random.default_rng(seed)``) and returns a :class:`Forgery`: the forged ``image`` (uint8
HxWx3), its ``mask`` (bool HxW, True = forged) and a JSON-safe ``params`` record of what was
done. Unless the docstring says otherwise (only :func:`double_jpeg`, which recompresses the
whole image), pixels outside the mask are bit-identical to the source; inside the mask a pixel
may coincidentally keep its value (a flat area blurred, say), but the mask is always the set
of pixels the operation wrote.

>>> from trufor_lab.lab.forgeries import demo_set, make_forgery
>>> items = demo_set(n=8)                        # offline: scikit-image sample images
>>> f = make_forgery("copy_move", items[0].image, seed=3, rotation=15)
>>> f.plot()
"""

from __future__ import annotations

import re

import base64
import difflib
import html
import io
import math
import numbers
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from trufor_lab.common.imaging import resize, to_uint8
from trufor_lab.common.paths import list_images
from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.inference.preprocess import ImageError, load_image
from trufor_lab.lab.datasets import DatasetError, read_mask
from trufor_lab.viz.figures import display_stride, for_display, new_figure, outline, show_image

__all__ = [
    "Forgery",
    "FORGERIES",
    "REGIONS",
    "LOCAL_EDIT_OPS",
    "region_mask",
    "splice",
    "copy_move",
    "remove_object",
    "local_edit",
    "double_jpeg",
    "make_forgery",
    "random_forgery",
    "pristine",
    "demo_images",
    "demo_set",
    "load_official_samples",
]

REGIONS = ("ellipse", "rect", "blob")
LOCAL_EDIT_OPS = ("resample", "blur", "sharpen", "contrast", "color")
#: default ``strength`` per local-edit op: zoom factor, Gaussian sigma, unsharp amount,
#: contrast gain, per-channel gain deviation.
_DEFAULT_STRENGTH = {"resample": 1.3, "blur": 2.0, "sharpen": 1.5, "contrast": 1.5, "color": 0.2}
_DEFAULT_AREA = (0.02, 0.15)
#: the ``strength`` at which an op is the identity (no pixel would change: no forgery).
_NO_EDIT = {"resample": 1.0, "sharpen": 0.0, "contrast": 1.0, "color": 0.0}


# --------------------------------------------------------------------------------------------
# the record
# --------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Forgery:
    """A (possibly pristine) image with its exact ground truth.

    ``label``: 1 forged, 0 pristine. ``mask``: bool HxW, True = forged (all False for a
    pristine image; ``None`` only for an external forged image whose mask is unknown).
    ``params``: JSON-safe record of the operation. ``source``: names of the images used
    (target first, then donor).
    """

    image: np.ndarray
    mask: np.ndarray | None
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    source: tuple[str, ...] = ("image",)
    label: int = 1
    name: str = ""

    @property
    def mask_fraction(self) -> float:
        """Fraction of forged pixels (NaN when the mask is unknown)."""
        return float("nan") if self.mask is None else float(self.mask.mean())

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        return (
            f"Forgery(name={self.name!r}, kind={self.kind!r}, label={self.label}, "
            f"size={w}x{h}, mask_fraction={self.mask_fraction:.3f})"
        )

    def plot(self, ax=None):
        """The image with the mask outline (red); returns the matplotlib Figure. A picture longer
        than :data:`~trufor_lab.viz.figures.MAX_DISPLAY_SIDE` is drawn averaged over blocks, the
        outline around every block holding a forged pixel (a 12 MP one was drawn whole)."""
        step = display_stride(self.image.shape)
        image = for_display(self.image, step)
        mask = None if self.mask is None or not self.mask.any() else for_display(self.mask, step)
        if ax is None:
            fig = new_figure(figsize=(4, 4))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        show_image(ax, image, self.name or "image")
        if mask is not None and min(mask.shape) < 2:  # no contour of a line
            ax.imshow(np.ma.masked_where(mask == 0, mask > 0), cmap="autumn", alpha=0.6, interpolation="nearest")
        elif mask is not None:
            outline(ax, mask, color="red", linewidth=1.2)
        ax.set_axis_off()
        what = "pristine" if self.label == 0 else self.kind
        if self.label == 1 and self.mask is None:
            what += " (mask unknown)"
        ax.set_title(f"{self.name}\n{what}" if self.name else what, fontsize=9, parse_math=False)
        return fig

    def _repr_html_(self) -> str:
        thumb = base64.b64encode(_outline_png(self.image, self.mask)).decode()
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in self.params.items()
        )
        return (
            f'<div style="display:flex;gap:8px"><img src="data:image/png;base64,{thumb}"/>'
            f"<div><b>{html.escape(repr(self))}</b><br>source: {html.escape(', '.join(self.source))}"
            f'<table style="font-size:small">{rows}</table></div></div>'
        )


def _outline_png(image: np.ndarray, mask: np.ndarray | None, max_side: int = 256) -> bytes:
    """Small PNG thumbnail with the mask boundary drawn in red (no matplotlib needed)."""
    img = image.copy()
    if mask is not None and mask.any():
        edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, max(mask.shape) // 256))
        img[edge] = (255, 0, 0)
    pil = Image.fromarray(img)
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what}: expected an RGB uint8 array (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    if x is None or isinstance(x, str):
        return x
    return str(x)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _window(bbox: tuple[int, int, int, int], margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    y0, y1, x0, x1 = bbox
    return (
        slice(max(0, y0 - margin), min(shape[0], y1 + margin)),
        slice(max(0, x0 - margin), min(shape[1], x1 + margin)),
    )


def _check_area(area: Sequence[float], n: int) -> tuple[int, int]:
    lo, hi = float(area[0]), float(area[1])
    if not 0 < lo <= hi < 1:
        raise ValueError(f"area must satisfy 0 < lo <= hi < 1, got {tuple(area)}")
    kmin, kmax = math.ceil(lo * n - 1e-9), math.floor(hi * n + 1e-9)
    if kmin > kmax:
        raise ValueError(f"area range {tuple(area)} holds no whole number of pixels for {n} pixels")
    return kmin, kmax


def _whole(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    """``v`` as an int in ``lo..hi``: 75.7 is refused, not silently run as 75 (bools, NaN too);
    80.0 and 0-dim arrays of a whole number are whole numbers."""
    v = v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
    real = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)
    if not real or not float(v).is_integer() or v < lo or (hi is not None and v > hi):
        span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a whole number {span}, got {v!r}")
    return int(v)


def _seed(name: str, seed: Any) -> int:
    """``seed`` as a whole number >= 0, refused in one line naming ``name``: ``None`` drew another
    forgery at each call (recorded as ``seed: None``), 1.5 failed in numpy's SeedSequence."""
    return _whole(f"{name}: seed", seed, 0)


def _real(name: str, v: Any, lo: float | None = None, *, above: bool = False) -> float:
    """``v`` as a finite float ``>= lo`` (``> lo`` when ``above``), refused in one line otherwise:
    a value outside the range used to be recorded in ``params`` and silently not applied."""
    real = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)
    if not real or (lo is not None and (v <= lo if above else v < lo)):
        need = "a finite number" + ("" if lo is None else f" {'>' if above else '>='} {lo:g}")
        raise ValueError(f"{name} must be {need}, got {v!r}")
    return float(v)


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k smallest scores (ties broken by raster order)."""
    flat = np.argsort(score, axis=None, kind="stable")[:k]
    out = np.zeros(score.size, dtype=bool)
    out[flat] = True
    return out.reshape(score.shape)


def region_mask(
    shape: tuple[int, int], rng: np.random.Generator, region: str | None = None, area: Sequence[float] = _DEFAULT_AREA
) -> tuple[np.ndarray, dict[str, Any]]:
    """A random region covering a fraction of ``shape`` within ``area`` (inclusive).

    ``ellipse`` and ``blob`` have exactly ``k`` pixels (the k pixels lowest in an elliptic or
    noisy-elliptic field); ``rect`` is an axis-aligned rectangle whose area is within range.
    ``region=None`` picks one at random. Returns (mask, JSON-safe info).
    """
    h, w = int(shape[0]), int(shape[1])
    n = h * w
    kmin, kmax = _check_area(area, n)
    if region is None:
        region = REGIONS[int(rng.integers(len(REGIONS)))]
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; choose one of {REGIONS}")
    k = int(np.clip(round(rng.uniform(area[0], area[1]) * n), kmin, kmax))
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # height / width
    mask = np.zeros((h, w), dtype=bool)

    if region == "rect":
        ideal = math.sqrt(k * aspect)
        for rh in sorted(range(1, h + 1), key=lambda r: (abs(r - ideal), r)):
            lo_w, hi_w = max(1, math.ceil(kmin / rh)), min(w, kmax // rh)
            if lo_w <= hi_w:
                rw = int(np.clip(round(k / rh), lo_w, hi_w))
                break
        else:
            raise ValueError(f"cannot fit a rectangle with area in {tuple(area)} in a {w}x{h} image")
        y0, x0 = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
        mask[y0 : y0 + rh, x0 : x0 + rw] = True
        return mask, {"region": region, "bbox": [y0, y0 + rh, x0, x0 + rw], "area_frac": rh * rw / n}

    # semi-axes (b vertical, a horizontal) of an ellipse with k pixels that fits in the image
    b = math.sqrt(k * aspect / math.pi)
    a = k / (math.pi * b)
    reach = 1.0 if region == "ellipse" else 1.3  # how far a blob may spread beyond r = 1
    if b * reach > h / 2 - 1:
        b = max(1.0, h / 2 / reach - 1)
        a = k / (math.pi * b)
    if a * reach > w / 2 - 1:
        a = max(1.0, w / 2 / reach - 1)
        b = k / (math.pi * a)
    cy = rng.uniform(min(b * reach, (h - 1) / 2), max(h - 1 - b * reach, (h - 1) / 2))
    cx = rng.uniform(min(a * reach, (w - 1) / 2), max(w - 1 - a * reach, (w - 1) / 2))
    margin = int(0.5 * max(a, b)) + 4
    sy = slice(max(0, int(cy - b * reach) - margin), min(h, int(cy + b * reach) + margin + 1))
    sx = slice(max(0, int(cx - a * reach) - margin), min(w, int(cx + a * reach) + margin + 1))
    yy, xx = np.mgrid[sy, sx]
    score = ((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2
    info: dict[str, Any] = {"region": region, "center": [cy, cx], "axes": [b, a]}
    if region == "blob":
        noise = ndimage.gaussian_filter(rng.standard_normal(score.shape), sigma=max(1.0, 0.35 * min(a, b)))
        noise /= noise.std() + 1e-12
        score = score - 0.4 * noise
    if score.size < k:  # window clipped by a tiny image: use the whole image
        sy, sx = slice(0, h), slice(0, w)
        yy, xx = np.mgrid[sy, sx]
        score = ((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2
    mask[sy, sx] = _top_k(score, k)
    info["bbox"] = list(_bbox(mask))
    info["area_frac"] = k / n
    return mask, info


# --------------------------------------------------------------------------------------------
# forgeries
# --------------------------------------------------------------------------------------------


def splice(
    target: np.ndarray,
    donor: np.ndarray,
    *,
    seed: int,
    region: str | None = None,
    area: Sequence[float] = _DEFAULT_AREA,
    donor_jpeg_quality: int | None = None,
    resample: float | None = None,
    blur: float | None = None,
    noise: float | None = None,
    feather: int = 0,
) -> Forgery:
    """Paste a region of ``donor`` into ``target`` (splicing).

    The donor is processed in this order, each step optional: whole-donor JPEG at
    ``donor_jpeg_quality`` (its grid is then generally misaligned with the target's), bicubic
    resampling by ``resample``, Gaussian blur ``blur`` (sigma), additive Gaussian noise
    ``noise`` (sigma, grey levels). ``feather`` > 0 ramps the alpha linearly over that many
    pixels *inside* the region, so the mask (alpha > 0) is the region itself and ``area``
    holds exactly. A donor smaller than needed is extended by mirroring. Values that cannot be
    applied as given (a fractional quality or feather, a negative sigma) are refused, never
    recorded in ``params`` and then ignored or truncated.
    """
    t = _as_rgb(target, "target")
    d = _as_rgb(donor, "donor")
    q = None if donor_jpeg_quality is None else _whole("splice: donor_jpeg_quality", donor_jpeg_quality, 1, 100)
    resample = None if resample is None else _real("splice: resample", resample, 0, above=True)
    blur = None if blur is None else _real("splice: blur", blur, 0)
    noise = None if noise is None else _real("splice: noise", noise, 0)
    feather = _whole("splice: feather", feather, 0)
    seed = _seed("splice", seed)
    rng = np.random.default_rng(seed)
    mask, info = region_mask(t.shape[:2], rng, region, area)
    y0, y1, x0, x1 = info["bbox"]
    h, w = y1 - y0, x1 - x0

    if q is not None:
        d = jpeg_compress(d, q)
    f = 1.0 if resample is None else resample
    m = 4 + (0 if blur is None else math.ceil(3 * blur))  # margin, output pixels
    ph, pw = math.ceil((h + 2 * m) / f) + 2, math.ceil((w + 2 * m) / f) + 2  # donor pixels
    if d.shape[0] < ph or d.shape[1] < pw:
        d = np.pad(d, ((0, max(0, ph - d.shape[0])), (0, max(0, pw - d.shape[1])), (0, 0)), mode="symmetric")
    oy, ox = int(rng.integers(0, d.shape[0] - ph + 1)), int(rng.integers(0, d.shape[1] - pw + 1))
    patch = d[oy : oy + ph, ox : ox + pw]
    if f != 1.0:
        patch = resize(patch, (round(ph * f), round(pw * f)))
    patch = patch.astype(np.float64)
    if blur:
        patch = ndimage.gaussian_filter(patch, sigma=(blur, blur, 0))
    patch = patch[m : m + h, m : m + w]
    if noise:
        patch = patch + rng.normal(0.0, noise, patch.shape)

    sub = mask[y0:y1, x0:x1]
    if feather > 0:
        # distance to the nearest unmasked pixel; the image border is not a region edge
        alpha = np.minimum(1.0, ndimage.distance_transform_edt(mask)[y0:y1, x0:x1] / (feather + 1))
    else:
        alpha = sub.astype(np.float64)
    out = t.copy()
    dst = out[y0:y1, x0:x1]
    blend = to_uint8(alpha[..., None] * patch + (1 - alpha[..., None]) * dst)
    dst[sub] = blend[sub]
    params = {
        **info,
        "donor_offset": [oy, ox],
        "donor_jpeg_quality": q,
        "resample": resample,
        "blur": blur,
        "noise": noise,
        "feather": feather,
        "seed": seed,
    }
    return Forgery(out, mask, "splice", _json_safe(params), ("target", "donor"))


def _affine_patch(patch: np.ndarray, pmask: np.ndarray, rotation: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (degrees, counter-clockwise) and scale a patch about its centre (bilinear)."""
    h, w = pmask.shape
    th = math.radians(rotation)
    c, s = math.cos(th), math.sin(th)
    # forward map (row, col) -> (row', col'): scale * R about the centre
    fwd = scale * np.array([[c, s], [-s, c]])
    corners = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]], float) - [(h - 1) / 2, (w - 1) / 2]
    tc = corners @ fwd.T
    lo = np.floor(tc.min(0)) - 1
    hi = np.ceil(tc.max(0)) + 1
    oh, ow = int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1
    inv = np.linalg.inv(fwd)
    # input = inv @ (out + lo) + centre
    offset = inv @ lo + [(h - 1) / 2, (w - 1) / 2]
    m = (
        ndimage.affine_transform(
            pmask.astype(np.float64), inv, offset=offset, output_shape=(oh, ow), order=1, mode="constant", cval=0.0
        )
        >= 0.5
    )
    img = np.stack(
        [
            ndimage.affine_transform(
                patch[..., ch].astype(np.float64), inv, offset=offset, output_shape=(oh, ow), order=1, mode="nearest"
            )
            for ch in range(3)
        ],
        axis=-1,
    )
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return img[:0, :0], m[:0, :0]
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return img[y0:y1, x0:x1], m[y0:y1, x0:x1]


def copy_move(
    image: np.ndarray,
    *,
    seed: int,
    rotation: float = 0.0,
    scale: float = 1.0,
    area: Sequence[float] = _DEFAULT_AREA,
    region: str | None = "blob",
) -> Forgery:
    """Copy a region of ``image`` to another place in it (optionally rotated/scaled).

    ``area`` is the range of the *destination* (the mask). With ``rotation == 0`` and
    ``scale == 1`` the copy is exact (destination pixels equal the source pixels); otherwise
    bilinear. The destination avoids the source region when any placement allows it
    (``params['overlap']`` says whether it had to overlap).
    """
    img = _as_rgb(image)
    seed = _seed("copy_move", seed)
    rng = np.random.default_rng(seed)
    H, W = img.shape[:2]
    kmin, kmax = _check_area(area, H * W)
    scale = _real("copy_move: scale", scale, 0, above=True)
    rotation = _real("copy_move: rotation", rotation)
    identity = (rotation % 360 == 0) and scale == 1.0
    src_area = (area[0] / scale**2, area[1] / scale**2)
    if src_area[1] >= 1:
        raise ValueError(f"scale {scale} too small for area {tuple(area)}")
    for _ in range(30):
        smask, info = region_mask((H, W), rng, region, src_area)
        y0, y1, x0, x1 = info["bbox"]
        if identity:
            tpatch, tmask = img[y0:y1, x0:x1], smask[y0:y1, x0:x1]
        else:
            tpatch, tmask = _affine_patch(img[y0:y1, x0:x1], smask[y0:y1, x0:x1], rotation, scale)
        if kmin <= int(tmask.sum()) <= kmax and tmask.shape[0] <= H and tmask.shape[1] <= W:
            break
    else:
        raise ValueError("could not place a transformed region with the requested area; relax area, rotation or scale")
    th, tw = tmask.shape
    guard = ndimage.binary_dilation(smask, iterations=2)
    best, best_overlap = None, None
    for _ in range(200):
        dy, dx = int(rng.integers(0, H - th + 1)), int(rng.integers(0, W - tw + 1))
        ov = int(np.count_nonzero(guard[dy : dy + th, dx : dx + tw] & tmask))
        if best_overlap is None or ov < best_overlap:
            best, best_overlap = (dy, dx), ov
        if ov == 0:
            break
    dy, dx = best
    out = img.copy()
    mask = np.zeros((H, W), dtype=bool)
    mask[dy : dy + th, dx : dx + tw] = tmask
    dst = out[dy : dy + th, dx : dx + tw]
    src = tpatch if identity else to_uint8(tpatch)
    dst[tmask] = src[tmask]
    params = {
        "region": info["region"],
        "area_frac": float(mask.mean()),
        "source_bbox": [y0, y1, x0, x1],
        "dest_offset": [dy, dx],
        "rotation": rotation,
        "scale": scale,
        "overlap": bool(best_overlap),
        "seed": seed,
    }
    return Forgery(out, mask, "copy_move", _json_safe(params), ("image",))


def remove_object(
    image: np.ndarray, *, seed: int, area: Sequence[float] = _DEFAULT_AREA, region: str | None = "blob"
) -> Forgery:
    """Fill a region by biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``).

    Runs on the region's bounding box plus a 16-pixel margin (fast, and the solution only
    depends on the ring around the hole). Mask = inpainted pixels.
    """
    from skimage.restoration import (
        inpaint_biharmonic,
    )  # lazy: scikit-image is slow to import; only this function needs it

    img = _as_rgb(image)
    seed = _seed("remove_object", seed)
    rng = np.random.default_rng(seed)
    mask, info = region_mask(img.shape[:2], rng, region, area)
    sy, sx = _window(tuple(info["bbox"]), 16, mask.shape)
    crop = img[sy, sx].astype(np.float64) / 255.0
    filled = inpaint_biharmonic(crop, mask[sy, sx], channel_axis=-1)
    out = img.copy()
    sub = out[sy, sx]
    sub[mask[sy, sx]] = to_uint8(filled * 255.0)[mask[sy, sx]]
    return Forgery(out, mask, "remove_object", _json_safe({**info, "method": "biharmonic", "seed": seed}), ("image",))


def local_edit(
    image: np.ndarray,
    *,
    seed: int,
    op: str = "blur",
    strength: float | None = None,
    area: Sequence[float] = _DEFAULT_AREA,
    region: str | None = None,
) -> Forgery:
    """Edit a region in place: ``op`` and the meaning of ``strength`` (default in brackets):

    - ``resample``: zoom the content by ``strength`` about the region centre, bicubic [1.3];
    - ``blur``: Gaussian blur, sigma = ``strength`` [2.0];
    - ``sharpen``: unsharp masking (sigma 1), amount = ``strength`` [1.5];
    - ``contrast``: stretch about the region's mean colour by ``strength`` [1.5];
    - ``color``: per-channel gains ``1 + strength * d`` with a random zero-mean unit direction d [0.2].

    A strength that edits nothing (blur <= 0, resample <= 0 or 1, sharpen 0, contrast 1, color 0)
    is refused: the item would be labelled forged with no pixel changed.
    """
    img = _as_rgb(image)
    if op not in LOCAL_EDIT_OPS:
        raise ValueError(f"unknown op {op!r}; choose one of {LOCAL_EDIT_OPS}")
    s = _real(f"local_edit: {op} strength", _DEFAULT_STRENGTH[op] if strength is None else strength)
    if op in ("resample", "blur") and s <= 0:  # sigma 0 or below blurred nothing, yet the mask said forged
        raise ValueError(f"local_edit: {op} strength must be > 0, got {s:g}")
    if s == _NO_EDIT.get(op):
        raise ValueError(f"local_edit: {op} strength {s:g} leaves the region unchanged; a forgery must edit it")
    seed = _seed("local_edit", seed)
    rng = np.random.default_rng(seed)
    mask, info = region_mask(img.shape[:2], rng, region, area)
    extra: dict[str, Any] = {}
    x = img.astype(np.float64)
    if op == "resample":
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        coords = [cy + (ys - cy) / s, cx + (xs - cx) / s]
        vals = np.stack([ndimage.map_coordinates(x[..., c], coords, order=3, mode="mirror") for c in range(3)], axis=-1)
        out = img.copy()
        out[ys, xs] = to_uint8(vals)
        extra["zoom_center"] = [cy, cx]
    else:
        margin = 16 if op not in ("blur",) else int(3 * s) + 4
        sy, sx = _window(tuple(info["bbox"]), margin, mask.shape)
        win = x[sy, sx]
        sub = mask[sy, sx]
        if op == "blur":
            new = ndimage.gaussian_filter(win, sigma=(s, s, 0))
        elif op == "sharpen":
            new = win + s * (win - ndimage.gaussian_filter(win, sigma=(1.0, 1.0, 0)))
        elif op == "contrast":
            mean = win[sub].mean(axis=0)
            new = mean + s * (win - mean)
        else:  # color
            dvec = rng.standard_normal(3)
            dvec -= dvec.mean()
            dvec /= np.abs(dvec).max() + 1e-12
            gains = 1.0 + s * dvec
            new = win * gains
            extra["gains"] = gains
        out = img.copy()
        o = out[sy, sx]
        o[sub] = to_uint8(new)[sub]
    params = {**info, "op": op, "strength": s, **extra, "seed": seed}
    return Forgery(out, mask, "local_edit", _json_safe(params), ("image",))


def double_jpeg(
    image: np.ndarray,
    *,
    seed: int,
    q1: int,
    q2: int,
    aligned: bool = True,
    area: Sequence[float] = _DEFAULT_AREA,
    region: str | None = None,
    subsampling: str = "4:2:0",
) -> Forgery:
    """Region-wise double JPEG: a region compressed at ``q1`` then the whole image at ``q2``.

    The whole image is first JPEG-compressed at ``q1`` with its 8x8 grid at offset (0, 0)
    (``aligned=True``) or at a random offset (dy, dx), each in 1..7, (``aligned=False``; the
    image is mirror-padded so that every pixel is covered, then cropped back). The region's
    pixels are taken from that decoded q1 image, the rest from the source, and the composite
    is compressed at ``q2`` with the standard grid.

    The mask marks exactly the pixels taken from the q1 image, i.e. those with the
    q1-then-q2 history; its complement has a single (q2) history. Every pixel is recompressed,
    so no pixel is promised bit-identical to the source. Outside the 16x16 MCUs that touch
    the region and their 8 neighbouring MCUs (the decoder's chroma upsampling reads across MCU
    borders), the output is bit-identical to ``jpeg_compress(image, q2, subsampling)``.
    """
    img = _as_rgb(image)
    q1, q2 = _whole("double_jpeg: q1", q1, 1, 100), _whole("double_jpeg: q2", q2, 1, 100)
    seed = _seed("double_jpeg", seed)
    rng = np.random.default_rng(seed)
    mask, info = region_mask(img.shape[:2], rng, region, area)
    if aligned:
        dy = dx = 0
        first = jpeg_compress(img, q1, subsampling)
    else:
        dy, dx = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        # pad so that q1's block boundaries fall on rows = dy and cols = dx (mod 8)
        py, px = (8 - dy) % 8, (8 - dx) % 8
        padded = np.pad(img, ((py, 0), (px, 0), (0, 0)), mode="symmetric")
        first = jpeg_compress(padded, q1, subsampling)[py:, px:]
    composite = np.where(mask[..., None], first, img)
    out = jpeg_compress(np.ascontiguousarray(composite), q2, subsampling)
    params = {
        **info,
        "q1": q1,
        "q2": q2,
        "aligned": bool(aligned),
        "grid_shift": [dy, dx],
        "subsampling": subsampling,
        "seed": seed,
    }
    return Forgery(out, mask, "double_jpeg", _json_safe(params), ("image",))


def pristine(
    image: np.ndarray, *, final_jpeg: int | None = None, name: str = "", source: tuple[str, ...] = ("image",)
) -> Forgery:
    """A pristine item (label 0, empty mask), optionally JPEG-compressed once at ``final_jpeg``."""
    img = _as_rgb(image)
    if final_jpeg is not None:
        final_jpeg = _whole("pristine: final_jpeg", final_jpeg, 1, 100)
        img = jpeg_compress(img, final_jpeg)
    return Forgery(
        img.copy(),
        np.zeros(img.shape[:2], dtype=bool),
        "pristine",
        {"final_jpeg": final_jpeg},
        source,
        label=0,
        name=name,
    )


# --------------------------------------------------------------------------------------------
# registry and random forgeries
# --------------------------------------------------------------------------------------------

#: kind -> generator. Generators with a donor take it as second positional argument.
FORGERIES: dict[str, Callable[..., Forgery]] = {
    "splice": splice,
    "copy_move": copy_move,
    "remove_object": remove_object,
    "local_edit": local_edit,
    "double_jpeg": double_jpeg,
}


def _unknown(name: str, choices: Sequence[str], what: str) -> ValueError:
    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; choose one of {sorted(choices)}"
    return ValueError(f"unknown {what} {name!r}{hint}")


def make_forgery(
    kind: str, image: np.ndarray, donor: np.ndarray | None = None, seed: int = 0, **params: Any
) -> Forgery:
    """Dispatch to the generator ``kind`` (see ``FORGERIES``); ``splice`` needs ``donor``."""
    if kind not in FORGERIES:
        raise _unknown(kind, FORGERIES, "forgery kind")
    if kind == "splice":
        if donor is None:
            raise ValueError("splice needs a donor image")
        return splice(image, donor, seed=seed, **params)
    return FORGERIES[kind](image, seed=seed, **params)


def random_params(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Plausible random parameters for ``kind`` (JSON-safe python scalars)."""
    if kind == "splice":
        return {
            "region": REGIONS[int(rng.integers(len(REGIONS)))],
            "donor_jpeg_quality": int(rng.integers(60, 96)) if rng.random() < 0.5 else None,
            "resample": float(round(rng.uniform(0.7, 1.4), 3)) if rng.random() < 0.4 else None,
            "blur": float(round(rng.uniform(0.5, 1.5), 3)) if rng.random() < 0.25 else None,
            "noise": float(round(rng.uniform(1.0, 4.0), 3)) if rng.random() < 0.25 else None,
            "feather": int(rng.integers(0, 4)),
        }
    if kind == "copy_move":
        transformed = rng.random() < 0.5
        return {
            "rotation": float(round(rng.uniform(-30, 30), 2)) if transformed else 0.0,
            "scale": float(round(rng.uniform(0.85, 1.2), 3)) if transformed else 1.0,
        }
    if kind == "remove_object":
        return {}
    if kind == "local_edit":
        return {"op": LOCAL_EDIT_OPS[int(rng.integers(len(LOCAL_EDIT_OPS)))]}
    if kind == "double_jpeg":
        q2 = int(rng.integers(75, 96))
        q1 = int(rng.integers(50, q2 - 4))
        return {"q1": q1, "q2": q2, "aligned": bool(rng.random() < 0.5)}
    raise _unknown(kind, FORGERIES, "forgery kind")


def random_forgery(
    image: np.ndarray, donor: np.ndarray | None = None, seed: int = 0, *, kinds: Sequence[str] | None = None
) -> Forgery:
    """A forgery of a random kind with random parameters (splice only when a donor is given)."""
    seed = _seed("random_forgery", seed)
    rng = np.random.default_rng(seed)
    pool = [k for k in (kinds or FORGERIES) if donor is not None or k != "splice"]
    for k in pool:
        if k not in FORGERIES:
            raise _unknown(k, FORGERIES, "forgery kind")
    if not pool:
        raise ValueError("no forgery kind available (splice needs a donor)")
    kind = pool[int(rng.integers(len(pool)))]
    params = random_params(kind, rng)
    return make_forgery(kind, image, donor, seed=int(rng.integers(2**31)), **params)


# --------------------------------------------------------------------------------------------
# demo set
# --------------------------------------------------------------------------------------------

#: RGB images that scikit-image ships inside its wheel (no download).
_SKIMAGE_RGB = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def demo_images(size: int = 256) -> dict[str, np.ndarray]:
    """scikit-image's bundled RGB samples, centre-cropped to a square and resized to ``size``.

    Images that are not available offline are skipped.
    """
    import skimage.data  # lazy: scikit-image is slow to import; only this function needs it

    out: dict[str, np.ndarray] = {}
    for name in _SKIMAGE_RGB:
        try:
            arr = np.asarray(getattr(skimage.data, name)())
        except (ImportError, OSError, ValueError):  # not shipped in this install (would need a download)
            continue
        if arr.ndim != 3 or arr.shape[2] < 3:
            continue
        arr = arr[..., :3].astype(np.uint8)
        h, w = arr.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        sq = Image.fromarray(np.ascontiguousarray(arr[y0 : y0 + s, x0 : x0 + s]))
        out[name] = np.asarray(sq.resize((size, size), Image.LANCZOS))
    if not out:
        raise RuntimeError("no scikit-image sample image is available offline")
    return out


_PRISTINE_WORDS = frozenset({"pristine", "authentic", "real", "orig", "original", "originals"})
_FORGED_WORDS = ("tamper", "fake", "forg", "splic", "manip")
_MASK_SUFFIXES = ("_mask", "_gt", "-mask", "-gt")


def _mask_beside(image: Path, files: list[Path]) -> Path | None:
    """``<stem><suffix>.*`` among ``files``, spelled exactly, else with the suffix in any case
    (``_GT``, ``_Mask``: mask files are told from images case-blind, so they are found so too)."""
    for same in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        for suffix in _MASK_SUFFIXES:
            found = [f for f in files if f != image and same(f.stem, image.stem + suffix)]
            if found:
                return found[0]
    return None


def load_official_samples(directory: str | os.PathLike) -> list[Forgery]:
    """Images of a folder (e.g. the official TruFor samples) as items, untouched.

    The label is 1 when a mask beside the image marks forged pixels or a word of the name says
    so (``tampered``/``fake``/``forged``/...), else 0 when a (blank) mask is there or a word
    says ``pristine``/``real``/``authentic``/``original``; other images are skipped. Words are
    whole (``realestate_splice`` is not "real"). A mask is read from ``<stem>_mask.*`` /
    ``<stem>_gt.*`` beside the image with the benchmark reader's rules
    (:func:`~trufor_lab.lab.datasets.read_mask`: 0/1 or 0/255); a forged image
    without one gets ``mask=None`` (unknown, never a made-up empty mask). Images are not
    resized or recompressed, so their compression history is kept. An image that cannot be read
    is skipped with a one-line warning naming it; so is one whose mask cannot be read or marks
    forged pixels on a grid of another size, unless its name says forged (the label then does
    not hang on the mask): that one is kept with ``mask=None``, and the warning says so.
    """
    d = Path(directory)
    files = list_images(d, recursive=False)
    items: list[Forgery] = []
    for p in files:
        low = p.stem.lower()
        if any(low.endswith(s) for s in _MASK_SUFFIXES):
            continue
        words = re.split(r"[^a-z]+", low)  # whole words: "realestate" is not "real"
        named_forged = any(w.startswith(_FORGED_WORDS) for w in words)
        mask_path = _mask_beside(p, files)
        mask: np.ndarray | None = None
        bad_mask: str | None = None
        if mask_path is not None:
            try:  # the benchmark reader's rules: 0/1 and 0/255 masks, alpha-only masks refused
                mask = read_mask(mask_path)
            except DatasetError as e:  # one bad mask: the others are still the folder's items
                bad_mask = str(e)
        if (mask is not None and mask.any()) or named_forged:
            label = 1  # a mask with forged pixels means forged, whatever the name says
        elif mask is not None or (bad_mask is None and any(w in _PRISTINE_WORDS for w in words)):
            label = 0
        else:
            if bad_mask is not None:  # the mask could have said forged: the label is unknown
                warnings.warn(f"{bad_mask}; {p.name} skipped", stacklevel=2)
            continue
        try:  # the stored grid, as every reader here: 16-bit, CMYK, alpha read as analyze reads them
            img = load_image(p).rgb
        except ImageError as e:  # one bad file: the others are still the folder's items
            warnings.warn(f"{e}; skipped", stacklevel=2)
            continue
        if label == 1 and mask is not None and mask.shape != img.shape[:2]:
            bad_mask = f"{mask_path}: mask shape {mask.shape} != image {img.shape[:2]}"
            if not named_forged:
                warnings.warn(f"{bad_mask}; {p.name} skipped", stacklevel=2)
                continue
            mask = None
        if bad_mask is not None:
            warnings.warn(f"{bad_mask}; {p.name} kept without a mask (its name says forged)", stacklevel=2)
        if label == 0:
            mask = np.zeros(img.shape[:2], dtype=bool)
        items.append(
            Forgery(
                img, mask, "official" if label else "pristine", {"path": str(p)}, (p.name,), label=label, name=p.stem
            )
        )
    return items


#: The eight turns and mirrors of a square picture, identity first: further passes of demo_set.
_VIEWS: tuple[Callable[[np.ndarray], np.ndarray], ...] = tuple(
    (lambda a, k=k, flip=flip: np.ascontiguousarray(np.rot90(a[:, ::-1] if flip else a, k)))
    for flip in (False, True)
    for k in range(4)
)


def demo_set(
    n: int = 8,
    size: int = 256,
    seed: int = 0,
    include_official_dir: str | os.PathLike | None = None,
    *,
    final_jpeg: int | None = 90,
) -> list[Forgery]:
    """A small labelled set made on the fly, offline: pristine/forged pairs of the same images.

    Item ``2i`` is scikit-image sample ``i`` pristine, item ``2i + 1`` a random forgery of it
    (the donor for splices is the next sample). Past the 7 samples (``n > 14``) each further pass
    takes them turned or mirrored (``"_v1"`` ... ``"_v7"`` in the names), so no two pristine
    items are the same picture; at most 112 items. Every item, pristine or forged, ends with the
    same single JPEG at ``final_jpeg`` (for ``double_jpeg`` that JPEG *is* its q2), so the
    label is not given away by compression; with ``final_jpeg=None`` nothing is compressed at
    the end and ``double_jpeg`` is left out. The masks are the forgery regions. Official
    samples from ``include_official_dir`` are appended as they are (see
    :func:`load_official_samples`).
    """
    final_jpeg = None if final_jpeg is None else _whole("demo_set: final_jpeg", final_jpeg, 1, 100)  # 90.5 is not 90
    images = demo_images(size)
    names = list(images)
    n = _whole("demo_set: n", n, 0, 2 * len(names) * len(_VIEWS))  # beyond: pictures repeated
    kinds = [k for k in FORGERIES if final_jpeg is not None or k != "double_jpeg"]
    seed = _seed("demo_set", seed)
    rng = np.random.default_rng(seed)
    items: list[Forgery] = []
    for i in range(n):
        view = (i // 2) // len(names)
        base = names[(i // 2) % len(names)]
        name = base + (f"_v{view}" if view else "")
        img = _VIEWS[view](images[base])
        if i % 2 == 0:
            items.append(pristine(img, final_jpeg=final_jpeg, name=f"{name}_pristine", source=(name,)))
            continue
        donor_base = names[((i // 2) + 1) % len(names)]
        donor = _VIEWS[view](images[donor_base])
        donor_name = donor_base + (f"_v{view}" if view else "")  # its source as turned, as the host's
        kind = kinds[int(rng.integers(len(kinds)))]
        params = random_params(kind, rng)
        fseed = int(rng.integers(2**31))
        if kind == "double_jpeg":
            params["q2"] = final_jpeg
            params["q1"] = int(np.clip(params["q1"], 30, final_jpeg - 5)) if final_jpeg > 40 else params["q1"]
            f = double_jpeg(img, seed=fseed, **params)
        else:
            f = make_forgery(kind, img, donor, seed=fseed, **params)
            if final_jpeg is not None:
                f = replace(f, image=jpeg_compress(f.image, final_jpeg))
        src = (name, donor_name) if kind == "splice" else (name,)
        items.append(replace(f, params={**f.params, "final_jpeg": final_jpeg}, source=src, name=f"{name}_{kind}"))
    if include_official_dir is not None:
        items.extend(load_official_samples(include_official_dir))
    return items
