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
"""

from __future__ import annotations

import contextlib
import secrets
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules import module as _torch_module

__all__ = [
    "Intervention",
    "InterventionError",
    "active_interventions",
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
    #: It only reads (a capture): outputs computed under it are the model's, so it is not recorded.
    passive: bool = False


_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, list[Intervention]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def registered(
    model: nn.Module, name: str, *, lean_ok: bool, why: str = "", record: str = "", passive: bool = False
) -> Iterator[Intervention]:
    """Mark ``name`` as active on ``model`` for the duration of the block (removed on any exit)."""
    entry = Intervention(name, lean_ok, why, record, passive=passive)
    _ACTIVE.setdefault(model, []).append(entry)
    try:
        yield entry
    finally:
        active = _ACTIVE.get(model, [])
        active[:] = [e for e in active if e is not entry]
        if not active:
            _ACTIVE.pop(model, None)


def active_interventions(model: nn.Module) -> list[Intervention]:
    """The interventions active on ``model`` now, oldest first."""
    return list(_ACTIVE.get(model, []))


def _module_hook_keys(mod: nn.Module) -> set[tuple[int, str, int]]:
    """The forward hooks and pre-hooks on ``mod`` itself, as ``(id(module), kind, handle id)``."""
    return {(id(mod), "forward", k) for k in mod._forward_hooks} | {(id(mod), "pre", k) for k in mod._forward_pre_hooks}


def global_hooks() -> int:
    """How many forward hooks and pre-hooks act on every module of every network
    (``torch.nn.modules.module.register_module_forward_hook`` and its pre-hook twin)."""
    return len(getattr(_torch_module, "_global_forward_hooks", {})) + len(
        getattr(_torch_module, "_global_forward_pre_hooks", {})
    )


def hook_keys(model: nn.Module) -> set[tuple[int, str, int]]:
    """Every forward hook and pre-hook on ``model``'s modules, as ``(id(module), kind, handle id)``."""
    return set().union(*(_module_hook_keys(mod) for mod in model.modules()))


def foreign_hooks(model: nn.Module) -> list[str]:
    """Names of the modules that carry a hook no lean-compatible intervention placed (a user's
    hook, a capture): the memory-lean forward calls pieces of modules, so such a hook may not
    fire there, or see one chunk at a time."""
    owned = set().union(*(i.hooks for i in active_interventions(model) if i.lean_ok))
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
    built with and that no active ablation set, as ``"pool.weighting='uniform'"``."""
    out = []
    for name, mod in model.named_modules():
        for attr, built in KNOBS.get(type(mod).__name__, {}).items():
            value = getattr(mod, attr, built)
            if value != built and attr not in mod.__dict__.get("_ablation_layers", {}):
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
    blockers = [i for i in active_interventions(model) if not i.lean_ok]
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
