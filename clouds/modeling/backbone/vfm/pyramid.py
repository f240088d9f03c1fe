"""Simple feature pyramid: four stride-16 VFM maps -> res2..res5 at strides 4, 8, 16, 32.

The mask-classification head's pixel decoder needs multi-stride inputs, which a plain ViT does
not have. As in ViTDet's simple pyramid, each level comes from one VFM map (shallowest block ->
finest level): two stride-2 transposed convs (stride 4), one (stride 8), identity (stride 16) or
a 2x2 max-pool (stride 32), then a 1x1 conv + GroupNorm to ``out_channels``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from clouds.modeling.shape_spec import ShapeSpec


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 2 channels (32 groups for 256 channels)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 2, 1)), channels)


__all__ = ["SimpleFeaturePyramid"]

_LEVELS = (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32))


def _resample(in_channels: int, stride: int) -> nn.Module:
    """Bring a stride-16 map to ``stride`` (4, 8, 16 or 32)."""
    if stride == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2),
            group_norm(in_channels),
            nn.GELU(),
            nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2),
        )
    if stride == 8:
        return nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2)
    if stride == 16:
        return nn.Identity()
    return nn.MaxPool2d(kernel_size=2, stride=2)


class SimpleFeaturePyramid(nn.Module):
    """4 maps (B, C, h, w) -> {"res2": (B, D, 4h, 4w), ..., "res5": (B, D, h/2, w/2)}."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.levels = nn.ModuleDict(
            {
                name: nn.Sequential(
                    _resample(in_channels, stride),
                    nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                    group_norm(out_channels),
                )
                for name, stride in _LEVELS
            }
        )
        self.out_channels = out_channels

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self.out_channels, stride=s) for name, s in _LEVELS}

    def forward(self, features: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(features) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} feature maps, got {len(features)}")
        return {name: level(x) for (name, level), x in zip(self.levels.items(), features)}
