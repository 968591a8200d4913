"""Where a model lives and in which precision, read from its parameters."""

from __future__ import annotations

import torch
from torch import nn


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first parameter (float32 for a module without any)."""
    return next((p.dtype for p in model.parameters()), torch.float32)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a module without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


#: The device names :func:`resolve_device` takes, as the help of every ``--device`` and its own
#: error list them (``cuda:N``: the GPU of that index).
DEVICE_NAMES = ("cpu", "cuda", "cuda:N", "mps", "auto")


def device_names() -> str:
    """:data:`DEVICE_NAMES` as a sentence lists them: ``'cpu', 'cuda', ... or 'auto'``."""
    quoted = [f"'{n}'" for n in DEVICE_NAMES]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``'auto'`` -> CUDA when available, else CPU; any other name as given, refused in
    one line (``ValueError``) when PyTorch cannot use it here, before a model or image is read."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(device)!r} is not a device name (use {device_names()})") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: no CUDA GPU is usable by this PyTorch "
                f"({torch.__version__}); use 'cpu' (or 'auto', which picks a GPU when there is one)"
            )
        n = torch.cuda.device_count()
        if d.index is not None and d.index >= n:
            raise ValueError(f"device {str(device)!r}: this machine has {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    elif d.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(device)!r}: Apple's MPS backend is not available here; use 'cpu'")
    elif d.type not in ("cpu", "cuda", "mps"):  # 'meta' loaded a model of no values, then failed per image
        raise ValueError(f"device {str(device)!r}: trufor_lab runs on {device_names()}")
    return d


def cuda_bf16_native(device: str | torch.device = "cuda") -> bool:
    """Whether this CUDA GPU computes bfloat16 natively (Ampere, compute capability 8, or later):
    on older GPUs PyTorch emulates it, slower than float32. ``True`` where no GPU can be asked
    (what the GPUs PyTorch builds for today do)."""
    if not torch.cuda.is_available():
        return True
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8
