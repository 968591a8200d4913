"""Real in-camera photos as training, calibration and test data.

A folder of camera photos (e.g. fetched by :mod:`trufor_lab.training.fetch`, or the user's
own) becomes a list of :class:`Photo` (one per image or MPO frame) with a camera identity
(EXIF make + model; without EXIF, the sub-folder, else the photo itself). Splits are made by
camera (:func:`split_by_camera`), never by crop, so test cameras are never seen in training
or calibration.

Crops are taken at NATIVE resolution with offsets that are multiples of 8, so the camera's
JPEG 8x8 grid and its demosaicing/noise traces are kept (no resizing before cropping; EXIF
orientation is deliberately not applied, it would transpose the grid).

:class:`RealForgeryStream` makes training examples from them: pristine crops as negatives;
splices between photos of different cameras, between a photo and a simulated camera
(:class:`trufor_lab.training.camera.Camera`), and within one photo (copy-move, inpainting, local edits,
region-wise double JPEG); simulated-camera examples kept for variety; and the platform chain
of a viral image (:func:`platform_chain`: downscale, JPEG 70-90 or screenshot-like PNG)
applied to pristine and forged alike so it is not itself the signal.
"""

from __future__ import annotations

import numbers
import warnings
import weakref
from dataclasses import replace
from typing import Sequence

import numpy as np
from PIL import Image

from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.lab.forgeries import Forgery, random_params, splice
from trufor_lab.training.camera import downscale
from trufor_lab.training.edits import global_edit
from trufor_lab.training.photo_sets import (
    DEFAULT_SPLIT,
    SKIMAGE_PHOTOS,
    Photo,
    scan_photos,
    skimage_photos,
    split_by_camera,
)
from trufor_lab.training.scenes import builtin_images
from trufor_lab.training.streams import ForgeryStream, random_flip

__all__ = [
    "Photo",
    "scan_photos",
    "skimage_photos",
    "split_by_camera",
    "grid_crop",
    "tile_crops",
    "platform_chain",
    "RealForgeryStream",
    "real_heldout",
    "DEFAULT_SPLIT",
    "SKIMAGE_PHOTOS",
]


def grid_crop(
    rng: np.random.Generator, img: np.ndarray, size: int, name: str | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """A random ``size`` crop at native resolution whose offsets are multiples of 8 (JPEG grid
    kept); returns the crop and its (y, x). ``name``: the photo's, said in the error."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{name or 'image'}: {h}x{w} is smaller than a {size} px crop")
    y = 8 * int(rng.integers(0, (h - size) // 8 + 1))
    x = 8 * int(rng.integers(0, (w - size) // 8 + 1))
    return np.ascontiguousarray(img[y : y + size, x : x + size]), (y, x)


def tile_crops(img: np.ndarray, size: int, limit: int | None = None) -> list[np.ndarray]:
    """Non-overlapping ``size`` crops on a grid starting at (0, 0) (multiples of 8 when ``size``
    is), in raster order; at most ``limit``, then spread evenly over the whole grid (the first
    rows alone would be the sky of most photos)."""
    if limit is not None and limit < 0:
        raise ValueError(f"tile limit must be >= 0, got {limit}")
    h, w = img.shape[:2]
    corners = [(y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    if limit is not None and limit < len(corners):
        keep = np.unique(np.round(np.linspace(0, len(corners) - 1, limit)).astype(int)) if limit else []
        corners = [corners[i] for i in keep]
    return [np.ascontiguousarray(img[y : y + size, x : x + size]) for y, x in corners]


def _resize(a: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if a.dtype == bool:
        return np.asarray(Image.fromarray(a.astype(np.uint8) * 255).resize(hw[::-1], Image.NEAREST)) > 127
    return np.asarray(Image.fromarray(a).resize(hw[::-1], Image.NEAREST if nearest else Image.BICUBIC))


def platform_chain(
    rgb: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    size: int,
    p_resize: float = 0.5,
    p_screenshot: float = 0.2,
    quality: tuple[int, int] = (70, 90),
    p_444: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """What a social platform / a screenshot does to a viral image: optional downscale (to
    ``size``..input side), then JPEG at ``quality`` (default 70-90; chroma 4:4:4, as photo
    editors save, with ``p_444``, else 4:2:0) or, with ``p_screenshot``, a lossless PNG
    (nothing more). Output cropped to ``size`` at (0, 0), so the new JPEG grid is aligned with
    the crop. Returns (rgb, mask, description)."""
    h, w = rgb.shape[:2]
    desc = []
    if rng.random() < p_resize and min(h, w) > size:
        f = rng.uniform(size / min(h, w), 1.0)
        nh, nw = max(size, round(h * f)), max(size, round(w * f))
        rgb, mask = _resize(rgb, (nh, nw)), _resize(mask, (nh, nw))
        desc.append(f"resize{f:.2f}")
    rgb, mask = np.ascontiguousarray(rgb[:size, :size]), np.ascontiguousarray(mask[:size, :size])
    if rng.random() < p_screenshot:
        desc.append("png")
    else:
        q = int(rng.integers(quality[0], quality[1] + 1))
        sub = "4:4:4" if rng.random() < p_444 else "4:2:0"
        rgb = jpeg_compress(rgb, q, sub)
        desc.append(f"jpeg{q}" + ("/444" if sub == "4:4:4" else ""))
    return rgb, mask, "+".join(desc)


def _largest_source_size(size: int, p_resize: float) -> int:
    """The largest source crop :func:`_chain_source_size` can ask for."""
    return 8 * int(np.ceil(size * 1.8 / 8)) if p_resize > 0 else size


def _chain_source_size(rng: np.random.Generator, size: int, p_resize: float) -> int:
    """Side of the source crop so that an optional downscale can still yield ``size``."""
    if rng.random() < p_resize:
        return 8 * int(np.ceil(size * rng.uniform(1.05, 1.8) / 8))
    return size


def _simulated(scenes: Sequence[np.ndarray], flips: str, wide: bool) -> ForgeryStream:
    """Simulated cameras photographing ``scenes`` (the real streams' simulated share)."""
    return ForgeryStream(
        scenes,
        camera=True,
        traceable=True,
        forged_fraction=0.6,
        jpeg_prob=0.3,
        jpeg_quality=(75, 100),
        flips=flips,
        wide_cameras=wide,
    )


#: Per stream, which photos fit the source crop of each example size (:meth:`RealForgeryStream.usable`).
_FITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RealForgeryStream:
    """Training examples ``(rgb, mask, label)`` from real photos plus simulated cameras.

    Per example: with ``sim_fraction`` a simulated-camera example (:class:`ForgeryStream`,
    ``camera=True, traceable=True``); otherwise a native-resolution grid-aligned crop of a real
    photo, forged with ``forged_fraction``; ``weights`` of the kinds of forgery: splice from a
    photo of another camera, splice with a simulated camera on either side, a within-photo edit
    (copy-move, object removal, local edit, double JPEG; trace-changing variants) and, fourth
    (default 0), a splice between two photos of any cameras that were each saved again on their
    own (see ``source_resave``), so that what differs is their processing history rather than
    which of the few training cameras took them. The platform chain (:func:`platform_chain`) is applied to
    real examples, pristine and forged alike, with ``chain_prob``. ``source_resave``: the
    probability that a real crop (a pristine one, a host, a donor) had already been saved again
    before it was used (JPEG 70-98, 4:4:4 or 4:2:0 chroma, half of the time downscaled first by
    a factor drawn from ``source_scale``, as a messenger does: a 12 MP phone photo sent at
    1600 px is scaled by about 0.4): photos that reach a forger, or a fact-checker, rarely come
    straight from the camera. ``global_edit``: the probability that a real example, pristine or
    forged, was then edited as a whole (:func:`~trufor_lab.training.edits.global_edit`).

    Simulated cameras on real content: with ``rephotograph`` (an even total downscale factor,
    4 or more; 0 = off) the camera photos whose short side keeps 256 px or more after it are
    box-downscaled by that factor (which erases their own camera's traces, keeping real scenes,
    textures and light) and ``rephotograph_share`` of the simulated-camera examples are shot on
    them instead of the built-in scenes. ``sim_splice``: the fraction of forged simulated
    examples that are splices between two random simulated cameras; ``sim_chain``: the
    probability that a simulated example, pristine or forged, then goes through the platform
    chain as real ones do; ``wide_cameras``: the simulated cameras also vary in JPEG chroma
    subsampling and noise reduction. With all four off the simulated examples are drawn as before.
    """

    def __init__(
        self,
        photos: Sequence[Photo],
        *,
        sim_images: Sequence[np.ndarray] | None = None,
        sim_fraction: float = 0.25,
        forged_fraction: float = 0.5,
        chain_prob: float = 0.5,
        p_resize: float = 0.5,
        weights: Sequence[float] = (0.35, 0.25, 0.4, 0.0),
        chain_quality: tuple[int, int] = (70, 90),
        chain_p444: float = 0.0,
        flips: str = "hv",
        source_resave: float = 0.0,
        source_scale: tuple[float, float] = (0.5, 0.9),
        global_edit: float = 0.0,
        rephotograph: int = 0,
        rephotograph_share: float = 0.5,
        sim_chain: float = 0.0,
        sim_splice: float = 0.0,
        wide_cameras: bool = False,
    ) -> None:
        if not photos:
            raise ValueError("RealForgeryStream needs at least one photo")
        probs = (("sim_fraction", sim_fraction), ("forged_fraction", forged_fraction), ("chain_prob", chain_prob))
        probs += (("rephotograph_share", rephotograph_share), ("sim_chain", sim_chain), ("sim_splice", sim_splice))
        for k, v in probs:
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 1):
                raise ValueError(f"{k} must be a probability from 0 to 1, got {v!r}")
        q = tuple(chain_quality) if isinstance(chain_quality, (tuple, list)) else ()
        if len(q) != 2 or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in q):
            raise ValueError(f"chain_quality must be two whole JPEG qualities (low, high), got {chain_quality!r}")
        if not 1 <= q[0] <= q[1] <= 100:
            raise ValueError(f"chain_quality must satisfy 1 <= low <= high <= 100, got {chain_quality!r}")
        self.photos = list(photos)
        self.images = [p.load() for p in self.photos]
        self.cameras = [p.camera for p in self.photos]
        self.sim = _simulated(builtin_images("train") if sim_images is None else sim_images, flips, wide_cameras)
        self.resim = self._rephotographed(rephotograph, flips, wide_cameras)
        self.rephotograph, self.rephotograph_share = int(rephotograph), float(rephotograph_share)
        self.sim_chain, self.sim_splice, self.wide_cameras = float(sim_chain), float(sim_splice), bool(wide_cameras)
        self.sim_fraction, self.forged_fraction, self.chain_prob = sim_fraction, forged_fraction, chain_prob
        self.p_resize, self.flips, self.chain_quality = p_resize, flips, chain_quality
        self.chain_p444, self.source_resave = chain_p444, source_resave
        if not 0 < source_scale[0] <= source_scale[1] <= 1:
            raise ValueError(f"source_scale must satisfy 0 < low <= high <= 1, got {source_scale}")
        self.source_scale = (float(source_scale[0]), float(source_scale[1]))
        self.global_edit = float(global_edit)
        w = np.zeros(4)
        w[: len(weights)] = np.asarray(weights, float)[:4]
        if len(weights) not in (3, 4) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights: three or four non-negative kinds of forgery, not all 0, got {tuple(weights)}")
        self.weights = w / w.sum()
        self.multi_camera = len(set(self.cameras)) > 1
        # photos drawn in proportion to sqrt(pixels): large native camera photos dominate the
        # small, heavily processed scikit-image pictures without excluding them
        a = np.array([np.sqrt(im.shape[0] * im.shape[1]) for im in self.images])
        self.photo_p = a / a.sum()

    def _rephotographed(self, factor: int, flips: str, wide: bool) -> ForgeryStream | None:
        """The simulated cameras' stream on the camera photos downscaled by ``factor`` (None when 0)."""
        if not factor:
            return None
        if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or factor < 4 or factor % 2:
            raise ValueError(f"rephotograph must be 0 (off) or an even downscale factor of 4 or more, got {factor!r}")
        big = [im for im in self.images if min(im.shape[:2]) // factor >= 256]
        if not big:
            raise ValueError(f"rephotograph {factor}: no photo keeps a 256 px short side after downscaling by {factor}")
        # the stream's camera mode halves every scene once more: together the factor asked for
        scenes = [downscale(im, factor // 2) for im in big]
        return _simulated(scenes, flips, wide)

    def sim_example(
        self, rng: np.random.Generator, size: int, forged: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, int, str]:
        """One simulated-camera example ``(rgb, mask, label, kind)`` with this stream's
        ``rephotograph``, ``sim_splice`` and ``sim_chain`` settings."""
        st, kind0 = self.sim, "sim"
        if self.resim is not None and rng.random() < self.rephotograph_share:
            st, kind0 = self.resim, "resim"
        chain = self.sim_chain > 0 and rng.random() < self.sim_chain
        src = _chain_source_size(rng, size, self.p_resize) if chain else size
        if forged is None:
            forged = bool(rng.random() < st.forged_fraction)
        if forged and self.sim_splice > 0 and rng.random() < self.sim_splice:  # two random cameras
            host = st.source(rng, int(rng.integers(len(st.images))), src)
            donor = st.source(rng, int(rng.integers(len(st.images))), src)
            f = splice(host, donor, seed=int(rng.integers(2**31)), **random_params("splice", rng))
            rgb, mask, label, kind = f.image, f.mask, 1, "splice_2cams"
            if rng.random() < st.jpeg_prob:  # saved again as the stream's other examples are
                rgb = jpeg_compress(rgb, int(rng.integers(st.jpeg_quality[0], st.jpeg_quality[1] + 1)))
        else:
            rgb, mask, label, kind = st.synthetic(rng, src, forged)
        if chain:
            rgb, mask, kind = self._through_chain(rgb, mask, rng, size, src, kind)
        return rgb, mask, int(label and mask.any()), f"{kind0}:{kind}"

    def _through_chain(
        self, rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: int, src: int, kind: str
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """The platform chain with this stream's settings (a ``src`` crop larger than ``size`` is
        downscaled to it); ``kind`` gains what the chain did."""
        rgb, mask, how = platform_chain(
            rgb,
            mask,
            rng,
            size,
            p_resize=1.0 if src > size else 0.0,
            quality=self.chain_quality,
            p_444=self.chain_p444,
        )
        return rgb, mask, f"{kind}+{how}"

    def usable(self, size: int) -> np.ndarray:
        """Which photos give a ``size`` example's largest source crop (the platform chain's
        downscale starts from up to 1.8 x ``size``) whole: a smaller one would be mirror-padded,
        breaking its 8x8 grid, so it is left out (said once per size); none left is an error."""
        known = _FITS.setdefault(self, {})  # not an attribute: the pool's fingerprint reads them
        if size not in known:
            big = _largest_source_size(size, self.p_resize) if self.chain_prob > 0 else size
            fits = np.array([min(im.shape[:2]) >= big for im in self.images])
            small = [p.name for p, ok in zip(self.photos, fits) if not ok]
            if not fits.any():
                raise ValueError(f"no photo has a short side of {big} px, the source crop of a {size} px example")
            if small:
                warnings.warn(
                    f"{len(small)} photo(s) smaller than the {big} px source crop of a {size} px example left out "
                    f"of the stream (padding would break their JPEG grid): {', '.join(small)}",
                    stacklevel=3,
                )
            known[size] = fits
        return known[size]

    def _photo_crop(
        self,
        rng: np.random.Generator,
        size: int,
        exclude_camera: str | None = None,
        resave: bool | None = None,
        fits: np.ndarray | None = None,
    ) -> tuple[np.ndarray, str]:
        fits = np.ones(len(self.images), bool) if fits is None else fits
        p = np.array([q if c != exclude_camera and ok else 0.0 for q, c, ok in zip(self.photo_p, self.cameras, fits)])
        if p.sum() > 0:
            i = int(rng.choice(len(p), p=p / p.sum()))
        else:  # every fitting photo is of the excluded camera
            i = (
                int(np.flatnonzero(fits)[rng.integers(int(fits.sum()))])
                if not fits.all()
                else int(rng.integers(len(p)))
            )
        img = self.images[i]
        if resave is None:  # no draw when off
            resave = self.source_resave > 0 and rng.random() < self.source_resave
        f = rng.uniform(*self.source_scale) if resave and rng.random() < 0.5 else 1.0
        s = min(int(np.ceil(size / f / 8)) * 8, *img.shape[:2]) // 8 * 8
        crop, _ = grid_crop(rng, img, s, self.photos[i].name)
        if f < 1.0:  # a messenger re-encode: downscaled, then saved again
            crop = _resize(crop, (max(8, round(s * f)),) * 2)
            s = crop.shape[0]
        if s < size:
            crop = np.pad(crop, ((0, size - s), (0, size - s), (0, 0)), mode="reflect")
        crop = crop[:size, :size]
        if resave:  # the photo had been saved again before it was used (an editor, a platform)
            crop = jpeg_compress(crop, int(rng.integers(70, 99)), "4:4:4" if rng.random() < 0.5 else "4:2:0")
        return crop, self.cameras[i]

    def _sim_photo(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.sim.source(rng, int(rng.integers(len(self.sim.images))), size)

    def real_example(
        self, rng: np.random.Generator, size: int, forged: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, int, str]:
        """One real-photo example ``(rgb, mask, label, kind)`` at ``size``."""
        fits = self.usable(size)
        chain = rng.random() < self.chain_prob
        src = _chain_source_size(rng, size, self.p_resize) if chain else size
        rgb, cam = self._photo_crop(rng, src, fits=fits)
        mask = np.zeros(rgb.shape[:2], bool)
        label, kind = 0, "pristine"
        if forged if forged is not None else rng.random() < self.forged_fraction:
            what = rng.choice(4, p=self.weights)  # same draw as over three kinds when the fourth is 0
            if what == 3:  # two histories: host and donor (any photos) each saved again on their own
                rgb, _ = self._photo_crop(rng, src, resave=True, fits=fits)
                donor, _ = self._photo_crop(rng, src, resave=True, fits=fits)
                f = splice(rgb, donor, seed=int(rng.integers(2**31)), **random_params("splice", rng))
                kind = "splice_history"
            elif what == 0 and self.multi_camera:
                donor, _ = self._photo_crop(rng, src, exclude_camera=cam, fits=fits)
                f = splice(rgb, donor, seed=int(rng.integers(2**31)), **random_params("splice", rng))
                kind = "splice_real"
            elif what <= 1:
                sim = self._sim_photo(rng, src)
                host, donor = (rgb, sim) if rng.random() < 0.5 else (sim, rgb)
                f = splice(host, donor, seed=int(rng.integers(2**31)), **random_params("splice", rng))
                kind = "splice_sim"
            else:
                f = self.sim.forge(rng, rgb, None)
                kind = f.kind
            rgb, mask, label = f.image, f.mask, 1
        if self.global_edit > 0 and rng.random() < self.global_edit:  # no draw when off
            rgb, how = global_edit(rgb, rng)
            kind += "+" + how
        if chain:
            rgb, mask, kind = self._through_chain(rgb, mask, rng, size, src, kind)
        label = int(label and mask.any())
        return rgb, mask, label, kind

    def example(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """ForgeryStream-compatible: one training example (flipped, grid-preserving)."""
        if rng.random() < self.sim_fraction:
            if self.resim is None and not (self.sim_chain or self.sim_splice):
                return self.sim.example(rng, size)  # the earlier rounds' draws, unchanged
            rgb, mask, label, _ = self.sim_example(rng, size)
        else:
            rgb, mask, label, _ = self.real_example(rng, size)
        rgb, mask = random_flip(rng, [rgb, mask], self.flips)
        return rgb, mask, label


def real_heldout(
    photos: Sequence[Photo] | Sequence[tuple[str, np.ndarray]],
    n_pristine: int = 16,
    n_forged: int = 16,
    size: int = 256,
    seed: int = 0,
    recompress: tuple[int, int] | None = (70, 90),
    images: Sequence[np.ndarray] | None = None,
) -> list[Forgery]:
    """Held-out real test items: pristine grid-aligned native crops and splices between photos
    of DIFFERENT cameras (host crop + donor crop of another camera, random region, donor
    processing as in :func:`trufor_lab.lab.forgeries.splice`), both then re-saved as JPEG at
    ``recompress`` quality (pristine and forged alike; ``None``: native, no recompression).
    Needs photos from at least two cameras; ``photos``: :class:`Photo` records or
    ``(camera, pixels)`` pairs."""
    photos = list(photos)
    if photos and all(isinstance(p, tuple) for p in photos):  # (camera, pixels) pairs
        cams = [str(c) for c, _ in photos]
        imgs = list(images) if images is not None else [np.asarray(a) for _, a in photos]
        names = [f"{c}#{i}" for i, c in enumerate(cams)]
    else:
        cams = [p.camera for p in photos]
        names = [p.name for p in photos]
        imgs = list(images) if images is not None else [p.load() for p in photos]
    if n_forged and len(set(cams)) < 2:
        raise ValueError("real_heldout needs photos from at least two cameras")
    rng = np.random.default_rng(seed)
    items: list[Forgery] = []

    def crop(i: int) -> np.ndarray:
        return grid_crop(rng, imgs[i], size, names[i])[0]

    def finish(rgb: np.ndarray) -> tuple[np.ndarray, str]:
        if recompress is None:
            return rgb, "native"
        q = int(rng.integers(recompress[0], recompress[1] + 1))
        return jpeg_compress(rgb, q), f"jpeg{q}"

    for k in range(n_pristine):
        i = k % len(imgs)
        rgb, how = finish(crop(i))
        items.append(
            Forgery(
                rgb,
                np.zeros((size, size), bool),
                "pristine",
                {"camera": cams[i], "post": how},
                (names[i],),
                label=0,
                name=f"{names[i]}_pristine{k}",
            )
        )
    for k in range(n_forged):
        i = k % len(imgs)
        others = [j for j in range(len(imgs)) if cams[j] != cams[i]]
        j = others[int(rng.integers(len(others)))]
        params = random_params("splice", rng)
        params["area"] = (0.05, 0.25)
        f = splice(crop(i), crop(j), seed=int(rng.integers(2**31)), **params)
        rgb, how = finish(f.image)
        items.append(
            replace(
                f,
                image=rgb,
                params={**f.params, "camera": cams[i], "donor_camera": cams[j], "post": how},
                name=f"{names[i]}_splice{k}_from_{names[j]}",
            )
        )
    return items
