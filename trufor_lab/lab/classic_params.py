"""The options each classic detector takes, checked before it runs.

A value outside what a method can use did not fail cleanly: ``block=0`` divided by zero, a block
larger than the picture failed deep in numpy, ``window=0`` gave the verdict "no CFA trace found"
and ``quality=75.9`` ran at 75. Each option here has its range; :func:`check_params` refuses
anything else in one line naming the method, the option and what it accepts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OPTIONS", "check_params"]


@dataclass(frozen=True)
class Whole:
    """A whole number in ``[lo, hi]`` (``even``: an even one); ``side``: a size in pixels, which a
    picture smaller than it cannot be judged at (not the caller's error: the method is not
    applicable there)."""

    lo: int
    hi: int | None = None
    side: bool = False
    even: bool = False

    def why_not(self, v: Any) -> str | None:
        kind = "an even whole number" if self.even else "a whole number"
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return f"{kind}, not {v!r}"
        if v < self.lo or (self.hi is not None and v > self.hi) or (self.even and v % 2):
            return f"{kind} from {self.lo}" + (f" to {self.hi}" if self.hi is not None else " up") + f", not {v}"
        return None


@dataclass(frozen=True)
class Real:
    """A finite number of at least ``lo``."""

    lo: float = 0.0

    def why_not(self, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < self.lo:
            return f"a finite number of at least {self.lo:g}, not {v!r}"
        return None


@dataclass(frozen=True)
class Qualities:
    """A non-empty sequence of JPEG qualities (1-100)."""

    def why_not(self, v: Any) -> str | None:
        if isinstance(v, np.ndarray):
            v = v.tolist() if v.ndim == 1 else None  # np.arange(50, 100, 5): numbers, as a list
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or not v:
            return f"a non-empty sequence of JPEG qualities (1-100), not {v!r}"
        bad = next((q for q in v if QUALITY.why_not(q)), None)
        return None if bad is None else f"JPEG qualities from 1 to 100, not {bad!r}"


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def why_not(self, v: Any) -> str | None:
        return None if v in self.values else f"one of {', '.join(self.values)}, not {v!r}"


@dataclass(frozen=True)
class Flag:
    """``True`` or ``False`` (not a number or a string that reads as one)."""

    def why_not(self, v: Any) -> str | None:
        return None if isinstance(v, (bool, np.bool_)) else f"True or False, not {v!r}"


@dataclass(frozen=True)
class OrNone:
    """``None`` (the method's own choice, e.g. ELA at the file's quality) or what ``rule`` takes."""

    rule: Any

    def why_not(self, v: Any) -> str | None:
        return None if v is None else self.rule.why_not(v)


@dataclass(frozen=True)
class Anything:
    """Checked by the method itself (a model, a map)."""

    def why_not(self, v: Any) -> str | None:
        return None


QUALITY = Whole(1, 100)
#: ``None``: the file's own chroma subsampling (4:2:0 for a picture that is not a JPEG file).
SUBSAMPLING = OrNone(Choice(("4:4:4", "4:2:2", "4:2:0")))
#: Per detector, its options and what each accepts.
OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "ela": {"quality": OrNone(QUALITY), "smooth": Real(), "subsampling": SUBSAMPLING},
    "jpeg_ghost": {
        "qualities": Qualities(),
        "window": Whole(1, side=True),
        "subsampling": SUBSAMPLING,
        "differences": Flag(),
    },
    "dq_aligned": {
        "n_coeffs": Whole(1, 63),
        "max_value": Whole(1),
        "smooth": Real(),
        "show": Choice(("single", "double")),
        "min_z": Real(),
    },
    "dq_nonaligned": {"n_coeffs": Whole(1, 63), "max_step": Whole(2), "smooth": Real()},
    "bag": {"line": Whole(3), "min_grid": Real()},
    # noise: tiles are measured on the half-resolution wavelet subband, so a tile is an even number
    # of pixels (an odd block measured tiles of block - 1 painted back at stride block: a shifted map)
    "noise": {"block": Whole(2, side=True, even=True)},
    "cfa": {"block": Whole(2, side=True), "window": Whole(3, side=True), "min_trace": Real()},
    "noiseprint": {"window": Whole(2, side=True), "iters": Whole(1), "noiseprint": Anything(), "model": Anything()},
}


def check_params(method: str, params: Mapping[str, Any], shape: tuple[int, int]) -> str | None:
    """``ValueError`` (one line) for an option ``method`` does not take or a value it can never
    use; returns why the method is not applicable to a picture of ``shape`` with these options
    (a block larger than the picture), else ``None``. A method not listed here (one a user
    added) is not checked."""
    options = OPTIONS.get(method)
    if options is None:
        return None
    for name, value in params.items():
        rule = options.get(name)
        if rule is None:
            raise ValueError(f"{method} takes no option {name!r}; its options: {', '.join(options) or 'none'}")
        why = rule.why_not(value)
        if why is not None:
            raise ValueError(f"{method}: {name} must be {why}")
    side = min(shape)
    too_big = [f"{k}={v}" for k, v in params.items() if getattr(options[k], "side", False) and v > side]
    if too_big:
        return f"{method} with {', '.join(too_big)} needs a picture at least that many pixels a side"
    return None
