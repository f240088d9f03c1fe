"""Masked-attention transformer decoders (Mask2Former) of the original CLOUDS.

Queries cross-attend to one scale of the pixel decoder per layer (cycling coarse to fine), with
attention restricted to the foreground of the previous layer's mask prediction, then
self-attend and pass an FFN; every layer's queries predict masks and class logits. Two class
heads, chosen by MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME as in the original:

- :class:`OriginalMultiScaleMaskedTransformerDecoder`: Mask2Former's linear classifier
  ``Linear(hidden, K + 1)`` (the released configs' choice);
- :class:`MultiScaleMaskedTransformerDecoder`: the text classifier; each query's decoder output
  plus a projection of the mask features pooled inside its mask goes through an MLP into CLIP's
  joint space and is compared (cosine, learned logit scale) with the text embeddings of every
  class synonym and the void embedding; a class scores the maximum over its synonyms.

Module names follow the original's checkpoints (``transformer_cross_attention_layers``, ...).
"""

from __future__ import annotations

import abc
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
    "MaskedTransformerDecoderBase",
    "MultiScaleMaskedTransformerDecoder",
    "OriginalMultiScaleMaskedTransformerDecoder",
    "SelfAttentionLayer",
    "c2_xavier_fill",
    "grouped_classification_logits",
    "mask_pool",
    "masked_attention_mask",
]


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


def c2_xavier_fill(module: nn.Conv2d | nn.Linear) -> None:
    """Caffe2's "XavierFill" as detectron2 applies it: kaiming-uniform weight with a=1, zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def mask_pool(features: Tensor, mask_logits: Tensor) -> Tensor:
    """Mean of ``features`` inside each mask binarised at logit 0.

    Args:
        features: (B, C, h, w) feature map.
        mask_logits: (B, Q, H, W) mask logits, resized (bilinear) to (h, w) when H, W differ.

    Returns:
        (B, Q, C) mean feature over each mask's pixels (zero for an empty mask). The masks carry
        no gradient.
    """
    if mask_logits.shape[-2:] != features.shape[-2:]:
        mask_logits = F.interpolate(
            mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False
        )
    with torch.no_grad():
        masks = (mask_logits.detach() > 0).to(features.dtype)
        masks = masks / (masks.sum(dim=(-2, -1), keepdim=True) + 1e-8)
    return torch.einsum("bchw,bqhw->bqc", features, masks)


def grouped_classification_logits(
    embeddings: Tensor, classifier: Tensor, scale: Tensor, group_sizes: Sequence[int]
) -> Tensor:
    """Scaled cosine logits against class synonyms, max over each class's synonyms, plus void.

    Args:
        embeddings: (B, Q, E) query embeddings (normalised here).
        classifier: (S + 1, E) L2-normalised rows: the synonyms of every class in order
            (S = sum(group_sizes)), then void.
        scale: scalar multiplier of the cosines (exp of a logit scale, clamped to 100).
        group_sizes: number of synonyms of each of the K classes.

    Returns:
        (B, Q, K + 1) logits, last = void.
    """
    if sum(group_sizes) + 1 != classifier.shape[0]:
        raise ValueError(
            f"classifier has {classifier.shape[0]} rows, expected sum(group_sizes) + 1 = "
            f"{sum(group_sizes) + 1} (synonyms of every class, then void)"
        )
    logits = scale * F.normalize(embeddings, dim=-1) @ classifier.to(embeddings.dtype).T
    per_class = [g.max(dim=-1).values for g in logits[..., :-1].split(list(group_sizes), dim=-1)]
    return torch.stack([*per_class, logits[..., -1]], dim=-1)


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


class MaskedTransformerDecoderBase(nn.Module, abc.ABC):
    """Mask2Former's masked-attention decoder; subclasses add the class head.

    ``dec_layers`` is the number of attention layers (one prediction after each, plus one from
    the learned queries before the first layer).
    """

    uses_text_classifier: bool = False
    num_classes: int | None = None  # K of a linear class head; None: the text classifier's list

    def __init__(
        self,
        *,
        in_channels: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
        dropout: float = 0.0,
        num_feature_levels: int = 3,
    ) -> None:
        super().__init__()
        if dec_layers < 1:
            raise ValueError(f"the decoder needs at least one layer, got dec_layers={dec_layers}")
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_feature_levels = num_feature_levels
        self.pe_layer = PositionEmbeddingSine(num_pos_feats=hidden_dim // 2, normalize=True)
        norm_args = {"d_model": hidden_dim, "dropout": dropout, "normalize_before": pre_norm}
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(nhead=nheads, **norm_args) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(nhead=nheads, **norm_args) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(dim_feedforward=dim_feedforward, **norm_args) for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                c2_xavier_fill(proj)
                self.input_proj.append(proj)
            else:
                self.input_proj.append(nn.Identity())
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def decoder_kwargs(cls, cfg: CfgNode, in_channels: int) -> dict[str, object]:
        """Keyword arguments shared by both class heads, from MODEL.MASK_FORMER."""
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 2:
            raise ValueError(
                f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 2 (layers = DEC_LAYERS - 1), "
                f"got {mf.DEC_LAYERS}"
            )
        return {
            "in_channels": in_channels,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            "dropout": mf.DROPOUT,
            "dec_layers": mf.DEC_LAYERS - 1,
            "pre_norm": mf.PRE_NORM,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
        }

    def forward(
        self,
        x: Sequence[Tensor],
        mask_features: Tensor,
        text_classifier: Tensor | None = None,
        num_templates: Sequence[int] | None = None,
    ) -> dict[str, Tensor | list[dict[str, Tensor]]]:
        """Predict masks and class logits for every query.

        Args:
            x: ``num_feature_levels`` maps (B, in_channels, H_l, W_l), coarse to fine.
            mask_features: (B, mask_dim, H/4, W/4) per-pixel embeddings.
            text_classifier: (S + 1, E) class-synonym embeddings then void (text head only).
            num_templates: synonyms per class, summing to S (text head only).

        Returns:
            "pred_logits" (B, Q, K+1) (last = void), "pred_masks" (B, Q, H/4, W/4) mask logits,
            "aux_outputs": ``num_layers`` dicts of the same keys for the earlier predictions.
        """
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature maps, got {len(x)}")
        sizes = [tuple(f.shape[-2:]) for f in x]
        srcs, poss = [], []
        for i, feat in enumerate(x):
            poss.append(self.pe_layer(feat).flatten(2).transpose(1, 2))
            src = self.input_proj[i](feat).flatten(2).transpose(1, 2)
            srcs.append(src + self.level_embed.weight[i].to(src.dtype))
        b = mask_features.shape[0]
        query_pos = self.query_embed.weight[None].expand(b, -1, -1)
        output = self.query_feat.weight[None].expand(b, -1, -1)

        head_args = (mask_features, text_classifier, num_templates)
        pred, attn_mask = self._predict(output, *head_args, sizes[0])
        predictions = [pred]
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            output = self.transformer_cross_attention_layers[i](
                output, srcs[level], attn_mask, pos=poss[level], query_pos=query_pos
            )
            output = self.transformer_self_attention_layers[i](output, query_pos=query_pos)
            output = self.transformer_ffn_layers[i](output)
            next_size = sizes[(i + 1) % self.num_feature_levels]
            pred, attn_mask = self._predict(output, *head_args, next_size)
            predictions.append(pred)
        return {**predictions[-1], "aux_outputs": predictions[:-1]}

    def _predict(
        self,
        output: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor | None,
        num_templates: Sequence[int] | None,
        attn_size: tuple[int, int],
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Heads on the queries (B, Q, C): predictions and the next layer's attention mask
        (B*heads, Q, h*w) bool, True where the predicted mask is background."""
        decoded = self.decoder_norm(output)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        logits = self.classify(decoded, masks, mask_features, text_classifier, num_templates)
        attn_mask = masked_attention_mask(masks, attn_size, self.num_heads)
        return {"pred_logits": logits, "pred_masks": masks}, attn_mask

    @abc.abstractmethod
    def classify(
        self,
        decoded: Tensor,
        masks: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor | None,
        num_templates: Sequence[int] | None,
    ) -> Tensor:
        """Class logits (B, Q, K + 1) of the normalised queries ``decoded`` (B, Q, C)."""


@TRANSFORMER_DECODER_REGISTRY.register()
class OriginalMultiScaleMaskedTransformerDecoder(MaskedTransformerDecoderBase):
    """Mask2Former's decoder with a linear classifier over K training classes + void."""

    def __init__(self, *, num_classes: int, **kwargs: object) -> None:
        """``num_classes`` K; the other arguments as :class:`MaskedTransformerDecoderBase`."""
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.class_embed = nn.Linear(self.decoder_norm.normalized_shape[0], num_classes + 1)

    @classmethod
    def from_config(
        cls, cfg: CfgNode, in_channels: int
    ) -> OriginalMultiScaleMaskedTransformerDecoder:
        return cls(
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            **cls.decoder_kwargs(cfg, in_channels),
        )

    def classify(
        self,
        decoded: Tensor,
        masks: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor | None,
        num_templates: Sequence[int] | None,
    ) -> Tensor:
        return self.class_embed(decoded)


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(MaskedTransformerDecoderBase):
    """The original CLOUDS text-classifier decoder: open-vocabulary class logits."""

    uses_text_classifier = True

    def __init__(self, *, embed_dim: int, **kwargs: object) -> None:
        """``embed_dim`` E of CLIP's joint space; the rest as :class:`MaskedTransformerDecoderBase`."""
        super().__init__(**kwargs)
        hidden_dim = self.decoder_norm.normalized_shape[0]
        self._mask_pooling_proj = nn.Sequential(
            nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim)
        )
        self.class_embed = MLP(hidden_dim, hidden_dim, embed_dim, 3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int) -> MultiScaleMaskedTransformerDecoder:
        return cls(embed_dim=cfg.MODEL.CLOUDS.EMBED_DIM, **cls.decoder_kwargs(cfg, in_channels))

    def classify(
        self,
        decoded: Tensor,
        masks: Tensor,
        mask_features: Tensor,
        text_classifier: Tensor | None,
        num_templates: Sequence[int] | None,
    ) -> Tensor:
        if text_classifier is None or num_templates is None:
            raise ValueError(
                "MultiScaleMaskedTransformerDecoder classifies with text: pass text_classifier "
                "(S + 1, E) and num_templates (synonyms per class)"
            )
        pooled = self._mask_pooling_proj(mask_pool(mask_features, masks))
        embeddings = self.class_embed(pooled + decoded)
        scale = torch.clamp(self.logit_scale.exp(), max=100)
        return grouped_classification_logits(embeddings, text_classifier, scale, num_templates)
