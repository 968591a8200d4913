"""Dual MiT encoder of TruFor: an RGB branch and a Noiseprint++ branch, fused by CMX.

Stage ``i`` of each branch is a patch embedding, ``depths[i]`` transformer blocks and a
LayerNorm. After every stage the FRM rectifies the two streams (which then feed stage ``i+1``)
and the FFM fuses them into the stage's output for the decoders.

Parameters keep the official names (``patch_embed1``, ``block1``, ``norm1`` for the RGB
branch, ``extra_patch_embed1``, ``extra_block1``, ``extra_norm1`` for Noiseprint++, and
``FRMs``/``FFMs``), so official checkpoints load without an adapter. The stages themselves
are built and run in a loop from :class:`TruForConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import TruForConfig
from .fusion import FeatureFusionModule, FeatureRectifyModule
from .segformer import Block, LayerNorm6, OverlapPatchEmbed, tokens_to_map

BRANCHES = ("rgb", "noiseprint")
_PREFIX = {"rgb": "", "noiseprint": "extra_"}


@dataclass(frozen=True)
class FeatureInfo:
    """What stage ``stage`` (1-based) emits: channels and reduction w.r.t. the input."""

    stage: int
    channels: int
    reduction: int


class DualMiTEncoder(nn.Module):
    """Two MiT encoders with FRM/FFM fusion after every stage; returns the fused maps."""

    def __init__(self, cfg: TruForConfig, in_chans: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths), device="cpu").tolist()
        self.feature_info: list[FeatureInfo] = []
        reduction, cur = 1, 0
        for branch in BRANCHES:  # patch embeddings first, as in the official module
            for i in range(cfg.num_stages):
                cin = in_chans if i == 0 else cfg.embed_dims[i - 1]
                setattr(
                    self,
                    f"{_PREFIX[branch]}patch_embed{i + 1}",
                    OverlapPatchEmbed(cin, cfg.embed_dims[i], cfg.patch_sizes[i], cfg.strides[i]),
                )
        for i in range(cfg.num_stages):
            dim = cfg.embed_dims[i]
            for branch in BRANCHES:
                p = _PREFIX[branch]
                setattr(
                    self,
                    f"{p}block{i + 1}",
                    nn.ModuleList(
                        Block(dim, cfg.num_heads[i], cfg.mlp_ratios[i], cfg.sr_ratios[i], dpr[cur + j])
                        for j in range(cfg.depths[i])
                    ),
                )
                setattr(self, f"{p}norm{i + 1}", LayerNorm6(dim))
            cur += cfg.depths[i]
            reduction *= cfg.strides[i]
            self.feature_info.append(FeatureInfo(i + 1, dim, reduction))
        self.FRMs = nn.ModuleList(FeatureRectifyModule(d) for d in cfg.embed_dims)
        self.FFMs = nn.ModuleList(FeatureFusionModule(d, num_heads=h) for d, h in zip(cfg.embed_dims, cfg.num_heads))

    def stage_modules(self, branch: str, stage: int) -> tuple[OverlapPatchEmbed, nn.ModuleList, nn.Module]:
        """(patch embedding, blocks, norm) of ``branch`` ('rgb' or 'noiseprint') at 1-based ``stage``."""
        p = _PREFIX[branch]
        return (
            getattr(self, f"{p}patch_embed{stage}"),
            getattr(self, f"{p}block{stage}"),
            getattr(self, f"{p}norm{stage}"),
        )

    def run_stage(self, branch: str, stage: int, x: torch.Tensor) -> torch.Tensor:
        """One MiT stage of one branch: ``(B, Cin, H, W)`` map to ``(B, C, H', W')`` map."""
        patch_embed, blocks, norm = self.stage_modules(branch, stage)
        t, hw = patch_embed(x)
        for blk in blocks:
            t = blk(t, hw)
        return tokens_to_map(norm(t), hw)

    def forward(self, x_rgb: torch.Tensor, x_np: torch.Tensor) -> list[torch.Tensor]:
        fused = []
        for i in range(self.cfg.num_stages):
            x_rgb = self.run_stage("rgb", i + 1, x_rgb)
            x_np = self.run_stage("noiseprint", i + 1, x_np)
            x_rgb, x_np = self.FRMs[i](x_rgb, x_np)
            fused.append(self.FFMs[i](x_rgb, x_np))
        return fused
