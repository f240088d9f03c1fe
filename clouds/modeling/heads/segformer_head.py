"""SegFormer's all-MLP decode head, as mmseg 1.2.2's ``SegformerHead`` in DGVFM's SegFormer configs.

Each map named ``in_features`` goes through its own 1x1 conv + GroupNorm(32) + ReLU to D
channels and is resized (bilinear) to the first map's size; the D x N concatenation is fused by
a 1x1 conv + GroupNorm(32) + ReLU and classified by Dropout2d + 1x1 conv. On the VFM backbones
every map has stride 16, so the logits have stride 16 too. Submodule names equal the original's
(``convs.<i>``, ``fusion_conv``, ``conv_seg``), so its ``decode_head.*`` checkpoint entries load
as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.base import DecodeHead, map_args
from clouds.modeling.heads.conv_norm_act import ConvNormAct, classifier
from clouds.modeling.heads.vfmnet import select_features
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["SegFormerHead"]


@VFM_HEAD_REGISTRY.register()
class SegFormerHead(DecodeHead):
    """Maps (B, C_i, h_i, w_i) x N -> class logits (B, K, h_0, w_0) at the first map's stride."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        dropout: float = 0.1,
    ) -> None:
        """
        Args:
            in_features: names of the backbone maps used, in concatenation order.
            in_channels: channels of each of those maps.
            channels: width D of the embeddings and of the fused map (a multiple of 32).
            dropout: Dropout2d rate before the classifier.
        """
        super().__init__()
        if len(in_features) != len(in_channels):
            raise ValueError(f"{len(in_features)} feature names for {len(in_channels)} widths")
        self.in_features = list(in_features)
        self.convs = nn.ModuleList(ConvNormAct(c, channels) for c in in_channels)
        self.fusion_conv = ConvNormAct(channels * len(in_channels), channels)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = classifier(channels, num_classes)

    @staticmethod
    def config_args(cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> dict[str, Any]:
        """The ``__init__`` arguments from the config: every backbone map,
        MODEL.VFM_HEAD.HIDDEN_DIM channels, MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        MODEL.VFM_HEAD.DROPOUT."""
        return {
            **map_args(input_shape),
            "channels": cfg.MODEL.VFM_HEAD.HIDDEN_DIM,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "dropout": cfg.MODEL.VFM_HEAD.DROPOUT,
        }

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> SegFormerHead:
        return cls(**cls.config_args(cfg, input_shape))

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named maps -> logits (B, K, h_0, w_0)."""
        maps = select_features(features, self.in_features)
        size = maps[0].shape[-2:]
        embedded = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False)
            for conv, x in zip(self.convs, maps)
        ]
        return self.conv_seg(self.dropout(self.fusion_conv(torch.cat(embedded, dim=1))))
