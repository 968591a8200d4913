"""Confidence-pooled detection head: the global integrity score of TruFor.

Eight statistics summarise the image: min, max, mean and mean square of the confidence logits
(uniform weights), and the same four of the anomaly logit difference (forged - pristine)
weighted by the confidence, ``w = softmax(log sigmoid(conf))`` over the pixels. Min and max
are soft (log-sum-exp), so they stay differentiable. A small MLP maps them to one logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STATISTIC_NAMES = (
    "conf_min",
    "conf_max",
    "conf_mean",
    "conf_msq",
    "anomaly_min",
    "anomaly_max",
    "anomaly_mean",
    "anomaly_msq",
)


def weighted_statistics_pooling(x: torch.Tensor, log_w: torch.Tensor | None = None) -> torch.Tensor:
    """Soft min, soft max, mean and mean square of ``x`` ``(B, C, H, W)`` under weights ``exp(log_w)``.

    ``log_w`` is ``(B, 1, H, W)`` and is normalised by a log-softmax over the pixels; ``None``
    means uniform weights. Returns ``(B, 4 * C)``.
    """
    b, c = x.shape[:2]
    x = x.reshape(b, c, -1)
    if log_w is None:
        log_w = x.new_zeros((b, 1, x.shape[-1]))
    else:
        log_w = log_w.reshape(b, 1, -1)
    log_w = F.log_softmax(log_w, dim=-1)
    x_min = -torch.logsumexp(log_w - x, dim=-1)
    x_max = torch.logsumexp(log_w + x, dim=-1)
    w = log_w.exp()
    x_avg = (w * x).sum(dim=-1)
    x_msq = (w * x * x).sum(dim=-1)
    return torch.cat((x_min, x_max, x_avg, x_msq), dim=1)


class ConfidencePooling(nn.Module):
    """The eight pooled statistics fed to the detection MLP (no parameters).

    ``weighting`` is an ablation knob: ``"confidence"`` (the model), ``"uniform"`` (ignore the
    confidence when pooling the anomaly logits).
    """

    def __init__(self) -> None:
        super().__init__()
        self.weighting = "confidence"

    def forward(self, logits: torch.Tensor, conf_logits: torch.Tensor) -> torch.Tensor:
        f_conf = weighted_statistics_pooling(conf_logits)
        diff = logits[:, 1:2] - logits[:, 0:1]
        log_w = F.logsigmoid(conf_logits) if self.weighting == "confidence" else None
        return torch.cat((f_conf, weighted_statistics_pooling(diff, log_w)), dim=-1)


def detection_mlp(in_features: int = 8, hidden: int = 128, dropout: float = 0.5) -> nn.Sequential:
    """Linear -> ReLU -> Dropout -> Linear to one detection logit (official layout/keys)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
