"""Masked-attention transformer decoder (Mask2Former) with open-vocabulary class logits.

Queries cross-attend to one scale of the pixel decoder per layer (cycling coarse to fine), with
attention restricted to the foreground of the previous layer's mask prediction, then
self-attend and pass an FFN. Class logits are scaled cosine similarities between projected
query embeddings and the text classifier (plus a learned void embedding), so the class set
can change between datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clouds.config import CfgNode
from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = [
    "MLP",
    "CrossAttentionLayer",
    "FFNLayer",
    "MultiScaleMaskedTransformerDecoder",
    "SelfAttentionLayer",
    "masked_attention_mask",
]


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


def _xavier_matrices(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


@torch.no_grad()
def masked_attention_mask(mask_logits: Tensor, size: tuple[int, int], num_heads: int) -> Tensor:
    """Attention mask of masked attention from predicted mask logits.

    Args:
        mask_logits: (B, Q, h, w) mask logits.
        size: (H, W) of the feature map the queries will attend to.
        num_heads: attention heads.

    Returns:
        (B*num_heads, Q, H*W) bool, True where the resized mask's probability is below 0.5
        (not attended); a query whose row would be all True attends everywhere instead.
    """
    small = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
    blocked = small.sigmoid().flatten(2) < 0.5
    blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
    return blocked.repeat_interleave(num_heads, dim=0)


class SelfAttentionLayer(nn.Module):
    """Query self-attention with residual and LayerNorm (post- or pre-norm)."""

    def __init__(self, *, d_model: int, nhead: int, dropout: float, normalize_before: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(self, tgt: Tensor, query_pos: Tensor) -> Tensor:
        """tgt, query_pos (B, Q, C) -> (B, Q, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        q = k = _with_pos(x, query_pos)
        out = tgt + self.dropout(self.self_attn(q, k, value=x, need_weights=False)[0])
        return out if self.normalize_before else self.norm(out)


class CrossAttentionLayer(nn.Module):
    """Queries attend to image tokens under an attention mask, residual and LayerNorm."""

    def __init__(self, *, d_model: int, nhead: int, dropout: float, normalize_before: bool) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(
            d_model, nhead, dropout=dropout, batch_first=True
        )
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(
        self, tgt: Tensor, memory: Tensor, attn_mask: Tensor, pos: Tensor, query_pos: Tensor
    ) -> Tensor:
        """tgt, query_pos (B, Q, C); memory, pos (B, HW, C); attn_mask (B*heads, Q, HW) bool,
        True = not attended. Returns (B, Q, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        attended = self.multihead_attn(
            query=_with_pos(x, query_pos),
            key=_with_pos(memory, pos),
            value=memory,
            attn_mask=attn_mask,
            need_weights=False,
        )[0]
        out = tgt + self.dropout(attended)
        return out if self.normalize_before else self.norm(out)


class FFNLayer(nn.Module):
    """Two-layer ReLU feed-forward block with residual and LayerNorm."""

    def __init__(
        self, *, d_model: int, dim_feedforward: int, dropout: float, normalize_before: bool
    ) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier_matrices(self)

    def forward(self, tgt: Tensor) -> Tensor:
        """tgt (B, Q, C) -> (B, Q, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        out = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x)))))
        return out if self.normalize_before else self.norm(out)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        """x (..., input_dim) -> (..., output_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Mask2Former decoder whose classifier is a cosine similarity to text embeddings."""

    def __init__(
        self,
        *,
        in_channels: int,
        mask_classification: bool,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dropout: float,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
        embed_dim: int,
        num_feature_levels: int = 3,
    ) -> None:
        """``dec_layers`` is the number of attention layers (one prediction after each, plus
        one from the learned queries before the first layer); ``embed_dim`` is the width E of
        the text classifier."""
        super().__init__()
        if dec_layers < 1:
            raise ValueError(f"the decoder needs at least one layer, got dec_layers={dec_layers}")
        self.mask_classification = mask_classification
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_feature_levels = num_feature_levels
        self.pe_layer = PositionEmbeddingSine(num_pos_feats=hidden_dim // 2, normalize=True)
        self.cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(
                d_model=hidden_dim, nhead=nheads, dropout=dropout, normalize_before=pre_norm
            )
            for _ in range(dec_layers)
        )
        self.self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(
                d_model=hidden_dim, nhead=nheads, dropout=dropout, normalize_before=pre_norm
            )
            for _ in range(dec_layers)
        )
        self.ffn_layers = nn.ModuleList(
            FFNLayer(
                d_model=hidden_dim,
                dim_feedforward=dim_feedforward,
                dropout=dropout,
                normalize_before=pre_norm,
            )
            for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                nn.init.xavier_uniform_(proj.weight)
                nn.init.zeros_(proj.bias)
                self.input_proj.append(proj)
            else:
                self.input_proj.append(nn.Identity())
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        if mask_classification:
            self.class_proj = MLP(hidden_dim, hidden_dim, embed_dim, 3)
            self.void_embedding = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim))
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_config(
        cls, cfg: CfgNode, in_channels: int, mask_classification: bool = True
    ) -> MultiScaleMaskedTransformerDecoder:
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 2:
            raise ValueError(
                f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 2 (layers = DEC_LAYERS - 1), "
                f"got {mf.DEC_LAYERS}"
            )
        return cls(
            in_channels=in_channels,
            mask_classification=mask_classification,
            hidden_dim=mf.HIDDEN_DIM,
            num_queries=mf.NUM_OBJECT_QUERIES,
            nheads=mf.NHEADS,
            dim_feedforward=mf.DIM_FEEDFORWARD,
            dropout=mf.DROPOUT,
            dec_layers=mf.DEC_LAYERS - 1,
            pre_norm=mf.PRE_NORM,
            mask_dim=cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
            enforce_input_project=mf.ENFORCE_INPUT_PROJ,
            embed_dim=cfg.MODEL.CLOUDS.EMBED_DIM,
        )

    def forward(
        self,
        x: Sequence[Tensor],
        mask_features: Tensor,
        text_classifier: Tensor | None = None,
    ) -> dict[str, Tensor | list[dict[str, Tensor]]]:
        """Predict masks (and class logits) for every query.

        Args:
            x: ``num_feature_levels`` maps (B, in_channels, H_l, W_l), coarse to fine.
            mask_features: (B, mask_dim, H/4, W/4) per-pixel embeddings.
            text_classifier: (K, E) L2-normalised class embeddings (needed when classifying).

        Returns:
            "pred_logits" (B, Q, K+1) (last = void; only when classifying), "pred_masks"
            (B, Q, H/4, W/4) mask logits, "aux_outputs": ``num_layers`` dicts of the same keys
            for the predictions before the last layer.
        """
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature maps, got {len(x)}")
        if self.mask_classification and text_classifier is None:
            raise ValueError("the decoder classifies masks: pass a text_classifier (K, E)")
        sizes = [tuple(f.shape[-2:]) for f in x]
        srcs, poss = [], []
        for i, feat in enumerate(x):
            poss.append(self.pe_layer(feat).flatten(2).transpose(1, 2))
            src = self.input_proj[i](feat).flatten(2).transpose(1, 2)
            srcs.append(src + self.level_embed.weight[i].to(src.dtype))
        b = mask_features.shape[0]
        query_pos = self.query_embed.weight[None].expand(b, -1, -1)
        output = self.query_feat.weight[None].expand(b, -1, -1)

        predictions = []
        pred, attn_mask = self._predict(output, mask_features, text_classifier, sizes[0])
        predictions.append(pred)
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            output = self.cross_attention_layers[i](
                output, srcs[level], attn_mask, pos=poss[level], query_pos=query_pos
            )
            output = self.self_attention_layers[i](output, query_pos=query_pos)
            output = self.ffn_layers[i](output)
            next_size = sizes[(i + 1) % self.num_feature_levels]
            pred, attn_mask = self._predict(output, mask_features, text_classifier, next_size)
            predictions.append(pred)
        return {**predictions[-1], "aux_outputs": predictions[:-1]}

    def _predict(
        self,
        output: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor | None,
        attn_size: tuple[int, int],
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Heads on the queries (B, Q, C): predictions and the next layer's attention mask
        (B*heads, Q, h*w) bool, True where the predicted mask is background."""
        decoded = self.decoder_norm(output)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        pred = {"pred_masks": masks}
        if self.mask_classification:
            pred["pred_logits"] = self._classify(decoded, text_classifier)
        attn_mask = masked_attention_mask(masks, attn_size, self.num_heads)
        return pred, attn_mask

    def _classify(self, decoded: Tensor, text_classifier: Tensor) -> Tensor:
        """Scaled cosine similarities (B, Q, K+1) of the queries to [classes; void]."""
        embeds = F.normalize(self.class_proj(decoded), dim=-1)
        classifier = torch.cat([text_classifier.to(embeds), self.void_embedding[None]], dim=0)
        classifier = F.normalize(classifier, dim=-1)
        scale = self.logit_scale.exp().clamp(max=100.0)
        return scale * embeds @ classifier.t()
