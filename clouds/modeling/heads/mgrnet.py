"""MGRNet: mask-guided refinement head of the VFM segmentor (DGVFM).

Image tokens (the four stride-16 maps projected to ``hidden_dim``) go through pre-norm blocks of
self-attention, cross-attention to an embedding of the coarse class logits of the same region
(two stride-2 convs + 1x1 conv, so it lies on the token grid) and a GEGLU feed-forward. In
training a share of the image tokens is replaced by one learned mask token ("ms_masked"). The
refined tokens are brought to stride 4 and classified like in :class:`VFMNet`. Both token sets
get fixed 2-D sine position embeddings on queries and keys so that cross-attention can relate
a token to the coarse prediction around it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.heads.vfmnet import check_features, group_norm, upsample_x4
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = ["GEGLUFeedForward", "MGRNet", "RefinementBlock"]


class GEGLUFeedForward(nn.Module):
    """x -> W2 (a * GELU(g)), (a, g) = W1 x: (B, N, C) -> (B, N, C)."""

    def __init__(self, *, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.proj_out = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(self.dropout(a * F.gelu(gate)))


class RefinementBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention to the logit embedding, GEGLU FFN."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = GEGLUFeedForward(dim=dim, hidden_dim=4 * dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, x_pos: torch.Tensor, context_pos: torch.Tensor
    ) -> torch.Tensor:
        """Tokens x (B, N, C), context (B, M, C), their position embeddings -> (B, N, C)."""
        h = self.norm_self(x)
        x = x + self.dropout(self.self_attn(h + x_pos, h + x_pos, h, need_weights=False)[0])
        h = self.norm_cross(x)
        c = self.norm_context(context)
        x = x + self.dropout(self.cross_attn(h + x_pos, c + context_pos, c, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class MGRNet(nn.Module):
    """Refinement head: maps (B, C, h, w) x N + coarse logits -> logits (B, K, 4h, 4w)."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_features: int,
        num_classes: int,
        hidden_dim: int = 256,
        num_layers: int = 3,
        num_heads: int = 8,
        dropout: float = 0.1,
        mask_ratio: float = 0.2,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"MODEL.VFM_HEAD.MASK_RATIO must be in [0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.token_proj = nn.Conv2d(in_channels * num_features, hidden_dim, kernel_size=1)
        self.logit_embed = nn.Sequential(
            nn.Conv2d(num_classes, hidden_dim, kernel_size=3, stride=2, padding=1),
            group_norm(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size=3, stride=2, padding=1),
            group_norm(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size=1),
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.pos_embed = PositionEmbeddingSine(num_pos_feats=hidden_dim // 2)
        self.blocks = nn.ModuleList(
            RefinementBlock(dim=hidden_dim, num_heads=num_heads, dropout=dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.upsample = upsample_x4(hidden_dim)
        self.classifier = nn.Conv2d(hidden_dim, num_classes, kernel_size=1)

    @classmethod
    def from_config(
        cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec], *, masked: bool
    ) -> MGRNet:
        """``masked``: replace MODEL.VFM_HEAD.MASK_RATIO of the tokens in training (ms_masked)."""
        in_channels, num_features = check_features(input_shape)
        head = cfg.MODEL.VFM_HEAD
        return cls(
            in_channels=in_channels,
            num_features=num_features,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            hidden_dim=head.HIDDEN_DIM,
            num_layers=head.REFINE_LAYERS,
            num_heads=head.REFINE_HEADS,
            dropout=head.REFINE_DROPOUT,
            mask_ratio=head.MASK_RATIO if masked else 0.0,
        )

    def _mask_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Replace ``mask_ratio`` of each sample's tokens (B, N, C) by the mask token."""
        b, n, _ = tokens.shape
        num_masked = int(round(self.mask_ratio * n))
        if num_masked == 0:
            return tokens
        order = torch.rand(b, n, device=tokens.device).argsort(dim=1)
        masked = torch.zeros(b, n, dtype=torch.bool, device=tokens.device)
        masked.scatter_(1, order[:, :num_masked], True)
        return torch.where(masked[..., None], self.mask_token.to(tokens.dtype), tokens)

    def forward(
        self, features: Sequence[torch.Tensor], coarse_logits: torch.Tensor
    ) -> torch.Tensor:
        """Refine a region.

        Args:
            features: N maps (B, C, h, w) of the region at stride 16.
            coarse_logits: (B, K, H', W') coarse class logits of the same region, any size
                (resized to the stride-4 grid (4h, 4w)); treated as constants (detached).

        Returns:
            (B, K, 4h, 4w) refined logits.
        """
        x = self.token_proj(torch.cat(list(features), dim=1))
        b, c, h, w = x.shape
        coarse = F.interpolate(
            coarse_logits.detach().to(x.dtype),
            size=(4 * h, 4 * w),
            mode="bilinear",
            align_corners=False,
        )
        context = self.logit_embed(coarse)
        pos = self.pos_embed(x).flatten(2).transpose(1, 2)
        context_pos = self.pos_embed(context).flatten(2).transpose(1, 2)
        tokens = x.flatten(2).transpose(1, 2)
        if self.training and self.mask_ratio > 0:
            tokens = self._mask_tokens(tokens)
        context = context.flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens, context, pos, context_pos)
        x = self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)
        return self.classifier(self.upsample(x))
