"""Set-prediction losses of the mask-classification head (Mask2Former style).

Queries are matched to targets per decoder layer; matched queries get cross-entropy towards
their target class and BCE + dice on importance-sampled points towards their target mask,
unmatched queries get the void class (down-weighted by ``eos_coef``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clouds.config import CfgNode
from clouds.modeling.matcher import HungarianMatcher
from clouds.modeling.point_sampling import get_uncertain_point_coords_with_randomness, point_sample
from clouds.utils import comm

__all__ = ["SetCriterion", "dice_loss", "sigmoid_ce_loss", "weighted_losses"]


def dice_loss(inputs: Tensor, targets: Tensor, num_masks: float | Tensor) -> Tensor:
    """Sum over masks of 1 - (2 |p t| + 1) / (|p| + |t| + 1), divided by ``num_masks``.

    inputs: (M, P) mask logits; targets: (M, P) binary values at the same points.
    """
    probs = inputs.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def sigmoid_ce_loss(inputs: Tensor, targets: Tensor, num_masks: float | Tensor) -> Tensor:
    """Sum over masks of the mean point-wise sigmoid BCE, divided by ``num_masks``.

    inputs: (M, P) mask logits; targets: (M, P) binary values at the same points.
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return loss.mean(1).sum() / num_masks


class SetCriterion(nn.Module):
    """Matched classification and mask losses on the final and (optionally) every earlier
    decoder layer. Returns unweighted losses; ``weight_dict`` holds each key's weight."""

    def __init__(
        self,
        *,
        matcher: HungarianMatcher,
        weight_dict: dict[str, float],
        eos_coef: float,
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        deep_supervision: bool,
        num_classes: int | None = None,
    ) -> None:
        """``num_classes`` K (when known) fixes the class-weight buffer ``empty_weight`` (K + 1,):
        ones, ``eos_coef`` for void (the original's checkpoint key ``criterion.empty_weight``).
        Without it, or for logits of another K, the weights are built per call."""
        super().__init__()
        if num_classes is not None:
            empty_weight = torch.ones(num_classes + 1)
            empty_weight[-1] = eos_coef
            self.register_buffer("empty_weight", empty_weight)
        self.matcher = matcher
        self.weight_dict = weight_dict
        self.eos_coef = eos_coef
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SetCriterion:
        mf = cfg.MODEL.MASK_FORMER
        scale = cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT
        base = {
            "loss_ce": mf.CLASS_WEIGHT * scale,
            "loss_mask": mf.MASK_WEIGHT * scale,
            "loss_dice": mf.DICE_WEIGHT * scale,
        }
        weight_dict = dict(base)
        if mf.DEEP_SUPERVISION:
            # DEC_LAYERS - 1 decoder layers give DEC_LAYERS - 1 earlier predictions.
            for i in range(mf.DEC_LAYERS - 1):
                weight_dict.update({f"{k}_{i}": v for k, v in base.items()})
        return cls(
            matcher=HungarianMatcher.from_config(cfg),
            weight_dict=weight_dict,
            eos_coef=mf.NO_OBJECT_WEIGHT,
            num_points=mf.TRAIN_NUM_POINTS,
            oversample_ratio=mf.OVERSAMPLE_RATIO,
            importance_sample_ratio=mf.IMPORTANCE_SAMPLE_RATIO,
            deep_supervision=mf.DEEP_SUPERVISION,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        )

    def loss_labels(
        self, logits: Tensor, targets: list[dict[str, Tensor]], indices: list[tuple[Tensor, Tensor]]
    ) -> Tensor:
        """Cross-entropy of logits (B, Q, K+1); unmatched queries target void (index K)."""
        num_classes = logits.shape[-1] - 1
        target_classes = torch.full(
            logits.shape[:2], num_classes, dtype=torch.int64, device=logits.device
        )
        batch_idx, query_idx = _flat_query_indices(indices)
        matched = [t["labels"][j] for t, (_, j) in zip(targets, indices)]
        target_classes[batch_idx, query_idx] = torch.cat(matched).to(logits.device)
        weight = getattr(self, "empty_weight", None)
        if weight is None or weight.numel() != num_classes + 1:
            weight = torch.ones(num_classes + 1, device=logits.device)
            weight[-1] = self.eos_coef
        return F.cross_entropy(logits.float().transpose(1, 2), target_classes, weight)

    def loss_masks(
        self,
        masks: Tensor,
        targets: list[dict[str, Tensor]],
        indices: list[tuple[Tensor, Tensor]],
        num_masks: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """BCE and dice of matched mask logits (B, Q, h, w) on importance-sampled points."""
        batch_idx, query_idx = _flat_query_indices(indices)
        src = masks[batch_idx, query_idx].float()[:, None]  # (M, 1, h, w)
        if src.shape[0] == 0:
            zero = masks.sum() * 0.0
            return zero, zero
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                src, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )
            # Targets of each image at its masks' points (images may differ in size).
            tgt_chunks, start = [], 0
            for target, (_, j) in zip(targets, indices):
                tgt = target["masks"][j.to(target["masks"].device)].to(src)[:, None]
                tgt_chunks.append(point_sample(tgt, points[start : start + len(j)])[:, 0])
                start += len(j)
            point_targets = torch.cat(tgt_chunks)
        point_logits = point_sample(src, points)[:, 0]
        return (
            sigmoid_ce_loss(point_logits, point_targets, num_masks),
            dice_loss(point_logits, point_targets, num_masks),
        )

    def _layer_losses(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], num_masks: Tensor
    ) -> dict[str, Tensor]:
        indices = self.matcher(outputs, targets)
        loss_mask, loss_dice = self.loss_masks(outputs["pred_masks"], targets, indices, num_masks)
        return {
            "loss_ce": self.loss_labels(outputs["pred_logits"], targets, indices),
            "loss_mask": loss_mask,
            "loss_dice": loss_dice,
        }

    def forward(
        self, outputs: dict[str, Tensor | list[dict[str, Tensor]]], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Unweighted losses.

        Args:
            outputs: "pred_logits" (B, Q, K+1), "pred_masks" (B, Q, h, w), optional
                "aux_outputs" (list of such dicts).
            targets: B dicts with "labels" (N_b,) int64 in [0, K) and "masks" (N_b, H, W) bool.

        Returns:
            "loss_ce", "loss_mask", "loss_dice", and "<key>_<i>" for the i-th earlier layer when
            deep supervision is on.
        """
        num_masks = self._num_masks(targets, outputs["pred_masks"].device)
        losses = self._layer_losses(outputs, targets, num_masks)
        if self.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                layer = self._layer_losses(aux, targets, num_masks)
                losses.update({f"{k}_{i}": v for k, v in layer.items()})
        return losses

    @staticmethod
    def _num_masks(targets: list[dict[str, Tensor]], device: torch.device) -> Tensor:
        """Average number of target masks per process (at least 1), for normalisation."""
        num = torch.tensor(
            float(sum(len(t["labels"]) for t in targets)), dtype=torch.float32, device=device
        )
        num = comm.all_reduce(num) / comm.get_world_size()
        return num.clamp(min=1.0)


def _flat_query_indices(indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """(image index, query index) of every matched query, concatenated over the batch."""
    batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])
    query_idx = torch.cat([q for q, _ in indices])
    return batch_idx, query_idx


def weighted_losses(
    criterion: nn.Module, outputs: Mapping[str, Any], targets: Sequence[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """The criterion's losses times its ``weight_dict``; losses without a weight are dropped."""
    losses = criterion(outputs, targets)
    weights = criterion.weight_dict
    return {name: loss * weights[name] for name, loss in losses.items() if name in weights}
