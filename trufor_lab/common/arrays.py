"""Array helpers shared by the analysis code and the figures: feature maps as ``(C, H, W)``,
channel ranking, the PCA projection used to show many channels as one colour picture, and the
one-line console repr of the records that hold arrays."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray | torch.Tensor


def to_chw(fmap: ArrayLike) -> np.ndarray:
    """A feature map as a float ``(C, H, W)`` numpy array (a batch of one image taken as that
    image, 2-D as one channel). A batch of several is refused in one line: a summary of item 0
    alone read as the batch's (a capture of 8 images gave image 0's statistics, unsaid)."""
    if hasattr(fmap, "detach"):
        t = fmap.detach().cpu()
        if t.dtype.is_floating_point and t.dtype.itemsize < 4:  # float16/bfloat16: no numpy dtype
            t = t.float()
        fmap = t.numpy()
    a = np.asarray(fmap)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(
                f"a batch of {a.shape[0]} feature maps {tuple(a.shape)}: a summary describes one image's; "
                "pass one item (fmap[i])"
            )
        a = a[0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a feature map (B, C, H, W), (C, H, W) or (H, W), got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first (ties keep their order)."""
    return np.argsort(-np.asarray(values), kind="stable")[:k]


def channel_energy(fmap: ArrayLike) -> np.ndarray:
    """Mean square of each channel of a feature map."""
    a = to_chw(fmap)
    return (a * a).reshape(a.shape[0], -1).mean(1)


def pca_project(
    fmap: ArrayLike, n_components: int = 3, percentile: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project each pixel's channel vector on the top principal components, scaled to ``[0, 1]``.

    Returns ``(image (H, W, 3), explained variance ratios (k,), loadings (k, C))``. Each component
    is stretched between its ``percentile`` and ``100 - percentile`` values (robust to outliers);
    fewer than 3 components (e.g. 1-channel maps) leave the rest grey (0.5).
    """
    a = to_chw(fmap)
    c, h, w = a.shape
    x = a.reshape(c, -1).T  # (N, C)
    x = x - x.mean(0, keepdims=True)
    k = max(0, min(n_components, 3, c, x.shape[0]))
    img = np.full((h * w, 3), 0.5)
    explained = np.zeros(k)
    comps = np.zeros((k, c))
    if k and np.any(x):
        evals, evecs = np.linalg.eigh(x.T @ x)  # C x C: cheap for large images
        order = np.argsort(evals)[::-1]
        var = np.clip(evals[order], 0, None)
        comps = evecs[:, order[:k]].T
        # a deterministic sign: the largest loading of each component is positive
        signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
        comps = comps * np.where(signs == 0, 1, signs)[:, None]
        explained = var[:k] / var.sum() if var.sum() > 0 else explained
        proj = x @ comps.T
        for i in range(k):
            lo, hi = np.percentile(proj[:, i], [percentile, 100 - percentile])
            if hi > lo:
                img[:, i] = np.clip((proj[:, i] - lo) / (hi - lo), 0, 1)
    return img.reshape(h, w, 3), explained, comps


def whole(v: object) -> int | None:
    """``v`` as an int when it is a whole number, numpy's included (``for s in np.arange(1, 5)``),
    else None; True is not 1."""
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    return None


def brief(v: object) -> str:
    """How a console repr shows a field: an array as its dtype and shape (a tensor too), a number
    by the shortest text that reads back as it (a float32 0.49999997 is not "0.500"), anything
    else by its repr."""
    if isinstance(v, (np.ndarray, np.generic)) and np.ndim(v) or type(v).__name__ == "Tensor":
        dtype = str(getattr(v, "dtype", "")).replace("torch.", "")
        return f"{dtype} {tuple(v.shape)}"
    if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
        f32 = np.float32(v)
        return str(f32) if float(f32) == float(v) else repr(float(v))  # np.float32's text is the shortest
    if isinstance(v, np.integer):
        return str(int(v))  # not numpy 2's "np.int64(3)"
    if isinstance(v, np.bool_):
        return str(bool(v))
    return repr(v)


#: A list, tuple or dict in a record's repr is counted, not shown, past this many characters.
SHOWN_CHARS = 80


def _shown(v: object) -> str:
    """:func:`brief`, also inside lists, tuples and dicts; never more than one line."""
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):  # a named tuple shows its own repr
        inner = ", ".join(_shown(x) for x in v)
        if isinstance(v, list):
            return f"[{inner}]"
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_shown(k)}: {_shown(x)}" for k, x in v.items()) + "}"
    text = brief(v)
    return text if "\n" not in text else f"<{type(v).__name__}>"  # e.g. a network: its repr is a page


def record_repr(self: Any) -> str:
    """One line for a record that holds arrays (``__repr__ = record_repr`` in a dataclass or a named
    tuple): ``Name(field=value, ...)`` over the fields its dataclass repr shows, arrays and tensors
    by dtype and shape, numbers exactly (:func:`brief`), a long list, tuple or dict counted
    (``notes=3 (see .notes)``), as ``Result``'s repr does."""
    if dataclasses.is_dataclass(self):
        names = [f.name for f in dataclasses.fields(self) if f.repr]
    else:
        names = list(self._fields)
    parts = []
    for k in names:
        v = getattr(self, k)
        text = _shown(v)
        if isinstance(v, (list, tuple, dict)) and not hasattr(v, "_fields") and len(text) > SHOWN_CHARS:
            text = f"{len(v)} (see .{k})"
        parts.append(f"{k}={text}")
    return f"{type(self).__name__}({', '.join(parts)})"


# ------------------------------------------------------------------ read-only sharing


def frozen(a: np.ndarray) -> bool:
    """Whether nothing can write ``a``'s memory without first turning a flag on: ``a`` and every
    array it is a view of are read-only, and the memory is numpy's or immutable bytes (not a
    caller's writable buffer). Such an array can be shared, or viewed turned, by several results."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None or isinstance(a, bytes)


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is already read-only, else a read-only view of it (nothing copied;
    the owner of ``a`` can still write it: see :func:`frozen`)."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def constant_plane(value: float, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    """A read-only array of ``shape`` holding ``value`` everywhere, in no memory (one element
    broadcast: strides 0). Reading it, turning it or saving it works as for a full array; a
    write raises."""
    one = np.full((), value, dtype)
    one.flags.writeable = False
    return np.broadcast_to(one, shape)
