"""VFMNet: the light per-pixel head of the VFM segmentor (DGVFM).

The four stride-16 maps are concatenated, fused by a 1x1 conv + GroupNorm + ReLU, brought to
stride 4 by two stride-2 transposed convs and classified by a 1x1 conv.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["VFMNet", "group_norm", "upsample_x4"]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 2 channels (32 groups for 256 channels)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 2, 1)), channels)


def upsample_x4(channels: int) -> nn.Sequential:
    """Two stride-2 transposed convs (each + GroupNorm + ReLU): (B, C, h, w) -> (B, C, 4h, 4w)."""
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
            group_norm(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def check_features(input_shape: dict[str, ShapeSpec]) -> tuple[int, int]:
    """(channels per map, number of maps) of equal-width stride-16 backbone outputs."""
    channels = {s.channels for s in input_shape.values()}
    strides = {s.stride for s in input_shape.values()}
    if len(channels) != 1 or strides != {16}:
        raise ValueError(f"VFM heads need equal-width stride-16 maps, got {input_shape}")
    return channels.pop(), len(input_shape)


class VFMNet(nn.Module):
    """Light head: maps (B, C, h, w) x N -> class logits (B, K, 4h, 4w) at stride 4."""

    def __init__(
        self, *, in_channels: int, num_features: int, hidden_dim: int, num_classes: int
    ) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels * num_features, hidden_dim, kernel_size=1, bias=False),
            group_norm(hidden_dim),
            nn.ReLU(inplace=True),
        )
        self.upsample = upsample_x4(hidden_dim)
        self.classifier = nn.Conv2d(hidden_dim, num_classes, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> VFMNet:
        in_channels, num_features = check_features(input_shape)
        return cls(
            in_channels=in_channels,
            num_features=num_features,
            hidden_dim=cfg.MODEL.VFM_HEAD.HIDDEN_DIM,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """N maps (B, C, h, w) -> logits (B, K, 4h, 4w)."""
        x = self.fuse(torch.cat(list(features), dim=1))
        return self.classifier(self.upsample(x))
