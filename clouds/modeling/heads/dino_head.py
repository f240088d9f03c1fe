"""DINOHead: the SegFormer head with a context transformer, as DGVFM's ``DINOhead`` (the head of
its ``dg_rein_dinov2_ms_1024x1024`` config).

Without context it is :class:`SegFormerHead`. With context (class logits of the same region,
(B, K, h', w')) the embedded maps are concatenated without resizing (the VFM maps share one
size), fused, and refined by a spatial transformer before the classifier: GroupNorm(32, eps
1e-6), 1x1 conv to heads x head_dim, pre-LN blocks of self-attention, cross-attention to the
context pixels (K channels each) and a GEGLU feed-forward, 1x1 conv back (zero-initialised),
added to the fused map. Submodule names equal the original's (``transformer_blocks.norm``,
``.proj_in``, ``.transformer_blocks.<i>``, ``.proj_out``), so its checkpoint entries load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.mgrnet import Attention, DecoderBlock
from clouds.modeling.heads.segformer_head import SegFormerHead
from clouds.modeling.heads.vfmnet import select_features
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["DINOHead", "SpatialTransformer"]


class _ContextBlock(DecoderBlock):
    """:class:`DecoderBlock` whose cross-attention reads context tokens of ``context_dim``."""

    def __init__(
        self, dim: int, num_heads: int, head_dim: int, dropout: float, context_dim: int
    ) -> None:
        super().__init__(dim, num_heads, head_dim, dropout)
        inner = num_heads * head_dim
        attn2: Attention = self.attn2
        attn2.to_k = nn.Linear(context_dim, inner, bias=False)
        attn2.to_v = nn.Linear(context_dim, inner, bias=False)


class SpatialTransformer(nn.Module):
    """A map (B, C, h, w) attends to context pixels (B, K, h', w') -> (B, C, h, w), residual."""

    def __init__(
        self,
        *,
        channels: int,
        num_heads: int,
        head_dim: int,
        depth: int,
        dropout: float,
        context_dim: int,
    ) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            _ContextBlock(inner, num_heads, head_dim, dropout, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        context_tokens = context.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, context_tokens)
        return self.proj_out(tokens.transpose(1, 2).reshape(b, -1, h, w)) + x


@VFM_HEAD_REGISTRY.register()
class DINOHead(SegFormerHead):
    """Named maps (+ optional context logits) -> class logits (B, K, h_0, w_0)."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        dropout: float = 0.1,
        num_heads: int = 8,
        head_dim: int = 64,
        depth: int = 1,
        attention_dropout: float = 0.1,
    ) -> None:
        """As :class:`SegFormerHead`; the context transformer has ``depth`` blocks of
        ``num_heads`` x ``head_dim`` attention with dropout ``attention_dropout`` and reads
        context of ``num_classes`` channels."""
        super().__init__(
            in_features=in_features,
            in_channels=in_channels,
            channels=channels,
            num_classes=num_classes,
            dropout=dropout,
        )
        self.transformer_blocks = SpatialTransformer(
            channels=channels,
            num_heads=num_heads,
            head_dim=head_dim,
            depth=depth,
            dropout=attention_dropout,
            context_dim=num_classes,
        )

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> DINOHead:
        head = cfg.MODEL.VFM_HEAD
        return cls(
            **cls.config_args(cfg, input_shape),
            num_heads=head.REFINE_HEADS,
            head_dim=head.REFINE_HEAD_DIM,
            depth=head.REFINE_LAYERS,
            attention_dropout=head.REFINE_DROPOUT,
        )

    def forward(
        self, features: Mapping[str, torch.Tensor], context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Named maps (and context logits (B, K, h', w')) -> logits (B, K, h_0, w_0)."""
        if context is None:
            return super().forward(features)
        maps = select_features(features, self.in_features)
        fused = self.fusion_conv(torch.cat([conv(x) for conv, x in zip(self.convs, maps)], dim=1))
        refined = self.transformer_blocks(fused, context.to(fused.dtype))
        return self.conv_seg(self.dropout(refined))
