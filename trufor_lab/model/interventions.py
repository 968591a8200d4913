"""Which interventions (ablations, captures) are active on a model, so that a forward that
bypasses them can refuse instead of giving a silently wrong answer.

Ablations and captures act through module hooks and attributes. The memory-lean forward
(:mod:`trufor_lab.model.lean`) calls the stages' pieces directly, so a hook on the whole model
or on the encoder never fires there. Each intervention registers itself here while it is active
(``with registered(model, name, lean_ok=...)``, always undone on exit), and the code that picks
the lean forward asks :func:`plain_forward_required` first: the plain forward is used when it
fits, otherwise :class:`InterventionError` says in one line why the image is refused. A hook
that no lean-compatible intervention placed (a user's own ``register_forward_hook``) counts as
a blocker too (:func:`foreign_hooks`): the lean forward calls modules' pieces, chunk by chunk.

Interventions belong to the thread that opened them. A capture (``passive``) only reads: its
hooks record the forwards of its own thread and let other threads' forwards pass untouched. An
ablation changes every forward of the model, so it is exclusive: while it is open, a forward of
that model in another thread is refused (:class:`InterventionError`, raised in that thread by a
global forward hook that fires at the end of every module's call; code compiled by
``torch.compile`` runs without it), and opening an intervention on a model that another thread
has an ablation open on (or an ablation while another thread has any intervention open) is
refused. A forward already running when the ablation opened is refused at the end of its next
module call if the ablation is still open then; nothing refuses it when the ablation opens and
closes again within one module call of that forward, which may then have read an ablated
setting: open ablations where no other thread runs the model. An attribution registers itself
as such an intervention (not passive: it switches the whole model's mode and parameter flags).
Hooks acting on every thread gave quiet wrong answers: a widget's or a thread pool's forward was
ablated or recorded by a block another thread had open.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import compiler as _torch_compiler
from torch import nn
from torch.nn.modules import module as _torch_module

__all__ = [
    "Intervention",
    "InterventionError",
    "active_interventions",
    "acts_here",
    "foreign_hooks",
    "hook_keys",
    "intervention_label",
    "knobs_turned",
    "lean_blockers",
    "plain_forward_required",
    "registered",
]


class InterventionError(RuntimeError):
    """An intervention is active that the only forward which fits in memory would skip."""


@dataclass(frozen=True, eq=False)
class Intervention:
    """One active intervention: its name, and whether the memory-lean forward honours it.
    Compared by identity: two equal ablations nested are two entries, each removed by its own exit."""

    name: str
    lean_ok: bool
    why: str = ""
    #: What an output computed under it records (:func:`intervention_label`); default: ``name``.
    record: str = ""
    #: The hooks it placed (:func:`hook_keys`), so that they are not taken for a user's hooks.
    hooks: set[tuple[int, str, int]] = field(default_factory=set, compare=False, repr=False)
    #: It only reads (a capture): outputs computed under it are the model's, so it is not recorded,
    #: and its hooks act in its own thread only; otherwise it changes every forward of the model,
    #: and forwards of other threads are refused while it is open.
    passive: bool = False
    #: The thread that opened it (``threading.get_ident()``) and that thread's name.
    thread: int = field(default_factory=threading.get_ident, compare=False)
    thread_name: str = field(default_factory=lambda: threading.current_thread().name, compare=False)


_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, list[Intervention]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # _ACTIVE is changed from any thread


@contextlib.contextmanager
def registered(
    model: nn.Module, name: str, *, lean_ok: bool, why: str = "", record: str = "", passive: bool = False
) -> Iterator[Intervention]:
    """Mark ``name`` as active on ``model`` for the duration of the block (removed on any exit).
    Refused (:class:`InterventionError`) when it would act on another thread's forwards or
    another thread's intervention would act on this one's; while a non-passive one is open, the
    guard (one global forward hook, see below) refuses other threads' forwards of ``model``."""
    entry = Intervention(name, lean_ok, why, record, passive=passive)
    with _LOCK:
        clash = next(
            (e for e in _ACTIVE.get(model, []) if e.thread != entry.thread and not (passive and e.passive)), None
        )
        if clash is None:
            _ACTIVE.setdefault(model, []).append(entry)
    if clash is not None:
        raise InterventionError(
            f"cannot open {name!r} on this model in thread {entry.thread_name!r}: {clash.name!r} is open on it "
            f"in thread {clash.thread_name!r}, and one of them would act on the other "
            "thread's forwards too; wait for it to close, or give each thread its own copy of the model, made "
            "outside any intervention (copy.deepcopy(model) while one is open copies it too)"
        )
    try:
        if not passive:
            _guard(model, +1)
        try:
            yield entry
        finally:
            if not passive:
                _guard(model, -1)
    finally:
        with _LOCK:
            active = _ACTIVE.get(model, [])
            active[:] = [e for e in active if e is not entry]
            if not active:
                _ACTIVE.pop(model, None)


# The guard: one global forward hook, present while any non-passive intervention is open, that
# refuses a forward of a guarded model's modules in a thread other than the intervention's. One
# hook for every module (a forward already running when the intervention opened is refused at the
# end of its next module call, while the intervention is still open), not counted as a user's (:func:`global_hooks`).
# id(module) -> the guarded models it belongs to (a module shared by two, e.g. one model and a
# wrapper around it, stays guarded for the one still open when the other closes)
_GUARDED: dict[int, list[nn.Module]] = {}
_GUARD_COUNT: dict[int, int] = {}  # id(model) -> open non-passive interventions
_GUARD_HANDLE: list[Any] = []


def _guard(model: nn.Module, step: int) -> None:
    with _LOCK:
        n = _GUARD_COUNT.get(id(model), 0) + step
        if n > 0:
            _GUARD_COUNT[id(model)] = n
            for m in model.modules():
                models = _GUARDED.setdefault(id(m), [])
                if not any(g is model for g in models):
                    models.append(model)
        else:
            _GUARD_COUNT.pop(id(model), None)
            for key, models in list(_GUARDED.items()):
                models[:] = [g for g in models if g is not model]
                if not models:
                    del _GUARDED[key]
        if _GUARD_COUNT and not _GUARD_HANDLE:
            _GUARD_HANDLE.append(_torch_module.register_module_forward_hook(_refuse_other_thread))
        elif not _GUARD_COUNT:
            while _GUARD_HANDLE:
                _GUARD_HANDLE.pop().remove()


def _refuse_other_thread(module: nn.Module, args: Any, out: Any) -> None:
    """The guard: a forward of a guarded model's module in another thread than its open
    non-passive intervention is refused (it would change that forward's output unseen).

    Not traced by ``torch.compile``: a thread's identity is no tensor operation, so Dynamo broke
    the graph at every module call of a compiled model (the fast mode's compiled encoder ran
    slower than the eager one while any ablation was open). Compiled code runs without it: the
    fast mode compiles the encoder alone, and its heads, run eagerly, still refuse; a model a user
    compiled whole is not guarded inside its compiled code."""
    if _torch_compiler.is_compiling():
        return
    models = _GUARDED.get(id(module))
    if not models:
        return
    me = threading.get_ident()
    open_ = (e for model in tuple(models) for e in _ACTIVE.get(model, ()))
    entry = next((e for e in open_ if not e.passive and e.thread != me), None)
    if entry is not None:
        raise InterventionError(
            f"this model has {entry.name!r} open in thread {entry.thread_name!r}, which changes every forward "
            f"of it: the forward in thread {threading.current_thread().name!r} is refused; run it after that "
            "block, in that thread, or on a copy of the model made before it opened (a copy made while it is open "
            "carries it)"
        )


def active_interventions(model: nn.Module) -> list[Intervention]:
    """The interventions active on ``model`` now, oldest first."""
    with _LOCK:
        return list(_ACTIVE.get(model, []))


def _elsewhere(i: Intervention) -> bool:
    """A capture of another thread: its hooks let this thread's forwards pass untouched."""
    return i.passive and i.thread != threading.get_ident()


def acts_here(model: nn.Module) -> bool:
    """Whether anything acts on this thread's forwards of ``model``: an intervention other than
    another thread's capture, a hook none of those captures placed, or a global hook (another
    thread's capture lets this thread's forwards pass: they may take the fused paths)."""
    active = active_interventions(model)
    theirs = [i for i in active if _elsewhere(i)]
    if len(theirs) < len(active) or global_hooks():
        return True
    owned = set().union(*(i.hooks for i in theirs))
    return any(_module_hook_keys(mod) - owned for mod in model.modules())


def _module_hook_keys(mod: nn.Module) -> set[tuple[int, str, int]]:
    """The forward hooks and pre-hooks on ``mod`` itself, as ``(id(module), kind, handle id)``."""
    return {(id(mod), "forward", k) for k in mod._forward_hooks} | {(id(mod), "pre", k) for k in mod._forward_pre_hooks}


def global_hooks() -> int:
    """How many forward hooks and pre-hooks act on every module of every network
    (``torch.nn.modules.module.register_module_forward_hook`` and its pre-hook twin)."""
    ours = sum(1 for h in _GUARD_HANDLE if h.id in getattr(_torch_module, "_global_forward_hooks", {}))
    return (
        len(getattr(_torch_module, "_global_forward_hooks", {}))
        + len(getattr(_torch_module, "_global_forward_pre_hooks", {}))
        - ours
    )


def hook_keys(model: nn.Module) -> set[tuple[int, str, int]]:
    """Every forward hook and pre-hook on ``model``'s modules, as ``(id(module), kind, handle id)``."""
    return set().union(*(_module_hook_keys(mod) for mod in model.modules()))


def foreign_hooks(model: nn.Module) -> list[str]:
    """Names of the modules that carry a hook no lean-compatible intervention placed (a user's
    hook, a capture): the memory-lean forward calls pieces of modules, so such a hook may not
    fire there, or see one chunk at a time."""
    owned = set().union(*(i.hooks for i in active_interventions(model) if i.lean_ok or _elsewhere(i)))
    names = []
    for name, mod in model.named_modules():
        if _module_hook_keys(mod) - owned:
            names.append(name or "the model")
    if global_hooks():
        names.append("every module (a global forward hook)")
    return names


#: The attributes ablations turn (:mod:`trufor_lab.interpret.ablations`), by the class that holds
#: them, with the value the network is built with. Set otherwise by hand, outside an ablation,
#: they change outputs as the ablation does: :func:`knobs_turned` names them for the record.
KNOBS: dict[str, dict[str, object]] = {
    "FeatureRectifyModule": {"lambda_c": 0.5, "lambda_s": 0.5},
    "FeatureFusionModule": {"cross_enabled": True},
    "ConfidencePooling": {"weighting": "confidence"},
}


def knobs_turned(model: nn.Module) -> list[str]:
    """The ablation knobs of ``model`` (:data:`KNOBS`) that hold another value than the network is
    built with and that no active ablation set, as ``"pool.weighting='uniform'"``. A knob an
    ablation set counts as set by hand when no ablation is active on ``model``: a copy
    (``copy.deepcopy``) made while one was open carries its values, and its record of them, for good."""
    out = []
    ablated = any(not i.passive for i in active_interventions(model))
    for name, mod in model.named_modules():
        for attr, built in KNOBS.get(type(mod).__name__, {}).items():
            value = getattr(mod, attr, built)
            if value != built and not (ablated and attr in mod.__dict__.get("_ablation_layers", {})):
                out.append(f"{name or 'the model'}.{attr}={value!r}")
    return out


def intervention_label(model: nn.Module) -> str:
    """What acts on ``model`` now, for the record of how an output was computed: ``""`` when
    nothing does; else the active interventions by name (``"rgb_only"``), the ablation knobs set
    by hand (:func:`knobs_turned`) and any other hook, whose effect has no name: marked with a
    fresh token, so that such an output is never taken for another run's."""
    active = active_interventions(model)
    owned = set().union(*(i.hooks for i in active))
    others = [name or "the model" for name, mod in model.named_modules() if _module_hook_keys(mod) - owned]
    parts = [i.record or i.name for i in active if not i.passive]  # a capture changes no output
    parts += knobs_turned(model)  # pool.weighting = "uniform" by hand: the uniform_pooling ablation, unnamed
    if others:
        more = f" and {len(others) - 2} more" if len(others) > 2 else ""
        parts.append(f"hooks on {', '.join(others[:2])}{more} #{secrets.token_hex(4)}")
    if global_hooks():
        parts.append(f"global module hooks #{secrets.token_hex(4)}")
    return " + ".join(parts)


def lean_blockers(model: nn.Module) -> list[Intervention]:
    """What the memory-lean forward would skip: the active interventions it does not honour, and
    hooks placed by anything else (one entry naming their modules)."""
    blockers = [i for i in active_interventions(model) if not i.lean_ok and not _elsewhere(i)]
    hooks = [] if blockers else foreign_hooks(model)  # with a blocker, lean is out anyway
    if hooks:
        shown = ", ".join(hooks[:3]) + (f" and {len(hooks) - 3} more" if len(hooks) > 3 else "")
        blockers.append(
            Intervention(f"a hook on {shown}", False, "the memory-lean forward does not call those modules whole")
        )
    return blockers


def plain_forward_required(model: nn.Module, plain_fits: Callable[[], bool], what: str = "the image") -> bool:
    """Whether the plain forward must replace the lean one because of an active intervention.

    ``False`` when nothing blocks the lean forward; ``True`` when something does and
    ``plain_fits()``; otherwise raises :class:`InterventionError` (one line)."""
    blockers = lean_blockers(model)
    if not blockers:
        return False
    if plain_fits():
        return True
    names = ", ".join(repr(b.name) for b in blockers)
    why = blockers[0].why or "it acts through hooks the memory-lean forward skips"
    raise InterventionError(
        f"{what} is too large for the plain forward and {names} cannot run on the "
        f"memory-lean one ({why}); crop or downscale the image, or leave the intervention"
    )
