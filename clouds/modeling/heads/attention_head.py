"""HRDA's scale-attention head of DGVFM's LoRA HRDA config (its ``AttentionHead``).

The maps named ``in_features`` are concatenated, fused by a 1x1 conv + GroupNorm(32) + ReLU to D
channels and classified by Dropout2d + 1x1 conv into one attention logit per class, at the maps'
stride. Submodule names equal the original's (``fusion_conv``, ``conv_seg``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.heads.conv_norm_act import ConvNormAct, classifier
from clouds.modeling.heads.vfmnet import select_features
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["AttentionHead"]


@VFM_HEAD_REGISTRY.register()
class AttentionHead(DecodeHead):
    """Maps (B, C, h, w) x N -> attention logits (B, K, h, w)."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: int,
        channels: int,
        num_classes: int,
        dropout: float = 0.1,
    ) -> None:
        """
        Args:
            in_features: names of the backbone maps used, in concatenation order.
            in_channels: channels C of each map.
            channels: width D of the fused map (a multiple of 32).
            num_classes: outputs K (the classes, or 1 for one attention map for all).
            dropout: Dropout2d rate before the classifier.
        """
        super().__init__()
        self.in_features = list(in_features)
        self.fusion_conv = ConvNormAct(in_channels * len(self.in_features), channels)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = classifier(channels, num_classes)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> AttentionHead:
        channels = {s.channels for s in input_shape.values()}
        if len(channels) != 1:
            raise ValueError(f"AttentionHead needs maps of one width, got {input_shape}")
        classwise = cfg.MODEL.HRDA.ATTENTION_CLASSWISE
        return cls(
            in_features=list(input_shape),
            in_channels=channels.pop(),
            channels=cfg.MODEL.VFM_HEAD.HIDDEN_DIM,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES if classwise else 1,
            dropout=cfg.MODEL.VFM_HEAD.DROPOUT,
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named maps -> attention logits (B, K, h, w)."""
        x = torch.cat(select_features(features, self.in_features), dim=1)
        return self.conv_seg(self.dropout(self.fusion_conv(x)))
