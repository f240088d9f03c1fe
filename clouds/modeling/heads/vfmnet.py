"""VFMNet: the light per-pixel head of the VFM segmentor, as DGVFM's ``LinearHead``.

The maps named ``in_features`` (C channels, stride 16) are concatenated, fused by a 1x1 conv
(no bias) + GroupNorm(32) + ReLU to C channels, brought to stride 4 by ConvT(C, C/2) + BatchNorm
+ GELU + ConvT(C/2, C/4) + GELU, and classified by Dropout2d + 1x1 conv. Submodule names equal
the original's, so its ``decode_head.*`` checkpoint entries load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.heads.conv_norm_act import ConvNormAct, classifier
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["VFMNet", "check_features", "select_features"]


def check_features(input_shape: Mapping[str, ShapeSpec]) -> tuple[int, list[str]]:
    """(channels per map, map names) of equal-width stride-16 backbone outputs."""
    channels = {s.channels for s in input_shape.values()}
    strides = {s.stride for s in input_shape.values()}
    if len(channels) != 1 or strides != {16}:
        raise ValueError(f"VFM heads need equal-width stride-16 maps, got {input_shape}")
    return channels.pop(), list(input_shape)


def select_features(
    features: Mapping[str, torch.Tensor], names: Sequence[str]
) -> list[torch.Tensor]:
    """The maps ``names`` of a backbone output, in that order (KeyError naming a missing one)."""
    missing = [n for n in names if n not in features]
    if missing:
        raise KeyError(f"backbone features {missing} missing (got {sorted(features)})")
    return [features[n] for n in names]


@VFM_HEAD_REGISTRY.register()
class VFMNet(DecodeHead):
    """Light head: maps (B, C, h, w) x N -> class logits (B, K, 4h, 4w) at stride 4."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: int,
        num_classes: int,
        dropout: float = 0.1,
    ) -> None:
        """
        Args:
            in_features: names of the backbone maps used, in concatenation order.
            in_channels: channels C of each map (a multiple of 32 and of 4).
            dropout: Dropout2d rate before the classifier.
        """
        super().__init__()
        if in_channels % 32:
            raise ValueError(
                f"VFMNet needs channels divisible by 32 (GroupNorm), got {in_channels}"
            )
        self.in_features = list(in_features)
        c = in_channels
        self.fusion_conv = ConvNormAct(c * len(self.in_features), c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, kernel_size=2, stride=2),
            nn.BatchNorm2d(c // 2),
            nn.GELU(),
            nn.ConvTranspose2d(c // 2, c // 4, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = classifier(c // 4, num_classes)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> VFMNet:
        in_channels, names = check_features(input_shape)
        return cls(
            in_features=names,
            in_channels=in_channels,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            dropout=cfg.MODEL.VFM_HEAD.DROPOUT,
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named maps (B, C, h, w) -> logits (B, K, 4h, 4w)."""
        x = self.fusion_conv(torch.cat(select_features(features, self.in_features), dim=1))
        return self.conv_seg(self.dropout(self.output_upscaling(x)))
