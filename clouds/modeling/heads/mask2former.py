"""The mmdet-style Mask2Former head of the DGVFM repository's Rein and frozen-VFM systems
(MODEL.VFM_HEAD.TYPE "mask2former"; the original's mmseg ``Mask2FormerHead`` and its
``ReinMask2FormerHead``).

Four VFM maps (finest first; the backbone brings them to strides 4, 8, 16, 32 with
MODEL.VFM.RESIZE_FEATURES, else all stay at stride 16 as the original's plain SAM) -> the
deformable-attention pixel decoder (encoder on the last three maps, one FPN level on the first)
-> a masked-attention decoder of ``DEC_LAYERS - 1`` post-norm layers (cross-attention, self-
attention, FFN) whose queries predict class logits (K + 1, last = no object) and mask logits
before the first layer and after each one.

Queries: learned ``query_feat`` / ``query_embed`` embeddings, or, with Rein's token-to-query link
(MODEL.REIN.LINK_TOKEN_TO_QUERY), the backbone's linked queries as positional queries
(``query_embed``) and, with MODEL.VFM_HEAD.REPLACE_QUERY_FEAT, ``querys2feat(queries)`` as the
initial content queries.

Training: :class:`LayerOrderSetCriterion` (Hungarian matching and point-sampled mask losses of
:class:`SetCriterion`, the layers in mmdet's order). Inference as mmseg's ``predict``: the last
layer's mask logits resized to the output size, then softmax class scores without no-object
times sigmoid masks, summed over queries: per-class scores (B, K, H, W), not log-probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.criterion import SetCriterion
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.heads.vfmnet import select_features
from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn
from clouds.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.targets import semantic_targets
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MLP,
    CrossAttentionLayer,
    FFNLayer,
    SelfAttentionLayer,
    masked_attention_mask,
)
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = ["LayerOrderSetCriterion", "Mask2FormerDecoder", "Mask2FormerHead"]

# the pixel decoder's view of the four VFM maps: mmdet's ``strides=[4, 8, 16, 32]`` fix which map
# feeds which level whatever the maps' real sizes
_LEVELS = (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32))

Prediction = tuple[Tensor, Tensor]  # class logits (B, Q, K + 1), mask logits (B, Q, h, w)


class LayerOrderSetCriterion(SetCriterion):
    """:class:`SetCriterion` with mmdet's loss order and names: the prediction before the first
    decoder layer first (``d0.loss_cls``, ``d0.loss_mask``, ``d0.loss_dice``), then each later
    one, the last without prefix. The order is that of the random draws (each layer matches on
    ``torch.rand(1, P, 2)`` points per image, then samples its mask points), so one seed gives
    the original's points."""

    @classmethod
    def from_config(cls, cfg: CfgNode) -> LayerOrderSetCriterion:
        criterion = super().from_config(cfg)
        mf = cfg.MODEL.MASK_FORMER
        base = {
            "loss_cls": mf.CLASS_WEIGHT,
            "loss_mask": mf.MASK_WEIGHT,
            "loss_dice": mf.DICE_WEIGHT,
        }
        weights = dict(base)
        for i in range(mf.DEC_LAYERS - 1):
            weights.update({f"d{i}.{k}": v for k, v in base.items()})
        criterion.weight_dict = weights
        return criterion

    def forward(
        self, predictions: Sequence[Prediction], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Unweighted losses of every prediction (first to last decoder layer).

        Args:
            predictions: (class logits (B, Q, K + 1), mask logits (B, Q, h, w)) per layer.
            targets: B dicts with "labels" (N_b,) and "masks" (N_b, H, W) bool.
        """
        num_masks = self._num_masks(targets, predictions[-1][1].device)
        losses: dict[str, Tensor] = {}
        last = len(predictions) - 1
        for i, (logits, masks) in enumerate(predictions):
            layer = self._layer_losses(
                {"pred_logits": logits, "pred_masks": masks}, targets, num_masks
            )
            prefix = "" if i == last else f"d{i}."
            losses[f"{prefix}loss_cls"] = layer["loss_ce"]
            losses[f"{prefix}loss_mask"] = layer["loss_mask"]
            losses[f"{prefix}loss_dice"] = layer["loss_dice"]
        return losses


class Mask2FormerDecoderLayer(nn.Module):
    """mmdet's ``Mask2FormerTransformerDecoderLayer``: masked cross-attention, self-attention,
    FFN, each followed by its LayerNorm."""

    def __init__(self, *, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        norm_args = {"d_model": d_model, "dropout": dropout, "normalize_before": False}
        self.cross_attn = CrossAttentionLayer(nhead=nhead, **norm_args)
        self.self_attn = SelfAttentionLayer(nhead=nhead, **norm_args)
        self.ffn = FFNLayer(dim_feedforward=dim_feedforward, **norm_args)

    def forward(
        self, query: Tensor, memory: Tensor, attn_mask: Tensor, pos: Tensor, query_pos: Tensor
    ) -> Tensor:
        """query, query_pos (B, Q, C); memory, pos (B, HW, C); attn_mask (B*heads, Q, HW)."""
        query = self.cross_attn(query, memory, attn_mask, pos=pos, query_pos=query_pos)
        return self.ffn(self.self_attn(query, query_pos=query_pos))


class Mask2FormerDecoder(nn.Module):
    """Queries -> per-layer class and mask predictions over the pixel decoder's maps."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        num_queries: int,
        num_classes: int,
        nheads: int,
        dim_feedforward: int,
        num_layers: int,
        mask_dim: int,
        linked_queries: bool,
        replace_query_feat: bool,
        dropout: float = 0.0,
        num_feature_levels: int = 3,
    ) -> None:
        """
        Args:
            linked_queries: positional queries come from the backbone (Rein's link): no
                ``query_embed`` of its own.
            replace_query_feat: initial content queries ``querys2feat(linked queries)`` instead
                of the learned ``query_feat`` (needs ``linked_queries``).
        """
        super().__init__()
        if replace_query_feat and not linked_queries:
            raise ConfigError(
                "MODEL.VFM_HEAD.REPLACE_QUERY_FEAT needs Rein's linked queries "
                "(MODEL.REIN.ENABLED and MODEL.REIN.LINK_TOKEN_TO_QUERY)"
            )
        self.num_heads = nheads
        self.num_feature_levels = num_feature_levels
        self.pe_layer = PositionEmbeddingSine(num_pos_feats=hidden_dim // 2, normalize=True)
        self.layers = nn.ModuleList(
            Mask2FormerDecoderLayer(
                d_model=hidden_dim, nhead=nheads, dim_feedforward=dim_feedforward, dropout=dropout
            )
            for _ in range(num_layers)
        )
        self.post_norm = nn.LayerNorm(hidden_dim)
        # as mmdet's Mask2FormerHead.init_weights: xavier-normal decoder matrices
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.linked_queries = linked_queries
        self.replace_query_feat = replace_query_feat
        if not linked_queries:
            self.query_embed = nn.Embedding(num_queries, hidden_dim)
        if replace_query_feat:
            self.querys2feat = nn.Linear(hidden_dim, hidden_dim)
        else:
            self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.cls_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def initial_queries(self, batch_size: int, queries: Tensor | None) -> tuple[Tensor, Tensor]:
        """(content queries, positional queries), each (B, Q, C).

        Args:
            queries: Rein's linked queries (Q, C) or (B, Q, C); None without the link.
        """
        if self.linked_queries != (queries is not None):
            raise ValueError(
                "the Mask2Former head was built "
                + ("for" if self.linked_queries else "without")
                + " Rein's linked queries (MODEL.REIN.LINK_TOKEN_TO_QUERY) but was called "
                + ("without" if queries is None else "with")
                + " them"
            )
        if queries is None:
            query_pos = self.query_embed.weight[None].expand(batch_size, -1, -1)
        else:
            query_pos = queries.expand(batch_size, -1, -1) if queries.dim() == 2 else queries
        if self.replace_query_feat:
            return self.querys2feat(query_pos), query_pos
        return self.query_feat.weight[None].expand(batch_size, -1, -1), query_pos

    def predict(
        self, query: Tensor, mask_features: Tensor, attn_size: tuple[int, int]
    ) -> tuple[Prediction, Tensor]:
        """Class and mask logits of queries (B, Q, C), and the attention mask of the next layer
        (B*heads, Q, h*w) for maps of ``attn_size``."""
        decoded = self.post_norm(query)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        attn_mask = masked_attention_mask(masks, attn_size, self.num_heads)
        return (self.cls_embed(decoded), masks), attn_mask

    def forward(
        self, maps: Sequence[Tensor], mask_features: Tensor, queries: Tensor | None = None
    ) -> list[Prediction]:
        """Predictions before the first layer and after each one.

        Args:
            maps: ``num_feature_levels`` maps (B, C, h_l, w_l), coarse to fine.
            mask_features: (B, mask_dim, H/4, W/4) per-pixel embeddings.
            queries: Rein's linked queries (Q, C) or (B, Q, C), or None.
        """
        sizes = [tuple(m.shape[-2:]) for m in maps]
        memories = [
            m.flatten(2).transpose(1, 2) + self.level_embed.weight[i].to(m.dtype)
            for i, m in enumerate(maps)
        ]
        positions = [self.pe_layer(m).flatten(2).transpose(1, 2) for m in maps]
        query, query_pos = self.initial_queries(mask_features.shape[0], queries)
        prediction, attn_mask = self.predict(query, mask_features, sizes[0])
        predictions = [prediction]
        for i, layer in enumerate(self.layers):
            level = i % self.num_feature_levels
            query = layer(query, memories[level], attn_mask, positions[level], query_pos)
            next_size = sizes[(i + 1) % self.num_feature_levels]
            prediction, attn_mask = self.predict(query, mask_features, next_size)
            predictions.append(prediction)
        return predictions


def semantic_scores(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """mmseg's Mask2Former semantic inference: (B, Q, K + 1) class logits and (B, Q, H, W) mask
    logits -> (B, K, H, W) = sum over queries of softmax class scores (no-object dropped) times
    sigmoid masks."""
    probs = class_logits.float().softmax(dim=-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", probs, mask_logits.float().sigmoid())


def _init_encoder_like_mmdet(pixel_decoder: MSDeformAttnPixelDecoder) -> None:
    """mmdet's MSDeformAttnPixelDecoder.init_weights for the encoder: xavier-normal matrices,
    then the deformable attentions' own initialisation."""
    for p in pixel_decoder.transformer.encoder.parameters():
        if p.dim() > 1:
            nn.init.xavier_normal_(p)
    for m in pixel_decoder.transformer.modules():
        if isinstance(m, MSDeformAttn):
            m.reset_parameters()


@VFM_HEAD_REGISTRY.register()
class Mask2FormerHead(DecodeHead):
    """Four VFM maps -> mask classification -> per-class scores (module docstring)."""

    size_divisibility_factor = 2  # the coarsest map has stride 32
    has_own_losses = True
    takes_link_queries = True

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        pixel_decoder: MSDeformAttnPixelDecoder,
        decoder: Mask2FormerDecoder,
        criterion: LayerOrderSetCriterion,
        num_classes: int,
        ignore_label: int = 255,
    ) -> None:
        """
        Args:
            in_features: the backbone's four map names, finest first (res2 .. res5 of the
                pixel decoder).
        """
        super().__init__()
        if len(in_features) != len(_LEVELS):
            raise ConfigError(
                f"the Mask2Former head needs {len(_LEVELS)} backbone maps, got {list(in_features)}"
            )
        self.in_features = list(in_features)
        self.pixel_decoder = pixel_decoder
        self.transformer_decoder = decoder
        self.criterion = criterion
        self.num_classes = num_classes
        self.ignore_label = ignore_label

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Mapping[str, ShapeSpec]) -> Mask2FormerHead:
        channels = {s.channels for s in input_shape.values()}
        if len(channels) != 1:
            raise ConfigError(f"the Mask2Former head needs equal-width maps, got {input_shape}")
        width = channels.pop()
        head, mf, rein = cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.MASK_FORMER, cfg.MODEL.REIN
        if head.CONVS_DIM != mf.HIDDEN_DIM:
            raise ConfigError(
                f"MODEL.SEM_SEG_HEAD.CONVS_DIM {head.CONVS_DIM} must equal "
                f"MODEL.MASK_FORMER.HIDDEN_DIM {mf.HIDDEN_DIM} (no decoder input projection)"
            )
        linked = bool(rein.ENABLED and rein.LINK_TOKEN_TO_QUERY)
        if linked and rein.QUERY_DIMS != mf.HIDDEN_DIM:
            raise ConfigError(
                f"MODEL.REIN.QUERY_DIMS {rein.QUERY_DIMS} must equal MODEL.MASK_FORMER.HIDDEN_DIM "
                f"{mf.HIDDEN_DIM} (the linked queries are the head's queries)"
            )
        if mf.DEC_LAYERS < 2:
            raise ConfigError(
                f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 2 (layers = DEC_LAYERS - 1), "
                f"got {mf.DEC_LAYERS}"
            )
        levels = {name: ShapeSpec(channels=width, stride=stride) for name, stride in _LEVELS}
        pixel_decoder = MSDeformAttnPixelDecoder(
            input_shape=levels,
            transformer_in_features=[name for name, _ in _LEVELS[1:]],
            conv_dim=head.CONVS_DIM,
            mask_dim=head.MASK_DIM,
            norm="GN",
            transformer_dropout=head.DEFORMABLE_TRANSFORMER_ENCODER_DROPOUT,
            transformer_nheads=head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
            transformer_dim_feedforward=head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
            transformer_enc_layers=head.TRANSFORMER_ENC_LAYERS,
            transformer_n_points=head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            common_stride=4,
        )
        _init_encoder_like_mmdet(pixel_decoder)
        decoder = Mask2FormerDecoder(
            hidden_dim=mf.HIDDEN_DIM,
            num_queries=mf.NUM_OBJECT_QUERIES,
            num_classes=head.NUM_CLASSES,
            nheads=mf.NHEADS,
            dim_feedforward=mf.DIM_FEEDFORWARD,
            num_layers=mf.DEC_LAYERS - 1,
            mask_dim=head.MASK_DIM,
            linked_queries=linked,
            replace_query_feat=cfg.MODEL.VFM_HEAD.REPLACE_QUERY_FEAT,
            dropout=mf.DROPOUT,
        )
        return cls(
            in_features=list(input_shape),
            pixel_decoder=pixel_decoder,
            decoder=decoder,
            criterion=LayerOrderSetCriterion.from_config(cfg),
            num_classes=head.NUM_CLASSES,
            ignore_label=head.IGNORE_VALUE,
        )

    def predict(
        self, features: Mapping[str, Tensor], queries: Tensor | None = None
    ) -> list[Prediction]:
        """Named maps (B, C, h_l, w_l) (+ Rein's linked queries) -> every layer's
        (class logits (B, Q, K + 1), mask logits (B, Q, h_0, w_0)), h_0 x w_0 the finest map."""
        maps = dict(zip((n for n, _ in _LEVELS), select_features(features, self.in_features)))
        mask_features, _, multi_scale = self.pixel_decoder.forward_features(maps)
        return self.transformer_decoder(multi_scale, mask_features, queries)

    def forward(self, features: Mapping[str, Tensor], queries: Tensor | None = None) -> Tensor:
        """Per-class scores (B, K, h_0, w_0) at the mask resolution."""
        class_logits, mask_logits = self.predict(features, queries)[-1]
        return semantic_scores(class_logits, mask_logits)

    def logits_at(
        self, features: Mapping[str, Tensor], size: Sequence[int], queries: Tensor | None = None
    ) -> Tensor:
        """Per-class scores (B, K, *size): mask logits resized (bilinear) before the sigmoid, as
        mmseg's Mask2Former ``predict``."""
        class_logits, mask_logits = self.predict(features, queries)[-1]
        mask_logits = F.interpolate(
            mask_logits, size=tuple(size), mode="bilinear", align_corners=False
        )
        return semantic_scores(class_logits, mask_logits)

    def losses(
        self, features: Mapping[str, Tensor], labels: Tensor, queries: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Weighted losses of every layer for labels (B, H, W) (``ignore_label`` where unknown)."""
        targets = [
            semantic_targets(label, num_classes=self.num_classes, ignore_label=self.ignore_label)
            for label in labels
        ]
        losses = self.criterion(self.predict(features, queries), targets)
        weights = self.criterion.weight_dict
        return {name: loss * weights[name] for name, loss in losses.items()}
