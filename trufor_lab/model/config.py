"""Architecture sizes of TruFor. A variant is a different config, never a copy of the code."""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TruForConfig:
    """Sizes of the dual SegFormer encoder, the decoders and Noiseprint++.

    The defaults are the official TruFor: MiT-B2 stages, decoder embedding 512, a 17-level
    DnCNN for Noiseprint++, ImageNet normalisation of the RGB branch only.
    """

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    mlp_ratios: tuple[int, ...] = (4, 4, 4, 4)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    patch_sizes: tuple[int, ...] = (7, 3, 3, 3)
    strides: tuple[int, ...] = (4, 2, 2, 2)
    decoder_embed_dim: int = 512
    #: BatchNorm eps of the anomaly decoder's fuse layer (the official config re-initialises
    #: that decoder with BN_EPS 0.001; the confidence decoder keeps PyTorch's 1e-5).
    decoder_bn_eps: float = 1e-3
    num_classes: int = 2
    np_levels: int = 17
    drop_path_rate: float = 0.0
    rgb_mean: tuple[float, float, float] = field(default=(0.485, 0.456, 0.406))
    rgb_std: tuple[float, float, float] = field(default=(0.229, 0.224, 0.225))

    def __post_init__(self) -> None:
        n = len(self.embed_dims)
        if n < 1:
            raise ValueError("TruForConfig.embed_dims is empty: the encoder needs at least one stage")
        for name in ("depths", "num_heads", "mlp_ratios", "sr_ratios", "patch_sizes", "strides"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TruForConfig.{name} must have {n} entries like embed_dims")
        for dim, heads in zip(self.embed_dims, self.num_heads):
            if dim % heads:
                raise ValueError(f"embed dim {dim} is not divisible by {heads} heads")
        if self.num_classes < 2:  # the map is the softmax's 'forged' class, the score pools forged - pristine
            raise ValueError(
                f"num_classes = {self.num_classes}: TruFor's anomaly decoder needs at least 2 (pristine, forged)"
            )

    @property
    def num_stages(self) -> int:
        return len(self.embed_dims)

    @property
    def min_side(self) -> int:
        """Smallest image side this network can take (29 for the official sizes): every patch
        embedding needs its kernel to fit the padded input, and every spatial reduction (an
        ``sr x sr`` stride-``sr`` convolution) at least ``sr`` positions. Worked out from the last
        stage back: an output of ``n`` positions needs ``(n - 1) * stride + kernel - 2 * pad``."""
        need = 1
        for k, s, sr in reversed(list(zip(self.patch_sizes, self.strides, self.sr_ratios))):
            need = max(1, (max(need, sr) - 1) * s + k - 2 * (k // 2))
        return need

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TruForConfig":
        """A config from its dict (e.g. a checkpoint's ``config`` entry: untrusted). Unknown keys,
        wrong types and sizes beyond any TruFor variant raise ``ValueError`` (one line) before
        anything is built: a 2 KB file must not make the loader allocate gigabytes."""
        if not isinstance(d, Mapping):
            raise ValueError(f"config must be a mapping, got {type(d).__name__}")
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(str(k)[:40] for k in d if k not in names)  # untrusted names: bounded
        if unknown:
            raise ValueError(f"config has unknown entries: {', '.join(unknown[:5])}")
        out: dict[str, Any] = {}
        for k, v in d.items():
            default = getattr(cls(), k)
            kind = "integers" if isinstance(default, tuple) and isinstance(default[0], int) else "numbers"
            if isinstance(default, tuple):
                if not isinstance(v, (list, tuple)) or not all(_is_number(x, default[0]) for x in v):
                    raise ValueError(f"config.{k} must be a list of {kind}, got {_short(v)}")
                v = tuple(v)
            elif not _is_number(v, default):
                raise ValueError(f"config.{k} must be a {type(default).__name__}, got {_short(v)}")
            if not all(_finite(x) for x in (v if isinstance(v, tuple) else (v,))):
                raise ValueError(f"config.{k} must be finite, got {_short(v)}")
            out[k] = v
        for k, hi in _LIMITS.items():
            vals = out.get(k, getattr(cls(), k))
            for x in vals if isinstance(vals, tuple) else (vals,):
                if not 1 <= x <= hi:
                    raise ValueError(f"config.{k} = {_short(vals)} is outside 1..{hi}")
        for k, (lo, hi, closed, what) in _RANGES.items():
            vals = out.get(k, getattr(cls(), k))
            for x in vals if isinstance(vals, tuple) else (vals,):
                if not (lo <= x if closed else lo < x) or x > hi:
                    raise ValueError(f"config.{k} = {_short(vals)}: {what}")
        for k in ("rgb_mean", "rgb_std"):
            if len(out.get(k, getattr(cls(), k))) != 3:
                raise ValueError(f"config.{k} must have 3 entries (R, G, B), got {_short(out[k])}")
        return cls(**out)


def _short(v: Any) -> str:
    """A short, one-line repr of an untrusted value (nesting depth and length bounded)."""
    r = reprlib.Repr()  # attributes, not keywords: Python 3.11's Repr takes none
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxstring, r.maxother = 2, 6, 6, 4, 40, 40
    return " ".join(r.repr(v).split())[:80]


def _finite(x: float) -> bool:
    """A finite number within float range (``math.isfinite(10**400)`` raises OverflowError)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _is_number(v: Any, like: Any) -> bool:
    """``v`` is a number of ``like``'s kind (an int for int fields; bools are not numbers)."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) if isinstance(like, int) and not isinstance(like, float) else isinstance(v, (int, float))


#: Largest value a config entry may take (MiT-B5 is 512 wide, 40 blocks deep: generous bounds).
_LIMITS = {
    "embed_dims": 2048,
    "depths": 64,
    "num_heads": 64,
    "mlp_ratios": 16,
    "sr_ratios": 64,
    "patch_sizes": 15,
    "strides": 8,
    "decoder_embed_dim": 4096,
    "num_classes": 16,
    "np_levels": 64,
}


#: Ranges of the float entries: (low, high, whether low itself is allowed, what a value outside
#: means). A zero std or eps divides by zero; a NaN anywhere makes every output NaN.
_RANGES = {
    "decoder_bn_eps": (0.0, 1.0, False, "a BatchNorm eps lies in (0, 1]"),
    "drop_path_rate": (0.0, 0.99, True, "a drop-path rate lies in 0..0.99"),
    "rgb_mean": (0.0, 1.0, True, "means of RGB/255 lie in 0..1"),
    "rgb_std": (0.0, 1.0, False, "standard deviations of RGB/255 lie in (0, 1]"),
}


#: The official TruFor (MiT-B2 dual encoder).
MIT_B2 = TruForConfig()
#: A small variant with MiT-B0-sized stages, same structure (used for the demo model).
MIT_B0 = TruForConfig(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_embed_dim=256)


def stage_sizes(state_dict: Mapping[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(embed dims, depths) of the RGB encoder a TruFor state dict was saved from, read from its
    patch-embedding shapes and block indices; None when it holds no such encoder."""
    dims: dict[int, int] = {}
    depth: dict[int, int] = {}
    for k, v in state_dict.items():
        # indices of at most 9 digits: int() refuses a 5000-digit one (keys are untrusted); a
        # longer one matches nothing here and is reported by the strict load as unexpected
        m = re.fullmatch(r"backbone\.patch_embed(\d{1,9})\.proj\.weight", k)
        if m and getattr(v, "ndim", 0) == 4:
            dims[int(m.group(1))] = int(v.shape[0])
        m = re.match(r"backbone\.block(\d{1,9})\.(\d{1,9})\.", k)
        if m:
            depth[int(m.group(1))] = max(depth.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    if not dims or sorted(dims) != list(range(1, len(dims) + 1)):
        return None
    return tuple(dims[i] for i in sorted(dims)), tuple(depth.get(i, 0) for i in sorted(dims))
