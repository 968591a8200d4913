"""A toy in-camera pipeline: the processing traces that Noiseprint++ learned to see.

A real photo carries a consistent fingerprint of how it was made: colour filter array (CFA)
and demosaicing, sensor noise whose level depends on brightness, tone curve, sharpening and
the camera's JPEG. Splicing content made by *another* pipeline breaks that consistency, and
that is what TruFor localizes. :class:`Camera` simulates such a pipeline so that synthetic
training and test images (``trufor_lab.training``) have realistic, camera-specific traces
instead of none.

>>> import numpy as np
>>> from trufor_lab.training.camera import Camera
>>> cam = Camera.random(np.random.default_rng(0))
>>> scene = np.full((64, 64, 3), 128, np.uint8)
>>> photo = cam.capture(scene, np.random.default_rng(1))
>>> photo.shape, photo.dtype
((64, 64, 3), dtype('uint8'))

The model is deliberately simple (bilinear demosaicing, Poisson-Gaussian noise, power-law
tone curve, unsharp masking, baseline JPEG); it is a teaching and training aid, not a
calibrated camera model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from trufor_lab.forensics.jpeg import jpeg_compress

__all__ = ["Camera", "CFA_PATTERNS", "downscale"]

#: Bayer layouts: colour (0 = R, 1 = G, 2 = B) of the 2x2 cell in reading order.
CFA_PATTERNS = {"RGGB": (0, 1, 1, 2), "BGGR": (2, 1, 1, 0), "GRBG": (1, 0, 2, 1), "GBRG": (1, 2, 0, 1)}

_SUBSAMPLINGS = ("4:2:0", "4:2:2", "4:4:4")
_K_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float64) / 4
_K_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float64) / 4


@dataclass(frozen=True)
class Camera:
    """One capture pipeline. Noise std in linear units is ``sqrt(shot * x + read ** 2)``."""

    pattern: str = "RGGB"
    shot: float = 5e-4
    read: float = 2e-3
    gamma: float = 2.2
    sharpen: float = 0.0
    jpeg_quality: int | None = 90
    #: chroma subsampling of the camera's JPEG ("4:2:0", or "4:2:2" / "4:4:4" as many cameras save)
    subsampling: str = "4:2:0"
    #: noise reduction after demosaicing: Gaussian sigma (px) on the colour differences, a third
    #: of it on luma (cameras smooth chroma noise hardest); 0 = none
    denoise: float = 0.0

    def __post_init__(self) -> None:
        if self.pattern not in CFA_PATTERNS:
            raise ValueError(f"unknown CFA pattern {self.pattern!r}; choose one of {sorted(CFA_PATTERNS)}")
        if self.shot < 0 or self.read < 0 or self.gamma <= 0 or self.sharpen < 0 or self.denoise < 0:
            raise ValueError("shot, read, sharpen and denoise must be >= 0 and gamma > 0")
        if self.subsampling not in _SUBSAMPLINGS:
            raise ValueError(f"unknown chroma subsampling {self.subsampling!r}; choose one of {list(_SUBSAMPLINGS)}")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100 or None, got {self.jpeg_quality}")

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        jpeg_quality: tuple[int, int] = (75, 98),
        p_raw: float = 0.15,
        wide: bool = False,
    ) -> "Camera":
        """A random plausible camera; with probability ``p_raw`` it saves without JPEG.
        ``wide``: also a random chroma subsampling of its JPEG (4:2:0, 4:2:2, 4:4:4) and, half
        of the time, noise reduction (sigma 0.5-2), drawn after the other settings (which stay
        those of the same ``rng`` without ``wide``)."""
        patterns = sorted(CFA_PATTERNS)
        cam = cls(
            pattern=patterns[int(rng.integers(len(patterns)))],
            shot=float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-3)))),
            read=float(np.exp(rng.uniform(np.log(5e-4), np.log(5e-3)))),
            gamma=float(rng.uniform(1.8, 2.6)),
            sharpen=float(rng.uniform(0.2, 1.2)) if rng.random() < 0.5 else 0.0,
            jpeg_quality=None if rng.random() < p_raw else int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1)),
        )
        if not wide:
            return cam
        sub = _SUBSAMPLINGS[int(rng.integers(len(_SUBSAMPLINGS)))]
        return replace(cam, subsampling=sub, denoise=float(rng.uniform(0.5, 2.0)) if rng.random() < 0.5 else 0.0)

    def as_dict(self) -> dict:
        return asdict(self)

    def capture(self, scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Photograph ``scene`` (uint8 RGB, treated as display-referred radiance); uint8 RGB out."""
        x = np.asarray(scene, dtype=np.float64)[..., :3] / 255.0
        lin = x**2.2  # back to (approximately) linear light
        h, w = lin.shape[:2]
        cfa = self._cfa(h, w)
        raw = np.take_along_axis(lin, cfa[..., None], axis=2)[..., 0]
        raw = raw + rng.standard_normal(raw.shape) * np.sqrt(self.shot * np.clip(raw, 0, None) + self.read**2)
        rgb = self._demosaic(np.clip(raw, 0, 1), cfa)
        if self.denoise > 0:
            rgb = self._denoise(rgb)
        out = np.clip(rgb, 0, 1) ** (1.0 / self.gamma)
        if self.sharpen > 0:
            out = out + self.sharpen * (out - ndimage.gaussian_filter(out, sigma=(1.0, 1.0, 0)))
        img = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self.jpeg_quality is not None:
            img = jpeg_compress(img, int(self.jpeg_quality), self.subsampling)
        return img

    def _denoise(self, rgb: np.ndarray) -> np.ndarray:
        """Smooth the colour differences (R - G, B - G) with sigma ``denoise`` and G with a third of it."""
        g = ndimage.gaussian_filter(rgb[..., 1], self.denoise / 3)
        out = np.empty_like(rgb)
        for c in (0, 2):
            out[..., c] = g + ndimage.gaussian_filter(rgb[..., c] - rgb[..., 1], self.denoise)
        out[..., 1] = g
        return out

    def _cfa(self, h: int, w: int) -> np.ndarray:
        cell = np.array(CFA_PATTERNS[self.pattern]).reshape(2, 2)
        return np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]

    @staticmethod
    def _demosaic(raw: np.ndarray, cfa: np.ndarray) -> np.ndarray:
        """Bilinear demosaicing (normalised convolution, exact at sampled pixels)."""
        out = np.empty(raw.shape + (3,))
        for c, k in ((0, _K_RB), (1, _K_GREEN), (2, _K_RB)):
            m = (cfa == c).astype(np.float64)
            num = ndimage.convolve(raw * m, k, mode="mirror")
            den = ndimage.convolve(m, k, mode="mirror")
            out[..., c] = np.where(m > 0, raw, num / np.maximum(den, 1e-12))
        return out


def downscale(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Box-average downscale by an integer ``factor``: removes most earlier processing traces
    (noise, JPEG blocks, demosaicing) so that an image can serve as a clean scene."""
    a = np.asarray(image, dtype=np.float64)[..., :3]
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    a = a[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
    return (a + 0.5).astype(np.uint8)
