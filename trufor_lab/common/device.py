"""Where a model lives and in which precision, read from its parameters."""

from __future__ import annotations

import torch
from torch import nn


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first parameter."""
    return next(model.parameters()).dtype


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device
