"""IEEE float32 on demand: TF32 (cuBLAS, cuDNN, oneDNN) and autocast off inside a ``with``.

Noiseprint++ visibly changes under TF32/float16/bfloat16, so its exact path runs inside
:func:`ieee_float32`. Every flag is set through the API the user uses (legacy ``allow_tf32``
or the newer ``fp32_precision``) and restored on exit: no global state changes.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def _matmul_ieee() -> Iterator[None]:
    """cuBLAS float32 matmuls without TF32, set and restored through the API the user uses."""
    m = torch.backends.cuda.matmul
    try:
        legacy = (torch.get_float32_matmul_precision(), m.allow_tf32)
    except RuntimeError:  # the new ``fp32_precision`` API is in use: legacy reads refuse
        saved = m.fp32_precision
        m.fp32_precision = "ieee"
        try:
            yield
        finally:
            m.fp32_precision = saved
        return
    torch.set_float32_matmul_precision("highest")
    m.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(legacy[0])
        if m.allow_tf32 != legacy[1]:  # setting it again after "medium" left PyTorch's state mixed
            m.allow_tf32 = legacy[1]


@contextlib.contextmanager
def _cudnn_ieee() -> Iterator[None]:
    """cuDNN convolutions without TF32 (restored on exit), through the API the user uses."""
    c = torch.backends.cudnn
    try:
        legacy = c.allow_tf32
    except RuntimeError:  # conv and rnn precisions set apart with the new API
        saved = (c.conv.fp32_precision, c.rnn.fp32_precision)
        c.conv.fp32_precision = c.rnn.fp32_precision = "ieee"
        try:
            yield
        finally:
            c.conv.fp32_precision, c.rnn.fp32_precision = saved
        return
    # a TF32 asked for above the conv setting (``torch.backends.fp32_precision = "tf32"``, or
    # cudnn's) still reaches it through the 'none' the legacy flag sets: set the leaves too,
    # where this PyTorch has them
    leaves = [b for b in (getattr(c, "conv", None), getattr(c, "rnn", None)) if hasattr(b, "fp32_precision")]
    before = [b.fp32_precision for b in leaves]
    c.allow_tf32 = False
    for b in leaves:
        b.fp32_precision = "ieee"
    try:
        yield
    finally:
        for b in leaves:
            b.fp32_precision = "none"  # what the legacy flag sets, then the flag as it was
        c.allow_tf32 = legacy
        for b, was in zip(leaves, before):
            if b.fp32_precision != was:  # inside an enclosing context: its 'ieee'
                b.fp32_precision = was


def _onednn_ieee(enabled: bool) -> contextlib.AbstractContextManager:
    """oneDNN on or off, IEEE float32 through the fp32_precision API (its legacy TF32 flag is for
    Intel GPUs); a PyTorch without that API has no reduced-precision float32 in oneDNN to undo."""
    mk = torch.backends.mkldnn
    try:
        return mk.flags(enabled=enabled, deterministic=mk.deterministic, allow_tf32=None, fp32_precision="ieee")
    except (TypeError, AttributeError):
        return mk.flags(enabled=enabled)


@contextlib.contextmanager
def ieee_float32(onednn: bool = True) -> Iterator[None]:
    """IEEE float32 for the enclosed code: no TF32 (cuBLAS, cuDNN, oneDNN), no autocast.

    ``onednn=False`` also switches oneDNN convolutions off on the CPU (the GEMM path sums more
    accurately; see noiseprint.py). Every flag is restored on exit: no global state changes.
    """
    mk = torch.backends.mkldnn
    with contextlib.ExitStack() as stack:
        stack.enter_context(_leaves_kept())
        stack.enter_context(_matmul_ieee())
        stack.enter_context(_cudnn_ieee())
        stack.enter_context(_onednn_ieee(mk.enabled and onednn))
        stack.enter_context(_onednn_leaves_ieee())
        stack.enter_context(autocast_off())
        yield


def _leaf_backends() -> list[Any]:
    """The ``fp32_precision`` settings of this PyTorch, general ones first (none before 2.9)."""
    b = torch.backends
    names = (
        "",
        "cuda.matmul",
        "cudnn",
        "cudnn.conv",
        "cudnn.rnn",
        "mkldnn",
        "mkldnn.matmul",
        "mkldnn.conv",
        "mkldnn.rnn",
    )
    found = []
    for name in names:
        obj = functools.reduce(lambda o, part: getattr(o, part, None), name.split(".") if name else [], b)
        if obj is not None and isinstance(getattr(obj, "fp32_precision", None), str):
            found.append(obj)
    return found


@contextlib.contextmanager
def _leaves_kept() -> Iterator[None]:
    """Every ``fp32_precision`` setting as it was, after the legacy calls inside (which write
    'ieee' into settings that were 'none', and so turned a later ``torch.backends.fp32_precision
    = "tf32"`` of the user's into IEEE matmuls)."""
    leaves = _leaf_backends()
    before = [b.fp32_precision for b in leaves]
    try:
        yield
    finally:
        for b, was in zip(leaves, before):
            if b.fp32_precision != was:
                b.fp32_precision = was


@contextlib.contextmanager
def _onednn_leaves_ieee() -> Iterator[None]:
    """oneDNN's own convolution/matmul/rnn settings to IEEE too: a user's ``mkldnn.conv.
    fp32_precision = "bf16"`` takes precedence over the general one (restored by _leaves_kept)."""
    mk = torch.backends.mkldnn
    for leaf in (getattr(mk, n, None) for n in ("conv", "matmul", "rnn")):
        if leaf is not None and isinstance(getattr(leaf, "fp32_precision", None), str):
            leaf.fp32_precision = "ieee"
    yield


@contextlib.contextmanager
def autocast_off() -> Iterator[None]:
    """No autocast in the enclosed code, whatever a caller's ``torch.autocast`` asks (restored on exit)."""
    with contextlib.ExitStack() as stack:
        for dev in ("cpu", "cuda"):
            if torch.is_autocast_enabled(dev):
                stack.enter_context(torch.autocast(dev, enabled=False))
        yield


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16): what makes bfloat16
    autocast pay off on the CPU. Read from ``/proc/cpuinfo`` (Linux) with PyTorch's own CPU
    capability as a cross-check (an AVX-512 build is needed for the oneDNN bf16 kernels)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    cap = torch.backends.cpu.get_cpu_capability()
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and cap.startswith("AVX512")


def _cast_float(x: Any, dtype: torch.dtype) -> Any:
    if torch.is_tensor(x) and x.is_floating_point() and x.dtype != dtype:
        return x.to(dtype)
    return x


#: Attribute set on a module while :func:`full_precision` keeps it in a dtype: code that runs the
#: module's pieces itself (the memory-lean forward) reads it through :func:`kept_precision`.
_KEPT_ATTR = "_trufor_lab_kept_dtype"


@contextlib.contextmanager
def full_precision(modules: Iterable[nn.Module], dtype: torch.dtype = torch.float32) -> Iterator[None]:
    """Inside an autocast region, run ``modules`` in ``dtype`` (autocast off, floating inputs cast
    up) for the duration of the block; their ``forward`` is restored on exit.

    Used by the fast mode for the few layers whose reduced precision costs the most accuracy for
    the least time (patch embeddings, feature fusion modules). Code that calls a module's
    pieces rather than its ``forward`` (the memory-lean forward) honours it through
    :func:`kept_precision`."""
    mods = list(modules)
    own = [m.__dict__.get("forward") for m in mods]  # an instance-level forward, if any

    def wrap(fwd: Callable[..., Any], device: str) -> Callable[..., Any]:
        @functools.wraps(fwd)
        def run(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device, enabled=False):
                return fwd(
                    *(_cast_float(a, dtype) for a in args), **{k: _cast_float(v, dtype) for k, v in kwargs.items()}
                )

        return run

    try:
        for m in mods:
            p = next(m.parameters(), None)
            m.forward = wrap(m.forward, p.device.type if p is not None else "cpu")
            setattr(m, _KEPT_ATTR, dtype)
        yield
    finally:
        for m, f in zip(mods, own):
            m.__dict__.pop(_KEPT_ATTR, None)
            if f is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = f


@contextlib.contextmanager
def kept_precision(module: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """For code that runs ``module``'s pieces itself: while :func:`full_precision` keeps the module
    in a dtype, autocast is off and the yielded function casts floating tensors to that dtype;
    otherwise nothing changes (the function returns its argument)."""
    dtype = module.__dict__.get(_KEPT_ATTR)
    if dtype is None:
        yield lambda t: t
        return
    p = next(module.parameters(), None)
    with torch.autocast(p.device.type if p is not None else "cpu", enabled=False):
        yield lambda t: _cast_float(t, dtype)
