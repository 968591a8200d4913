"""Activation capture: record the named tensors (:mod:`trufor_lab.model.catalog` names or globs)
of one forward pass with hooks that are always removed, also on errors.

Hooks fire only in the plain forward: while a capture is active it is registered as an
intervention (:mod:`trufor_lab.model.interventions`), so the memory-lean forward is refused.
A capture records what the network used: its hooks are moved behind any hook placed after it
(an ablation's, a user's) at every call of the model or of a part called directly, so replaced
inputs and outputs are seen whatever the nesting order. Each call of the model starts a fresh
record; so does a direct call of a part (``model.backbone(...)``, ``model.forward_features(...)``)
that would record an entry an earlier call already recorded, so a record never mixes two inputs.
A capture records the forwards of the thread that opened it: its hooks let other threads'
forwards pass untouched (they neither record, nor start a fresh record, nor reorder hooks), and
say how many they let pass when a name is missing. Before, a widget's or a thread pool's
forward replaced the record of the thread that had the capture open. (An ablation open in another
thread refuses this thread's forwards: :mod:`trufor_lab.model.interventions`.)

Transformer tokens ``(B, N, C)`` are recorded as ``(B, C, H, W)`` maps; attention maps as
``(B, heads, Hq, Wq, Hk, Wk)``, with queries subsampled above ``max_elements``.

>>> with capture(model, ["fusion.*.ffm", "detection.stats"]) as cap:
...     model(x)
>>> cap.tensors["fusion.stage1.ffm"].shape
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from trufor_lab.model.catalog import LayerSpec, Shape, catalog_and_modules, resolve_names, unknown_layer
from trufor_lab.model.interventions import registered
from trufor_lab.model.segformer import tokens_to_map

__all__ = ["ATTENTION_MAX_ELEMENTS", "Capture", "CaptureError", "capture"]

_ident = threading.get_ident  # which thread a hook runs in: a capture records only its own

#: Default cap on the number of elements of one recorded attention map (subsampled above it).
ATTENTION_MAX_ELEMENTS = 2**24


class CaptureError(RuntimeError):
    """A capture that cannot be done as asked (e.g. an attention map too large to record)."""


# -- capture ----------------------------------------------------------------------------------
def _subsample_stride(shape: Shape, spatial: tuple[int, int], limit: int) -> int:
    """Smallest stride s so that the tensor with its two spatial dims strided by s fits ``limit``."""
    numel = 1
    for d in shape:
        numel *= d
    if numel <= limit:
        return 1
    rest = numel // max(1, spatial[0] * spatial[1])
    s = 1
    while s < max(spatial):
        s += 1
        if rest * (-(-spatial[0] // s)) * (-(-spatial[1] // s)) <= limit:
            return s
    return max(spatial)


def _attention_weights(attn: nn.Module, x: torch.Tensor, hw: tuple[int, int], limit: int) -> tuple[torch.Tensor, int]:
    """softmax(q k^T * scale) of a SpatialReductionAttention, for queries on a strided grid."""
    b, n, c = x.shape
    heads = attn.num_heads
    kv_in = x
    if getattr(attn, "sr_ratio", 1) > 1:
        kmap = attn.sr(tokens_to_map(x, hw))
        khw = (kmap.shape[2], kmap.shape[3])
        kv_in = attn.norm(kmap.flatten(2).transpose(1, 2))
    else:
        khw = tuple(hw)
    nk = khw[0] * khw[1]
    s = _subsample_stride((b, heads, hw[0], hw[1], nk), hw, limit)
    hq, wq = -(-hw[0] // s), -(-hw[1] // s)
    if b * heads * hq * wq * nk > limit:
        raise CaptureError(
            f"attention map of {b}x{heads} heads x {nk} keys needs {b * heads * hq * wq * nk} elements "
            f"even with one query; raise max_elements (now {limit}) or capture a smaller image"
        )
    xq = x.reshape(b, hw[0], hw[1], c)[:, ::s, ::s].reshape(b, hq * wq, c) if s > 1 else x
    q = attn.q(xq).reshape(b, hq * wq, heads, c // heads).transpose(1, 2)
    k = attn.kv(kv_in).reshape(b, nk, 2, heads, c // heads)[:, :, 0].transpose(1, 2)
    p = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
    return p.reshape(b, heads, hq, wq, khw[0], khw[1]), s


class Capture:
    """Records the named tensors of one forward pass. Use as a context manager (or :meth:`start` /
    :meth:`release`); hooks are always removed on exit, also on errors and ``KeyboardInterrupt``.

    ``tensors``: name -> tensor (maps as ``(B, C, H, W)``); ``strides``/``notes``: what
    ``max_elements`` subsampling did; ``grad=True`` keeps the autograd graph (tensors stay on
    their device, are part of the graph and ``retain_grad()``; ``to_cpu`` is ignored). Attention
    maps are recomputed beside the forward, not part of its graph: ``grad=True`` refuses them.
    Each call of the model starts afresh: after several calls inside the block, ``tensors``,
    ``strides``, ``notes`` and ``missing`` describe the last one. Direct calls of its parts
    (``forward_noiseprint``, ``forward_features``, ``forward_heads``, a submodule) add to the
    record, unless one records an entry that an earlier call recorded: then only this call's
    entries stay.
    """

    def __init__(
        self,
        model: nn.Module,
        names: str | Iterable[str],
        *,
        to_cpu: bool = True,
        max_elements: int | None = None,
        detach: bool = True,
        grad: bool = False,
    ) -> None:
        if grad and max_elements is not None:
            raise ValueError("grad=True records the live graph tensors; max_elements cannot subsample them")
        if max_elements is not None and max_elements < 1:
            raise ValueError(f"max_elements must be positive, got {max_elements}")
        self.model = model
        self.catalog, self._modules = catalog_and_modules(model)
        self.names: list[str] = resolve_names(self.catalog, names)
        attention = [n for n in self.names if self.catalog[n].kind == "attention"]
        if grad and attention:
            raise ValueError(
                f"grad=True: attention maps ({', '.join(attention[:2])}{', ...' if len(attention) > 2 else ''}) "
                "are recomputed beside the forward, so no gradient reaches them; capture them without grad=True"
            )
        self.to_cpu = to_cpu and not grad
        self.max_elements = max_elements
        self.detach = detach and not grad
        self.grad = grad
        self._tensors: dict[str, torch.Tensor] = {}
        self.strides: dict[str, int] = {}
        self.notes: dict[str, str] = {}
        self._handles: list[Any] = []
        self._placed: list[tuple[dict, int]] = []  # (hook dict, handle id): kept behind later hooks
        self._marker = contextlib.ExitStack()
        self._pending_sync = False
        self._copied_from: set[torch.device] = set()
        self._started = False
        # the model and parts leading to a hook that are running now, each with the frame that called it
        self._running: dict[str, Any] = {}
        self._call = 0  # which outermost call is running
        self._made_in: dict[str, int] = {}  # entry -> the outermost call that recorded it
        self._thread: int | None = None  # the thread whose forwards it records (the one that started it)
        #: Calls of the model from other threads while active: not recorded.
        self.other_threads = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Capture":
        """Register the hooks (one per hooked module and direction)."""
        if self._handles:
            return self
        self._running.clear()
        self._thread = threading.get_ident()
        groups: dict[tuple[str, str], list[LayerSpec]] = {}
        for n in self.names:
            e = self.catalog[n]
            groups.setdefault((e.module, e.hook), []).append(e)
        try:
            entry = self._marker.enter_context(
                registered(
                    self.model,
                    "capture",
                    lean_ok=False,
                    why="layer capture hooks fire only in the plain forward",
                    passive=True,
                )
            )
            own = entry.hooks  # its hooks, as (id(module), kind, handle id): not taken for a user's

            def pre(mod: nn.Module, fn: Callable) -> Any:
                h = mod.register_forward_pre_hook(fn)
                own.add((id(mod), "pre", h.id))
                self._handles.append(h)
                return h

            def post(mod: nn.Module, fn: Callable, **kw: Any) -> Any:
                h = mod.register_forward_hook(fn, **kw)
                own.add((id(mod), "forward", h.id))
                self._handles.append(h)
                return h

            # every call of the model: a fresh record; every outermost call of the model or of a
            # part leading to a hook: a call of its own, with the hooks behind any placed since
            pre(self.model, self._new_call)
            for path in sorted({p for path, _ in groups for p in _ancestors(path)}):
                mod = self.model.get_submodule(path)
                pre(mod, functools.partial(self._enter, path, tuple(_ancestors(path)[:-1])))
                post(mod, functools.partial(self._leave, path), always_call=True)
            for (path, kind), specs in groups.items():
                mod = self._modules[path]
                if kind == "pre":
                    record, used = self._make_pre_hooks(specs)
                    self._placed.append((mod._forward_pre_hooks, pre(mod, record).id))
                    post(mod, used)
                else:
                    self._placed.append((mod._forward_hooks, post(mod, self._make_hook(mod, specs)).id))
        except BaseException:
            self.release()
            raise
        self._started = True
        return self

    def _new_call(self, module: nn.Module, args: tuple) -> None:
        """Root pre-hook: forget the previous call (a call from another thread: only counted in
        :attr:`other_threads`; every hook of the capture lets other threads' forwards pass)."""
        if _ident() != self._thread:
            self.other_threads += 1
            return
        self.clear()

    def _enter(self, path: str, above: tuple[str, ...], module: nn.Module, args: tuple) -> None:
        """Pre-hook of the model and of every part leading to a hook (``path``, below the parts
        ``above``): at an outermost call (the model's, or a part's called directly,
        ``model.forward_features(...)``) move this capture's hooks to the end of their modules'
        hook lists, so that they run after an ablation's or a user's hook placed later (which
        may replace an input or an output) and record what the network used.

        A call is outermost when no part above it is running. What runs is marked by path with
        the frame of its call, not counted: Ctrl-C skips the forward hooks that unmark (they run
        on exceptions only), and a mark left so (a count above 0, or the model's mark after a
        forward interrupted in the encoder) made every later direct call of a part look nested,
        its record taken before a later ablation's hook. A mark whose frame is no longer on the
        stack was left by an interrupted call and does not count."""
        if _ident() != self._thread:
            return
        caller = sys._getframe(1)  # the module's call: on the stack while it runs, and only then
        marked = [self._running[p] for p in above if p in self._running]
        if marked:  # a mark an interrupted call left (its frame no longer on the stack) is not a running part
            live, f = set(), caller.f_back
            while f is not None:
                live.add(id(f))
                f = f.f_back
            marked = [m for m in marked if id(m) in live]
        if not marked:
            self._running.clear()
            self._call += 1
            for hooks, key in self._placed:
                if key in hooks:
                    hooks[key] = hooks.pop(key)
        self._running[path] = caller

    def _leave(self, path: str, module: nn.Module, args: tuple, out: Any) -> None:
        if _ident() == self._thread:
            self._running.pop(path, None)

    def _begin(self, name: str) -> None:
        """Before recording ``name``: if an earlier outermost call recorded it, this call is a
        new input, and only what this call records stays."""
        made = self._made_in.get(name)
        if made is not None and made != self._call:
            for old in [n for n, c in self._made_in.items() if c != self._call]:
                del self._made_in[old]
                self._tensors.pop(old, None)
                self.strides.pop(old, None)
                self.notes.pop(old, None)
        self._made_in[name] = self._call

    def release(self) -> None:
        """Remove every hook (idempotent); recorded tensors stay available."""
        while self._handles:
            self._handles.pop().remove()
        self._placed.clear()
        self._running.clear()  # an interrupted call's frames (and the tensors they hold) go
        self._marker.close()

    def __enter__(self) -> "Capture":
        if self._handles:  # a nested `with` would remove the hooks on its exit, under the outer one
            raise RuntimeError("this capture is already active: a `with` block cannot be nested in itself")
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def active(self) -> bool:
        return bool(self._handles)

    # -- results ----------------------------------------------------------------------------
    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """name -> recorded tensor (waits once for pending device-to-host copies)."""
        self._check_started()
        if self._pending_sync:
            for d in self._copied_from:  # every device copied from (synchronize() alone waits for the current one)
                torch.cuda.synchronize(d)
            self._pending_sync = False
            self._copied_from.clear()
        return self._tensors

    @property
    def missing(self) -> list[str]:
        """Requested names that the last forward did not produce."""
        self._check_started()
        return [n for n in self.names if n not in self._tensors]

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError(
                "this capture was never started, so it recorded nothing: use it as a context manager "
                "(`with capture(model, names) as cap: model(x)`) or call start() before the forward"
            )

    def __getitem__(self, name: str) -> torch.Tensor:
        tensors = self.tensors
        if name in tensors:
            return tensors[name]
        if name in self.names:
            others = (
                f"; {self.other_threads} forward(s) of other threads were not recorded: a capture records "
                "the thread that opened it"
                if self.other_threads
                else ""
            )
            raise KeyError(f"layer {name!r} was not produced by the last forward (see .missing){others}")
        if name in self.catalog:
            raise KeyError(f"layer {name!r} was not asked for; this capture records {self.names}")
        raise unknown_layer(name, self.names or self.catalog)

    def __contains__(self, name: object) -> bool:
        """Whether the last forward recorded ``name`` (``"detection.logit" in cap``)."""
        return name in self.tensors

    def __iter__(self) -> Iterator[str]:
        """The recorded names (without it, ``in`` and ``for`` fell back to ``cap[0]``, ``cap[1]``...)."""
        return iter(list(self.tensors))

    def clear(self) -> None:
        self._tensors.clear()
        self.strides.clear()
        self.notes.clear()
        self._made_in.clear()

    def __repr__(self) -> str:
        state = "active" if self.active else "released"
        return f"Capture({len(self.names)} layers, {len(self._tensors)} recorded, {state})"

    # -- hooks ------------------------------------------------------------------------------
    def _store(self, name: str, t: torch.Tensor) -> None:
        if self.grad:
            if t.requires_grad:
                t.retain_grad()
            self._tensors[name] = t
            return
        if self.detach:
            t = t.detach()
        limit = self.max_elements
        if limit is not None and t.numel() > limit:
            if t.ndim >= 3:
                s = _subsample_stride(tuple(t.shape), (t.shape[-2], t.shape[-1]), limit)
                orig = tuple(t.shape)
                t = t[..., ::s, ::s].contiguous()  # a copy: the full tensor is not kept alive
                self.strides[name] = s
                msg = f"spatially subsampled by stride {s}: {orig} -> {tuple(t.shape)}"
                if t.numel() > limit:
                    msg += f" (still above max_elements={limit})"
                self.notes[name] = msg
            else:
                self.notes[name] = f"{tuple(t.shape)} exceeds max_elements={limit}; kept whole"
        if self.to_cpu and t.device.type != "cpu":
            if t.device.type == "cuda":
                self._pending_sync = True
                self._copied_from.add(t.device)
            t = t.to("cpu", non_blocking=True)
        self._tensors[name] = t

    def _make_pre_hooks(self, specs: list[LayerSpec]) -> tuple[Callable, Callable]:
        """The pre-hook that records a module's inputs, and a forward hook that records them again
        when a pre-hook running after it replaced them. A module's pre-hooks run in the order
        they had when it was called, so a part called directly (``model.forward_features``)
        after an ablation was entered inside the capture runs the ablation's pre-hook last
        that once; the forward hook sees the inputs the module used."""
        seen: list[tuple | None] = [None]

        def hook(module: nn.Module, args: tuple) -> None:
            if _ident() != self._thread:
                return
            seen[0] = args
            for e in specs:
                self._begin(e.name)
                self._store(e.name, e.extract(args, None))

        def used(module: nn.Module, args: tuple, out: Any) -> None:
            if _ident() != self._thread:
                return
            recorded, seen[0] = seen[0], None
            if recorded is not None and args is not recorded:
                for e in specs:
                    self._store(e.name, e.extract(args, None))

        return hook, used

    def _make_hook(self, module: nn.Module, specs: list[LayerSpec]) -> Callable:
        def hook(mod: nn.Module, args: tuple, out: Any) -> Any:
            if _ident() != self._thread:
                return None
            new_out = None
            for e in specs:
                self._begin(e.name)
                if e.kind == "attention":  # never with grad=True (refused in __init__)
                    limit = self.max_elements or ATTENTION_MAX_ELEMENTS
                    with torch.no_grad():
                        t, s = _attention_weights(mod, args[0], args[1], limit)
                    if s > 1:
                        self.notes[e.name] = f"queries subsampled by stride {s} (limit {limit} elements)"
                    self.strides[e.name] = s
                    self._store_attention(e.name, t)
                    continue
                t = e.extract(args, out)
                if self.grad and e.rebuild is not None and t.requires_grad:
                    new_out = e.rebuild(out, t)  # the recorded map becomes part of the graph
                self._store(e.name, t)
            return new_out

        return hook

    def _store_attention(self, name: str, t: torch.Tensor) -> None:
        t = t.detach()
        if self.to_cpu and t.device.type != "cpu":
            if t.device.type == "cuda":
                self._pending_sync = True
                self._copied_from.add(t.device)
            t = t.to("cpu", non_blocking=True)
        self._tensors[name] = t


def _ancestors(path: str) -> list[str]:
    """A module path and the paths of the modules above it, the model itself (``""``) included."""
    parts = path.split(".") if path else []
    return ["".join(p + "." for p in parts[:k])[:-1] for k in range(len(parts) + 1)]


def capture(
    model: nn.Module,
    names: str | Iterable[str],
    *,
    to_cpu: bool = True,
    max_elements: int | None = None,
    detach: bool = True,
    grad: bool = False,
) -> Capture:
    """A :class:`Capture` of ``names`` (catalog names or glob patterns such as ``"fusion.*.ffm"``).

    >>> with capture(model, ["rgb.stage*.out", "noiseprint.stage*.out"]) as cap:
    ...     model(x)
    >>> cap.tensors["rgb.stage2.out"].shape      # (1, 128, H/8, W/8) with MiT-B2 (demo model: 48)
    """
    return Capture(model, names, to_cpu=to_cpu, max_elements=max_elements, detach=detach, grad=grad)
