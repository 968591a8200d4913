"""A stable label for a callable: what it computes, as far as Python can tell.

Records of how an output was made (e.g. an evaluation under an ablation) must change when the
callable does: two ``functools.partial`` of one function, or two lambdas, share a name.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import hashlib
import types
from typing import Any, Callable

import numpy as np

__all__ = ["callable_label"]


def callable_label(fn: Callable[..., Any]) -> str:
    """``"<name> #<digest>"``: the digest covers the code, constants, defaults, captured values,
    the values of the global names its code reads (a notebook's loop variable: ``for q in ...:
    evaluate(..., analyze_fn=lambda m, p: ... q ...)``) and (``functools.partial``, bound
    methods) arguments of ``fn``. A value whose repr names a
    memory address changes from run to run: the label then never matches an earlier one, so an
    output is recomputed rather than wrongly reused.

    >>> callable_label(functools.partial(round, ndigits=2)) != callable_label(functools.partial(round, ndigits=3))
    True
    """
    parts: list[str] = []
    _describe(fn, parts, 0)
    base = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(base, "__qualname__", type(base).__qualname__)
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:12]
    return f"{name} #{digest}"


def _describe(f: Any, parts: list[str], depth: int) -> None:
    if depth > 4:
        parts.append(_shallow(f))
    elif isinstance(f, functools.partial):
        _describe(f.func, parts, depth + 1)
        parts.append(_value(f.args, depth) + _value(sorted(f.keywords.items()), depth))
    elif isinstance(f, types.MethodType):
        _describe(f.__func__, parts, depth + 1)
        parts.append(_value(f.__self__, depth))
    elif isinstance(f, types.FunctionType):
        parts += [f.__module__ or "", f.__qualname__, _code(f.__code__)]
        parts += [_value(f.__defaults__, depth), _value(f.__kwdefaults__, depth)]
        parts += [_cell(c, depth) for c in f.__closure__ or ()]
        parts += _globals_read(f, depth)
    elif type(f).__repr__ is object.__repr__ and hasattr(type(f), "__call__"):  # an address: by content
        _describe(type(f).__call__, parts, depth + 1)
        parts.append(_value(getattr(f, "__dict__", {}), depth))
    else:
        parts.append(type(f).__qualname__ + repr(f))


def _value(v: Any, depth: int) -> str:
    """A value's text: functions and plain objects by content (their repr names an address),
    arrays by their bytes (their repr shows the edges only), containers item by item, records
    (dataclasses) field by field (their repr shows arrays by shape only), torch modules by their
    weights (:func:`_module_weights`)."""
    weights = _module_weights(v)
    if weights is not None:
        return weights
    if depth > 4:
        return _shallow(v)
    if isinstance(v, (functools.partial, types.MethodType, types.FunctionType)) or (
        callable(v) and type(v).__repr__ is object.__repr__ and not isinstance(v, type)
    ):
        inner: list[str] = []
        _describe(v, inner, depth + 1)
        return "<" + "|".join(inner) + ">"
    array = _as_array(v)
    if array is not None:
        return f"array{array.shape}{array.dtype}:{hashlib.sha256(array.tobytes()).hexdigest()}"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return type(v).__qualname__ + _value({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, depth + 1)
    if type(v).__repr__ is object.__repr__ and hasattr(v, "__dict__"):
        return type(v).__qualname__ + _value(vars(v), depth + 1)
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_value(x, depth) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k!r}:{_value(x, depth)}" for k, x in v.items()) + "}"
    return repr(v)


#: The instructions that read a global name (``LOAD_FROM_DICT_OR_GLOBALS``: Python 3.12).
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})


def _global_names(code: types.CodeType) -> set[str]:
    """The global names the code (and its nested lambdas and comprehensions) reads; attribute
    names are not (``p.image`` read a notebook's global ``image``: a label that changed with it,
    every output recomputed, a large one hashed)."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_LOADS}
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def _globals_read(f: types.FunctionType, depth: int) -> list[str]:
    """The values of the globals ``f`` reads: a notebook's loop variable is a global, not a
    captured cell, and two settings of it gave one label (the second run reused the first one's
    outputs). Functions of ``f``'s own module are described by content; modules, classes and
    other modules' functions by name (a library's internals are not the caller's setting)."""
    found = f.__globals__
    out = []
    for name in sorted(_global_names(f.__code__)):
        if name not in found:  # an attribute name, a builtin
            continue
        v = found[name]
        if isinstance(v, (types.ModuleType, type, types.BuiltinFunctionType)) or (
            isinstance(v, types.FunctionType) and v.__module__ != f.__module__
        ):
            out.append(
                f"{name}={getattr(v, '__module__', '')}.{getattr(v, '__qualname__', getattr(v, '__name__', ''))}"
            )
        else:
            try:
                out.append(f"{name}={_value(v, depth + 1)}")
            except Exception:  # noqa: BLE001 - a repr that fails: a label never matched again (recomputed, not reused)
                out.append(f"{name}=<{type(v).__qualname__} at {id(v):x}>")
    return out


def _shallow(v: Any) -> str:
    """``v`` past the depth described: a function (a ``partial``'s too) by its module, name and
    code, not its repr, which names an address (a recursive notebook helper, or a chain of three
    helpers read as globals, gave a new label every run: no output was ever reused); anything
    else by its repr."""
    if isinstance(v, functools.partial):
        return f"partial({_shallow(v.func)}, {v.args!r}, {sorted(v.keywords.items())!r})"
    if isinstance(v, types.FunctionType):
        return f"{v.__module__}.{v.__qualname__}:{_code(v.__code__)}"
    return repr(v)


def _code(code: types.CodeType) -> str:
    """Bytecode, names and constants; nested code (lambdas, comprehensions) by content, not by
    its address."""
    consts = ",".join(_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return f"{code.co_code.hex()}|{code.co_names}|{consts}"


def _as_array(v: Any) -> Any:
    """A numpy array or a torch tensor as a contiguous numpy array, else ``None`` (no torch import
    here: a tensor is recognised by its methods)."""
    if isinstance(v, np.ndarray):
        return np.ascontiguousarray(v)
    if type(v).__name__ in ("Tensor", "Parameter") and hasattr(v, "detach") and hasattr(v, "numpy"):
        t = v.detach().cpu()
        try:
            return np.ascontiguousarray(t.numpy())
        except TypeError:  # bfloat16 and other dtypes numpy lacks: their values, exactly, in float32
            return np.ascontiguousarray(t.float().numpy())
    return None


def _module_weights(v: Any) -> str | None:
    """A torch module (recognised by its methods: no torch import here) as its layers and the
    values of its weights, else ``None``: its repr shows the layers only, so two models of one
    architecture (``lambda m, p: analyze(other, p)`` for two checkpoints) gave one label and the
    second run reused the first one's outputs."""
    if isinstance(v, type) or not (
        callable(getattr(v, "state_dict", None)) and callable(getattr(v, "named_parameters", None))
    ):
        return None
    h = hashlib.sha256()
    for key, t in v.state_dict().items():
        a = _as_array(t)
        h.update(f"{key}:{repr(t) if a is None else f'{a.dtype.str}{a.shape}'};".encode())
        if a is not None:
            h.update(a.tobytes())
    return f"{v!r} weights {h.hexdigest()}"


def _cell(cell: Any, depth: int) -> str:
    try:
        return _value(cell.cell_contents, depth)
    except ValueError:  # an empty cell: a name not bound yet
        return "<empty>"
