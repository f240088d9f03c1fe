"""MGRNet: mask-guided refinement head of the VFM segmentor, as DGVFM's ``VFMHead``.

Image tokens: the maps named ``in_features`` concatenated, 1x1 conv + GroupNorm(32) + GELU to
D channels. Context: the coarse logits resized (bilinear) to the stride-4 grid, then conv k2s2
(K -> D/4) + GN + GELU, conv k2s2 (D/4 -> D/2) + GN + GELU, 1x1 conv (-> D) + GN, which lands on
the token grid. A transformer decoder (optionally masking image tokens with a learned token
before its input GroupNorm(32, eps 1e-6)) runs pre-LN blocks of self-attention, cross-attention
to the un-normalised context and a GEGLU feed-forward, without position embeddings or a final
norm; Dropout2d + 1x1 conv classify at stride 16. Submodule names equal the original's, so its
``aux_decoder.*`` checkpoint entries load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.base import RefinementHead
from clouds.modeling.heads.conv_norm_act import classifier
from clouds.modeling.heads.vfmnet import check_features, select_features
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["Attention", "DecoderBlock", "FeedForward", "MGRNet", "RefinementDecoder"]


class GEGLU(nn.Module):
    """x -> a * GELU(g), (a, g) = proj(x): (B, N, C) -> (B, N, H)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU (dim -> 4 dim) + dropout + linear back to dim: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head attention, q/k/v without bias, output linear + dropout."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Queries x (B, N, C) attend to context (B, M, C) (x itself when None) -> (B, N, C)."""
        context = x if context is None else context
        q, k, v = (
            t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
            for t in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        return self.to_out(out)


class DecoderBlock(nn.Module):
    """Pre-LN block: self-attention, cross-attention to the context, GEGLU feed-forward."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn1 = Attention(dim, num_heads, head_dim, dropout)
        self.ff = FeedForward(dim, dropout)
        self.attn2 = Attention(dim, num_heads, head_dim, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, C), context (B, M, C) -> (B, N, C)."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class RefinementDecoder(nn.Module):
    """Image tokens (B, C, h, w) attend to context tokens (B, C, h, w) -> (B, C, h, w)."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        head_dim: int,
        depth: int,
        dropout: float,
        mask_ratio: float | None,
    ) -> None:
        """``mask_ratio``: share of image tokens replaced by a learned mask token when masking
        is asked for (None: no mask token, the original's unmasked ``TransformerDecoder``)."""
        super().__init__()
        if mask_ratio is not None and not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"MODEL.VFM_HEAD.MASK_RATIO must be in [0, 1), got {mask_ratio}")
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.transformer_blocks = nn.ModuleList(
            DecoderBlock(dim, num_heads, head_dim, dropout) for _ in range(depth)
        )
        self.mask_ratio = mask_ratio
        if mask_ratio is not None:
            self.mask_token = nn.Parameter(torch.randn(1, dim, 1, 1))

    def mask_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Each token of (B, C, h, w) kept with probability 1 - mask_ratio, else the mask token."""
        b, c, h, w = x.shape
        keep = torch.rand(b, 1, h, w, device=x.device) > self.mask_ratio
        return torch.where(keep, x, self.mask_token.to(x.dtype).expand(b, c, h, w))

    def forward(self, x: torch.Tensor, context: torch.Tensor, *, mask: bool) -> torch.Tensor:
        if mask and self.mask_ratio is not None:
            x = self.mask_tokens(x)
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        context = context.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


@VFM_HEAD_REGISTRY.register()
class MGRNet(RefinementHead):
    """Refinement head: named maps (B, C, h, w) + coarse logits -> logits (B, K, h, w)."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        num_layers: int = 3,
        num_heads: int = 8,
        head_dim: int = 64,
        dropout: float = 0.1,
        mask_ratio: float | None = 0.2,
    ) -> None:
        """
        Args:
            in_features: names of the backbone maps used, in concatenation order.
            in_channels: channels C of each map.
            channels: token width D (a multiple of 128: GroupNorm(32) on D/4).
            num_layers, num_heads, head_dim, dropout: the transformer decoder.
            mask_ratio: see :class:`RefinementDecoder` (None: no mask token).
        """
        super().__init__()
        if channels % 128:
            raise ValueError(f"MODEL.VFM_HEAD.HIDDEN_DIM must be a multiple of 128, got {channels}")
        self.in_features = list(in_features)
        self.activation = nn.GELU()
        self.fuse_conv = nn.Sequential(
            nn.Conv2d(in_channels * len(self.in_features), channels, kernel_size=1),
            nn.GroupNorm(32, channels),
            self.activation,
        )
        self.seg_logits_embed = nn.Sequential(
            nn.Conv2d(num_classes, channels // 4, kernel_size=2, stride=2),
            nn.GroupNorm(32, channels // 4),
            self.activation,
            nn.Conv2d(channels // 4, channels // 2, kernel_size=2, stride=2),
            nn.GroupNorm(32, channels // 2),
            self.activation,
            nn.Conv2d(channels // 2, channels, kernel_size=1),
            nn.GroupNorm(32, channels),
        )
        self.transformer_decoder = RefinementDecoder(
            dim=channels,
            num_heads=num_heads,
            head_dim=head_dim,
            depth=num_layers,
            dropout=dropout,
            mask_ratio=mask_ratio,
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = classifier(channels, num_classes)

    @classmethod
    def from_config(
        cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec], *, masked: bool
    ) -> MGRNet:
        """``masked``: the decoder has a mask token (ms_masked)."""
        in_channels, names = check_features(input_shape)
        head = cfg.MODEL.VFM_HEAD
        return cls(
            in_features=names,
            in_channels=in_channels,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            channels=head.HIDDEN_DIM,
            num_layers=head.REFINE_LAYERS,
            num_heads=head.REFINE_HEADS,
            head_dim=head.REFINE_HEAD_DIM,
            dropout=head.REFINE_DROPOUT,
            mask_ratio=head.MASK_RATIO if masked else None,
        )

    @property
    def masks_tokens(self) -> bool:
        return self.transformer_decoder.mask_ratio is not None

    def forward(
        self,
        features: Mapping[str, torch.Tensor],
        coarse_logits: torch.Tensor,
        *,
        mask: bool = False,
    ) -> torch.Tensor:
        """Refine a region.

        Args:
            features: named maps (B, C, h, w) of the region at stride 16.
            coarse_logits: (B, K, H', W') coarse logits of the same region, any size (resized
                bilinearly to (4h, 4w)); the caller detaches them.
            mask: mask image tokens (training; the original's masked decoder).

        Returns:
            (B, K, h, w) refined logits at stride 16.
        """
        maps = select_features(features, self.in_features)
        h, w = maps[0].shape[-2:]
        context = F.interpolate(
            coarse_logits.to(maps[0].dtype),
            size=(4 * h, 4 * w),
            mode="bilinear",
            align_corners=False,
        )
        tokens = self.fuse_conv(torch.cat(maps, dim=1))
        out = self.transformer_decoder(tokens, self.seg_logits_embed(context), mask=mask)
        return self.conv_seg(self.dropout(out))
