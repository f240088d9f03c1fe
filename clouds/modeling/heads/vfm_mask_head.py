"""The CLOUDS mask-classification head on VFM features (MODEL.VFM_HEAD.TYPE "mask_former").

VFM maps -> :class:`SimpleFeaturePyramid` (res2..res5) -> the CLOUDS ``MaskFormerHead`` (pixel
decoder + masked-attention decoder). A VFM has no text encoder, so the classes are learned,
L2-normalised embeddings (K + 1, E, the last for void) in place of CLIP text embeddings.
Trained with the CLOUDS set criterion (Hungarian matching, CE + mask BCE + dice); its
per-class scores (queries' class probabilities times mask probabilities) are returned as
log-scores so that they combine with the whole / slide inference strategies like logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.backbone.vfm.pyramid import SimpleFeaturePyramid
from clouds.modeling.criterion import SetCriterion, weighted_losses
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.heads.mask_former_head import MaskFormerHead
from clouds.modeling.heads.vfmnet import check_features, select_features
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.targets import semantic_targets

__all__ = ["VFMMaskHead"]


class VFMMaskHead(DecodeHead):
    """Mask classification on VFM features: maps -> class log-scores (B, K, 4h, 4w)."""

    size_divisibility_factor = 2  # the feature pyramid has a stride-32 level
    has_own_losses = True

    def __init__(
        self,
        *,
        pyramid: SimpleFeaturePyramid,
        mask_former: MaskFormerHead,
        criterion: SetCriterion,
        in_features: Sequence[str],
        num_classes: int,
        embed_dim: int,
        ignore_label: int = 255,
    ) -> None:
        super().__init__()
        self.pyramid = pyramid
        self.mask_former = mask_former
        self.criterion = criterion
        # One learned embedding per class plus a last one for void (the text decoder's layout).
        self.class_embed = nn.Parameter(torch.randn(num_classes + 1, embed_dim) / embed_dim**0.5)
        self.in_features = list(in_features)
        self.num_classes = num_classes
        self.ignore_label = ignore_label

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> VFMMaskHead:
        in_channels, names = check_features(input_shape)
        pyramid = SimpleFeaturePyramid(
            in_channels=in_channels, out_channels=cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM
        )
        return cls(
            pyramid=pyramid,
            mask_former=MaskFormerHead.from_config(cfg, pyramid.output_shape()),
            criterion=SetCriterion.from_config(cfg),
            in_features=names,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            embed_dim=cfg.MODEL.CLOUDS.EMBED_DIM,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        )

    def predict(self, features: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """MaskFormerHead outputs ("pred_logits" (B, Q, K+1), "pred_masks" (B, Q, 4h, 4w), ...)."""
        classes = F.normalize(self.class_embed, dim=-1)
        maps = select_features(features, self.in_features)
        return self.mask_former(self.pyramid(maps), classes, [1] * self.num_classes)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named maps (B, C, h, w) -> per-class log-scores (B, K, 4h, 4w)."""
        outputs = self.predict(features)
        probs = outputs["pred_logits"].float().softmax(dim=-1)[..., :-1]
        scores = torch.einsum("bqk,bqhw->bkhw", probs, outputs["pred_masks"].float().sigmoid())
        return scores.clamp(min=1e-8).log()

    def losses(
        self, features: Mapping[str, torch.Tensor], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted set-criterion losses for labels (B, H, W) (``ignore_label`` where unknown)."""
        outputs = self.predict(features)
        targets = [
            semantic_targets(label, num_classes=self.num_classes, ignore_label=self.ignore_label)
            for label in labels
        ]
        return weighted_losses(self.criterion, outputs, targets)
