"""DAFormer's context-aware decode head (HRDA's context and scale-attention heads in DGVFM).

Each map named ``in_features`` is embedded by a linear layer per pixel to E channels (resized,
bilinear, to the first map's size when it differs), the E x N concatenation is fused to D
channels and classified by Dropout2d + 1x1 conv. Fusion ``"aspp"`` (DAFormer's context-aware
fusion, DGVFM's ``daformer_sepaspp`` configs): a depthwise-separable ASPP without image pooling
(a 1x1 conv block and one depthwise-separable 3x3 block per dilation > 1, each with norm and
ReLU) whose concatenation a 3x3 conv block reduces to D channels. Fusion ``"conv"``: one 1x1 conv
block (HRDA's scale-attention head, :class:`DAFormerAttentionHead`). Submodule names equal the
original's (``embed_layers.<i>.proj``, ``fuse_layer.aspp_modules.<j>``, ``fuse_layer.bottleneck``,
``conv_seg``), so its ``decode_head.*`` checkpoint entries load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.heads.base import DecodeHead, map_args
from clouds.modeling.heads.conv_norm_act import (
    NORMS,
    ConvNormAct,
    DepthwiseSeparableConv,
    classifier,
)
from clouds.modeling.heads.vfmnet import select_features
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["FUSIONS", "DAFormerAttentionHead", "DAFormerHead", "SeparableASPP"]

FUSIONS = ("aspp", "conv")


class PixelLinear(nn.Module):
    """A linear layer applied at every pixel: (B, C, H, W) -> (B, E, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.proj(x.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(b, -1, h, w)


class SeparableASPP(nn.Module):
    """Depthwise-separable ASPP without image pooling, then a 3x3 bottleneck block."""

    def __init__(
        self, in_channels: int, channels: int, *, dilations: Sequence[int], norm: str
    ) -> None:
        super().__init__()
        self.aspp_modules = nn.ModuleList(
            ConvNormAct(in_channels, channels, 1, norm=norm)
            if d == 1
            else DepthwiseSeparableConv(in_channels, channels, 3, dilation=d, norm=norm)
            for d in dilations
        )
        self.bottleneck = ConvNormAct(len(dilations) * channels, channels, 3, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, D, H, W)."""
        return self.bottleneck(torch.cat([m(x) for m in self.aspp_modules], dim=1))


@VFM_HEAD_REGISTRY.register()
class DAFormerHead(DecodeHead):
    """Maps (B, C_i, h_i, w_i) x N -> class logits (B, K, h_0, w_0) at the first map's stride."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        embed_dim: int,
        channels: int,
        num_classes: int,
        fusion: str = "aspp",
        dilations: Sequence[int] = (1, 6, 12, 18),
        norm: str = "BN",
        dropout: float = 0.1,
    ) -> None:
        """
        Args:
            in_features: names of the backbone maps used, in concatenation order.
            in_channels: channels of each of those maps.
            embed_dim: width E of each map's linear embedding.
            channels: width D of the fused map.
            fusion: "aspp" (depthwise-separable ASPP, ``dilations``) or "conv" (1x1 conv block).
            norm: norm of the fusion blocks, "BN" (the original's) or "GN".
            dropout: Dropout2d rate before the classifier.
        """
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(
                f"MODEL.DAFORMER.FUSION {fusion!r} is not one of {', '.join(FUSIONS)}"
            )
        if norm not in NORMS:
            raise ConfigError(f"MODEL.DAFORMER.NORM {norm!r} is not one of {', '.join(NORMS)}")
        self.in_features = list(in_features)
        self.embed_layers = nn.ModuleDict(
            {str(i): PixelLinear(c, embed_dim) for i, c in enumerate(in_channels)}
        )
        fused_in = embed_dim * len(in_channels)
        if fusion == "aspp":
            self.fuse_layer: nn.Module = SeparableASPP(
                fused_in, channels, dilations=dilations, norm=norm
            )
        else:
            self.fuse_layer = ConvNormAct(fused_in, channels, 1, norm=norm)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = classifier(channels, num_classes)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> DAFormerHead:
        d = cfg.MODEL.DAFORMER
        return cls(
            **map_args(input_shape),
            embed_dim=d.EMBED_DIM,
            channels=cfg.MODEL.VFM_HEAD.HIDDEN_DIM,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            fusion=d.FUSION,
            dilations=d.DILATIONS,
            norm=d.NORM,
            dropout=cfg.MODEL.VFM_HEAD.DROPOUT,
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named maps -> logits (B, K, h_0, w_0)."""
        maps = select_features(features, self.in_features)
        size = maps[0].shape[-2:]
        embedded = []
        for layer, x in zip(self.embed_layers.values(), maps):
            e = layer(x)
            if e.shape[-2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
            embedded.append(e)
        return self.conv_seg(self.dropout(self.fuse_layer(torch.cat(embedded, dim=1))))


@VFM_HEAD_REGISTRY.register()
class DAFormerAttentionHead(DAFormerHead):
    """HRDA's scale-attention head of a DAFormer context head: embeddings of
    MODEL.DAFORMER.ATTENTION_EMBED_DIM channels (also the fused width), a 1x1 conv block as
    fusion, one output per class (MODEL.HRDA.ATTENTION_CLASSWISE) or a single one."""

    @classmethod
    def from_config(
        cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]
    ) -> DAFormerAttentionHead:
        d, classwise = cfg.MODEL.DAFORMER, cfg.MODEL.HRDA.ATTENTION_CLASSWISE
        return cls(
            **map_args(input_shape),
            embed_dim=d.ATTENTION_EMBED_DIM,
            channels=d.ATTENTION_EMBED_DIM,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES if classwise else 1,
            fusion="conv",
            norm=d.NORM,
            dropout=cfg.MODEL.VFM_HEAD.DROPOUT,
        )
