"""Training losses of the three phases (weighted CE + Dice; confidence MSE; detection BCE)."""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F

from trufor_lab.model import TruFor


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the whole batch (defined for pristine-only batches too)."""
    inter = (prob * target).sum()
    return 1 - (2 * inter + eps) / (prob.sum() + target.sum() + eps)


def phase_loss(
    model: TruFor,
    phase: str,
    rgb: torch.Tensor,
    npm: torch.Tensor,
    mask: torch.Tensor,
    label: torch.Tensor,
    class_weights: Sequence[float] = (0.5, 2.5),
    ce_lambda: float = 0.3,
    amp: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The phase's loss on a batch (``rgb`` in [0, 1) as RGB/256, ``npm`` the Noiseprint++ maps,
    ``mask`` (B, H, W) bool, ``label`` (B,)) and its parts for the log."""
    size = tuple(rgb.shape[2:])
    ac = torch.autocast(rgb.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    if phase == "localization":
        with ac:
            logits = model.decode_head(model.forward_features(rgb, npm))
        logits = _resize(logits, size)
        w = torch.tensor(class_weights, dtype=torch.float32, device=rgb.device)
        ce = F.cross_entropy(logits, mask.long(), weight=w)
        dice = dice_loss(F.softmax(logits, 1)[:, 1], mask.float())
        loss = ce_lambda * ce + (1 - ce_lambda) * dice
        return loss, {"loss": loss.item(), "ce": ce.item(), "dice": dice.item()}
    with torch.no_grad(), ac:
        feats = model.forward_features(rgb, npm)
        logits = model.decode_head(feats)
    logits = _resize(logits, size)
    if phase == "confidence":
        with ac:
            conf = model.decode_head_conf(feats)
        conf = _resize(conf, size)[:, 0]
        p = F.softmax(logits, 1)[:, 1]
        tcp = torch.where(mask, p, 1 - p)
        loss = F.mse_loss(torch.sigmoid(conf), tcp)
        return loss, {"loss": loss.item(), "tcp_mean": tcp.mean().item()}
    with torch.no_grad(), ac:
        conf = _resize(model.decode_head_conf(feats), size)
    det = model.detection(model.pool(logits, conf))[:, 0]
    loss = F.binary_cross_entropy_with_logits(det, label.float())
    acc = ((det > 0) == (label > 0)).float().mean()
    return loss, {"loss": loss.item(), "acc": acc.item()}
