"""TruFor (Guillaro et al., "TruFor: Leveraging all-round clues for trustworthy image forgery
detection and localization", CVPR 2023).

    rgb / 256 ──► Noiseprint++ (DnCNN) ──► np map, tiled to 3 channels ─┐
        │                                                               ▼
        └──► ImageNet normalisation ──► dual MiT encoder + CMX fusion ──► 4 fused maps
                                             ├──► anomaly decoder ──► logits (2 classes)
                                             └──► confidence decoder ──► conf logits
              confidence-weighted statistics pooling (8 numbers) ──► detection MLP ──► det logit

Input contract: an RGB image as ``float`` in ``[0, 1)``, scaled by 1/256 (not 1/255), ``(B, 3, H, W)``,
not normalised: Noiseprint++ needs the raw pixel values; only the RGB branch is normalised,
inside the model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trufor_lab.common.arrays import record_repr

from .attention import check_attention
from .config import MIT_B2, TruForConfig
from .decoder import MLPDecoder, folded_decode
from .detection import ConfidencePooling, detection_mlp
from .encoder import DualMiTEncoder
from .identity import LoadedWeights
from .noiseprint import Noiseprint
from .segformer import SpatialReductionAttention

#: Smallest side the official TruFor can process: stage 1's spatial reduction (8x8 stride 8 at
#: 1/4 scale) needs at least one output position. Another config: ``TruFor.min_side``.
MIN_TRUFOR_SIDE = MIT_B2.min_side


class TruForOutput(NamedTuple):
    """Raw network outputs at input resolution.

    ``logits`` (B, 2, H, W) pristine/forged; ``conf_logits`` (B, 1, H, W); ``det_logit`` (B, 1);
    ``noiseprint`` (B, 1, H, W).
    """

    __repr__ = record_repr  # one line: arrays by dtype and shape, not every value

    logits: torch.Tensor
    conf_logits: torch.Tensor
    det_logit: torch.Tensor
    noiseprint: torch.Tensor

    @property
    def map(self) -> torch.Tensor:
        """Localization map: probability of 'forged' per pixel, (B, H, W)."""
        return F.softmax(self.logits, dim=1)[:, 1]

    @property
    def conf(self) -> torch.Tensor:
        """Confidence map in [0, 1], (B, H, W)."""
        return torch.sigmoid(self.conf_logits)[:, 0]

    @property
    def score(self) -> torch.Tensor:
        """Global integrity score (probability that the image is manipulated), (B,)."""
        return torch.sigmoid(self.det_logit)[:, 0]


class TruFor(LoadedWeights, nn.Module):
    """The whole TruFor network. ``forward(rgb)`` returns a :class:`TruForOutput`.

    ``noiseprint=`` replaces the Noiseprint++ map fed to the encoder (modality ablations,
    attribution w.r.t. both encoder inputs); it is ``(B, 1, H, W)`` or ``(B, 3, H, W)``.
    """

    def __init__(self, cfg: TruForConfig = MIT_B2) -> None:
        super().__init__()
        self.cfg = cfg
        # Registered in the official order, so state dicts list keys as the official ones do.
        self.backbone = DualMiTEncoder(cfg)
        dims = cfg.embed_dims
        self.decode_head = MLPDecoder(dims, cfg.num_classes, cfg.decoder_embed_dim, bn_eps=cfg.decoder_bn_eps)
        self.decode_head_conf = MLPDecoder(dims, 1, cfg.decoder_embed_dim)
        self.pool = ConfidencePooling()
        self.detection = detection_mlp(8)
        self.dncnn = Noiseprint(num_levels=cfg.np_levels)
        self.register_buffer("rgb_mean", torch.tensor(cfg.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(cfg.rgb_std).view(1, 3, 1, 1), persistent=False)
        #: Where the weights came from (set by the loaders); ``None`` means not loaded.
        self.weights_info = None

    @property
    def min_side(self) -> int:
        """Smallest image side this network can process (:attr:`TruForConfig.min_side`)."""
        return self.cfg.min_side

    def check_input(self, rgb: torch.Tensor, noiseprint: torch.Tensor | None = None) -> None:
        """A one-line ``ValueError`` for a batch of the wrong shape, an image smaller than
        :attr:`min_side` or a ``noiseprint`` map that does not match the batch (these gave raw
        errors from deep inside the encoder). Shapes only: values are checked by ``predict``."""
        if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.shape[0] < 1:
            raise ValueError(f"TruFor expects an RGB batch (B >= 1, 3, H, W), got shape {tuple(rgb.shape)}")
        b, _, h, w = rgb.shape
        if min(h, w) < self.min_side:
            raise ValueError(f"image is {w}x{h}; TruFor needs at least {self.min_side} pixels on each side")
        if noiseprint is None:
            return
        shape = tuple(noiseprint.shape) if isinstance(noiseprint, torch.Tensor) else type(noiseprint).__name__
        if (
            not isinstance(noiseprint, torch.Tensor)
            or noiseprint.ndim != 4
            or noiseprint.shape[1] not in (1, 3)
            or ((noiseprint.shape[0], *noiseprint.shape[2:]) != (b, h, w))
        ):
            raise ValueError(
                f"noiseprint= must be ({b}, 1, {h}, {w}) or ({b}, 3, {h}, {w}) for images of shape "
                f"{tuple(rgb.shape)}; got {shape}"
            )

    # -- pieces, usable on their own --------------------------------------------------------
    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of the RGB branch input."""
        return (rgb - self.rgb_mean) / self.rgb_std

    def forward_noiseprint(self, rgb: torch.Tensor) -> torch.Tensor:
        """Noiseprint++ map ``(B, 1, H, W)`` in the weights' precision (float32/float64 exact; a
        half-precision cast warns: :class:`~.noiseprint.HalfPrecisionWarning`)."""
        return self.dncnn(rgb)

    def forward_features(self, rgb: torch.Tensor, noiseprint: torch.Tensor) -> list[torch.Tensor]:
        """The four fused encoder maps (1/4 .. 1/32 resolution)."""
        x_np = noiseprint.to(rgb.dtype)
        if x_np.shape[1] == 1:
            x_np = x_np.expand(-1, 3, -1, -1)
        return self.backbone(self.normalize(rgb), x_np)

    def forward_heads(
        self, feats: list[torch.Tensor], size: tuple[int, int], folded: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoders and detection head: (logits, conf_logits, det_logit) at ``size``.

        ``folded``: both decoders through :func:`~.decoder.folded_decode` (eval mode; same
        network up to float32 rounding, several times cheaper).
        """
        if folded:
            low = folded_decode((self.decode_head, self.decode_head_conf), feats)
        else:
            low = [self.decode_head(feats), self.decode_head_conf(feats)]
        logits, conf = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in low)
        det = self.detection(self.pool(logits, conf))
        return logits, conf, det

    def forward(self, rgb: torch.Tensor, noiseprint: torch.Tensor | None = None) -> TruForOutput:
        self.check_input(rgb, noiseprint)
        rgb = rgb.to(self.decode_head.linear_pred.weight.dtype)
        np_map = self.forward_noiseprint(rgb) if noiseprint is None else noiseprint
        feats = self.forward_features(rgb, np_map)
        logits, conf, det = self.forward_heads(feats, rgb.shape[2:])
        return TruForOutput(logits, conf, det, np_map)

    # -- configuration ----------------------------------------------------------------------
    def set_attention(self, impl: str = "sdpa", chunk: int | None = None) -> "TruFor":
        """Choose how spatial-reduction attention is evaluated (all exact; see attention.py):
        ``impl`` ``"sdpa"`` or ``"plain"``, ``chunk`` queries per step (``None``: all at once).
        ``predict`` and ``analyze`` follow it unless their ``InferenceMode`` sets one."""
        check_attention(impl, chunk)
        for m in self.modules():
            if isinstance(m, SpatialReductionAttention):
                m.impl, m.chunk = impl, chunk
        return self
