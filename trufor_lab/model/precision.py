"""IEEE float32 on demand: TF32 (cuBLAS, cuDNN, oneDNN) and autocast off inside a ``with``.

Noiseprint++ visibly changes under TF32/float16/bfloat16, so its exact path runs inside
:func:`ieee_float32`. Every flag is set through the API the user uses (legacy ``allow_tf32``
or the newer ``fp32_precision``) and restored on exit, as stored (a setting that followed its
parent follows it again). One limit, on machines where CUDA is available only: cuDNN's conv and rnn
settings read as before afterwards, but PyTorch cannot put back their fresh state once written,
so a later general ``torch.backends.fp32_precision = ...`` no longer reaches them (set
``torch.backends.cudnn.conv.fp32_precision`` itself). Without CUDA they are not touched.
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
    accurately; see noiseprint.py). Every flag is restored on exit (cuDNN's: see the module notes).
    """
    mk = torch.backends.mkldnn
    with contextlib.ExitStack() as stack:
        stack.enter_context(_leaves_kept())
        stack.enter_context(_matmul_ieee())
        if torch.cuda.is_available():  # cuDNN's conv/rnn keys, once written, cannot be put back as new
            stack.enter_context(_cudnn_ieee())
        stack.enter_context(_onednn_ieee(mk.enabled and onednn))
        stack.enter_context(_onednn_leaves_ieee())
        stack.enter_context(autocast_off())
        yield


#: PyTorch's ``fp32_precision`` keys (backend, op), general ones first (none before 2.9). cuDNN's
#: conv and rnn keys are left to :func:`_cudnn_ieee`: PyTorch ties them to its legacy TF32 flag, and
#: their fresh state cannot be written back (a written 'none' or 'tf32' no longer reads as it did).
_FP32_KEYS = (
    ("generic", "all"),
    ("cuda", "all"),
    ("mkldnn", "all"),
    ("cuda", "matmul"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)


def _stored_fp32_settings() -> dict[tuple[str, str], str]:
    """Each ``fp32_precision`` key as stored, not as read: a key stored 'none' reads its parent's
    value (op -> backend -> general), and writing that read value back pinned the key, so a user's
    later change of the parent (``mkldnn.fp32_precision = "none"`` after "bf16") no longer reached
    it. Whether a key follows its parent is seen by moving the parent for a moment."""
    get = getattr(torch._C, "_get_fp32_precision_getter", None)
    put = getattr(torch._C, "_set_fp32_precision_setter", None)
    stored: dict[tuple[str, str], str] = {}
    if get is None or put is None:
        return stored
    for key in _FP32_KEYS:
        try:
            read = get(*key)
        except RuntimeError:  # a key this PyTorch does not have
            continue
        parent = None if key == ("generic", "all") else ("generic", "all") if key[1] == "all" else (key[0], "all")
        if parent is None or read == "none" or parent not in stored:
            stored[key] = read
            continue
        put(*parent, "tf32" if read != "tf32" else "ieee")
        try:
            stored[key] = "none" if get(*key) != read else read
        finally:
            put(*parent, stored[parent])
    return stored


@contextlib.contextmanager
def _leaves_kept() -> Iterator[None]:
    """Every ``fp32_precision`` key stored as it was, after the calls inside (legacy ones write
    'ieee' into keys stored 'none'; PyTorch's own ``mkldnn.flags`` writes back a read value)."""
    stored = _stored_fp32_settings()
    try:
        yield
    finally:
        put = getattr(torch._C, "_set_fp32_precision_setter", None)
        for key, value in stored.items():
            put(*key, value)


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
