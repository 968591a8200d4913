"""How far one output is from another (a mode from exact, a device from another): the largest
differences, and quantiles that say how much of the image moves at all."""

from __future__ import annotations

import torch

from trufor_lab.model import TruForOutput


def deviation(out: TruForOutput, ref: TruForOutput) -> dict[str, float]:
    """Largest differences between two outputs: map, conf, score, Noiseprint++ (max |Δ|)."""

    def d(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() - b.double()).abs().max())

    return {
        "map": d(out.map, ref.map),
        "conf": d(out.conf, ref.conf),
        "score": d(out.score, ref.score),
        "noiseprint": d(out.noiseprint, ref.noiseprint),
    }


def deviation_quantiles(
    out: TruForOutput, ref: TruForOutput, qs: tuple[float, ...] = (0.5, 0.99, 0.999)
) -> dict[str, dict[str, float]]:
    """Quantiles of the per-pixel |Δ| of map and conf: the max is one pixel out of millions, these
    say how much of the image moves at all."""

    def q(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        d = (a.double() - b.double()).abs().flatten()
        if d.numel() > 4_000_000:  # torch.quantile's size limit: a strided subsample
            d = d[:: -(-d.numel() // 4_000_000)]
        return {f"q{100 * p:g}": float(torch.quantile(d, p)) for p in qs}

    return {"map": q(out.map, ref.map), "conf": q(out.conf, ref.conf)}
