"""Which weights a loaded network holds: the loader's record of its file stays true only while
the parameters and buffers are the ones it loaded.

A network changed in memory afterwards (a training step, ``load_state_dict``, an in-place edit,
a forward in training mode that moves the BatchNorm statistics) reports weights of unknown origin
(``kind`` 'custom', no sha256), so that none of its results is worded, recorded or reused as the
file's. Moving the network to another device or to float64 keeps its values and its record.

>>> import torch
>>> from trufor_lab.model import Noiseprint
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Info:
...     kind: str; path: str; sha256: str; verified: bool; note: str = ""
>>> net = Noiseprint(num_levels=3)
>>> net.weights_info = Info("noiseprint", "np.th", "ab12", True)
>>> net.weights_info.kind
'noiseprint'
>>> with torch.no_grad():
...     _ = net[0].weight.mul_(2)
>>> net.weights_info.kind, net.weights_info.sha256
('custom', '')
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import torch

from trufor_lab.common.paths import display_name

#: Relative difference of a tensor's float64 sums that still counts as the same values: the
#: same numbers summed on another device or in another order differ by far less (~1e-13).
SAME_VALUES_RTOL = 1e-9
#: How the note of a record marked as changed in memory begins (the banner words it so).
CHANGED_NOTE = "changed in memory"

#: The note of a checkpoint with its own ``config`` entry (trained or exported with trufor_lab): such a
#: file is never the official checkpoint, so no wording suggests installing it as the official one.
OWN_CONFIG_NOTE = "TruFor weights with their own 'config' entry (trained or exported with trufor_lab)"


def changed_in_memory(info: Any) -> bool:
    """Whether ``info`` is a loader's record marked as changed in memory since (no file holds
    these weights: no wording may name the file's checksum or how to verify it)."""
    return info is not None and info.kind == "custom" and str(info.note).startswith(CHANGED_NOTE)


def where_changed(info: Any) -> str:
    """``info``'s origin in a few words for reports: the file it was loaded from by its name
    alone (a report leaves the folders out), or that the model was made in memory."""
    if info.path in ("", "-"):
        return "changed in memory since it was made"
    return f"changed in memory after loading {display_name(info.path)}"


def is_own_training(info: Any) -> bool:
    """Whether ``info`` describes a checkpoint of :data:`OWN_CONFIG_NOTE` (kind ``'custom'``)."""
    return info is not None and info.kind == "custom" and info.note == OWN_CONFIG_NOTE


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def state_key(module: torch.nn.Module) -> tuple:
    """Changes whenever a tensor of ``module`` may have changed (in-place writes bump ``_version``;
    a new ``.data`` or a move changes the pointer): a cheap test before the sums are recomputed,
    or before a map computed with these weights is reused."""
    return tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in _tensors(module))


def _sums(module: torch.nn.Module) -> np.ndarray | None:
    """Sum and sum of squares of every parameter and buffer, in float64 (``None`` on meta tensors)."""
    out = []
    with torch.no_grad():
        for t in _tensors(module):
            if t.is_meta:
                return None
            x = t.detach()
            x = (x if x.device.type in ("cpu", "cuda") else x.cpu()).to(torch.float64)  # MPS has no float64
            out.append(torch.stack((x.sum(), x.square().sum())).cpu())
    return torch.stack(out).numpy() if out else np.zeros((0, 2))


def values_digest(module: torch.nn.Module) -> str:
    """A name for the weights a network holds now, from their values (every state-dict entry's
    name, type, shape and bytes): what identifies weights of no known file, or changed in memory."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in module.state_dict().items():
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "values:" + h.hexdigest()[:40]


class LoadedWeights:
    """Mixin of the networks the loaders fill: ``weights_info`` is the loader's record while the
    values are the loaded ones, else that record marked as changed in memory (see the module)."""

    @property
    def weights_info(self) -> Any:
        info = self.__dict__.get("_loaded_info")
        if info is None or self._holds_loaded_values():
            return info
        return dataclasses.replace(
            info,
            kind="custom",
            sha256="",
            verified=False,
            note=f"{CHANGED_NOTE} after loading {info.path} ({info.kind}): not that file's weights"
            if info.path not in ("", "-")
            else f"{CHANGED_NOTE} since it was made ({info.kind} weights)",
        )

    @weights_info.setter
    def weights_info(self, info: Any) -> None:
        d = self.__dict__
        d["_loaded_info"] = info
        d["_loaded_sums"] = None if info is None else _sums(self)  # type: ignore[arg-type]
        d["_loaded_check"] = (state_key(self), True)  # type: ignore[arg-type]

    def _holds_loaded_values(self) -> bool:
        d = self.__dict__
        key = state_key(self)  # type: ignore[arg-type]
        if d["_loaded_check"][0] == key:
            return d["_loaded_check"][1]
        then, now = d["_loaded_sums"], _sums(self)  # type: ignore[arg-type]
        same = then is not None and now is not None and then.shape == now.shape
        if same:  # a sum's scale includes the values' size: a zero sum moves by rounding only
            scale = np.abs(then) + np.stack((np.sqrt(then[:, 1]), np.zeros(len(then))), axis=1)
            same = bool(np.all(np.abs(now - then) <= SAME_VALUES_RTOL * scale))
        d["_loaded_check"] = (key, same)
        return same


# -- naming weights in derived results (attributions, ablation studies, sweeps) ------------------


def weights_label(info: Any) -> str:
    """Whose weights ``info`` records, in a few words for a repr, a figure's title or a note: the
    kind and the file by its name alone with a sha256 prefix (``"demo weights trufor_demo.pt,
    sha256 77ea2c0cc7b1"``), or that they were changed in memory (no file's checksum then)."""
    if info is None:
        return "a model not loaded with tl.load"
    if changed_in_memory(info):
        return f"custom weights {where_changed(info)}"
    sha = f", sha256 {info.sha256[:12]}" if info.sha256 and info.sha256 != "-" else ""
    return f"{info.kind} weights {display_name(info.path) if info.path not in ('', '-') else '(in memory)'}{sha}"


def same_weights(a: Any, b: Any) -> bool:
    """Whether records ``a`` and ``b`` name the same weights: one file's contents (the same
    sha256) when both were read from a file and not changed in memory since, wherever that file
    lay (a copy of the weights at another path was 'different weights'); else equal records."""
    if a is None or b is None:
        return a is b
    sha = (getattr(a, "sha256", ""), getattr(b, "sha256", ""))
    if all(x and x != "-" for x in sha) and not (changed_in_memory(a) or changed_in_memory(b)):
        return sha[0] == sha[1]
    return bool(a == b)


def distinct_weights(infos: Any) -> list[Any]:
    """The different records among ``infos`` (:func:`same_weights`), in order of appearance."""
    out: list[Any] = []
    for info in infos:
        if not any(same_weights(info, seen) for seen in out):
            out.append(info)
    return out


def mixed_weights_note(infos: Any, what: str) -> str | None:
    """A note when ``what`` (e.g. "these attributions") came from different weights, naming each
    (:func:`weights_label`); ``None`` when one record (or none) made them all."""
    seen = distinct_weights(infos)
    if len(seen) < 2:
        return None
    return f"{what} come from different weights ({'; '.join(map(weights_label, seen))}): two models' answers, not one's"


def other_weights(made: Any, model_info: Any) -> bool:
    """Whether an output recording the weights ``made`` was made by other weights than a model
    whose record is ``model_info`` (an output that records none, e.g. a classic detector's or a
    user's function's, is not said to be)."""
    return made is not None and not same_weights(made, model_info)


#: How a classic detector's label begins (``classic:ela``): its results carry no weights.
CLASSIC_PREFIX = "classic:"


def classic_label(method: str) -> str:
    """The label of a result the classic detector ``method`` made."""
    return f"{CLASSIC_PREFIX}{method}"


def classic_method(result: Any) -> str | None:
    """The classic detector that made ``result`` (a Result or its label), or None for a network's."""
    label = result if isinstance(result, str) else getattr(result, "label", None)
    if isinstance(label, str) and label.startswith(CLASSIC_PREFIX):
        return label[len(CLASSIC_PREFIX) :]
    return None


def row_weights(result: Any, model_info: Any) -> str | None:
    """The ``weights`` entry of a table row computed from ``result`` under a model whose record is
    ``model_info``: the weights the result records (the model's own label when they are the same
    weights, :func:`same_weights`); a classic detector's result (label ``classic:NAME``, no
    weights) says so; otherwise (a user's function recording none) the model's. A row a classic
    detector made was labelled with the model's weights."""
    made = getattr(result, "weights", None)
    if made is not None:
        return weights_label(model_info if same_weights(made, model_info) else made)
    if classic_method(result) is not None:
        return f"{result.label} (a classic detector, no weights)"
    return None if model_info is None else weights_label(model_info)
