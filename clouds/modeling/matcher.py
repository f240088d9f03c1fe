"""Hungarian matching of predicted masks to ground-truth masks (scipy linear_sum_assignment)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from clouds.config import CfgNode
from clouds.modeling.point_sampling import point_sample

__all__ = ["HungarianMatcher", "batch_dice_cost", "batch_sigmoid_ce_cost"]


def batch_dice_cost(inputs: Tensor, targets: Tensor) -> Tensor:
    """Dice loss of every prediction against every target.

    Args:
        inputs: (Q, P) mask logits at P points.
        targets: (N, P) binary target values at the same points.

    Returns:
        (Q, N) costs 1 - (2 |p t| + 1) / (|p| + |t| + 1), p = sigmoid(inputs).
    """
    probs = inputs.sigmoid()
    numerator = 2 * probs @ targets.t()
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_ce_cost(inputs: Tensor, targets: Tensor) -> Tensor:
    """Mean sigmoid binary cross-entropy of every prediction against every target.

    Args:
        inputs: (Q, P) mask logits at P points.
        targets: (N, P) binary target values at the same points.

    Returns:
        (Q, N) costs.
    """
    num_points = inputs.shape[1]
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    return (pos @ targets.t() + neg @ (1 - targets).t()) / num_points


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to targets minimising a weighted sum of costs:
    class (-probability of the target class), sigmoid BCE and dice on sampled points."""

    def __init__(
        self, *, cost_class: float, cost_mask: float, cost_dice: float, num_points: int
    ) -> None:
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("at least one matching cost must be non-zero")
        if num_points <= 0:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @classmethod
    def from_config(cls, cfg: CfgNode) -> HungarianMatcher:
        mf = cfg.MODEL.MASK_FORMER
        return cls(
            cost_class=mf.CLASS_WEIGHT,
            cost_mask=mf.MASK_WEIGHT,
            cost_dice=mf.DICE_WEIGHT,
            num_points=mf.TRAIN_NUM_POINTS,
        )

    def cost_matrix(
        self, logits: Tensor, masks: Tensor, labels: Tensor, target_masks: Tensor, points: Tensor
    ) -> Tensor:
        """Matching costs of one image.

        Args:
            logits: (Q, K+1) class logits.
            masks: (Q, h, w) mask logits.
            labels: (N,) target classes in [0, K).
            target_masks: (N, H, W) binary target masks.
            points: (P, 2) points (x, y) in [0, 1], shared by predictions and targets.

        Returns:
            (Q, N) float32 costs.
        """
        probs = logits.float().softmax(-1)
        cost_class = -probs[:, labels]
        pts = points.float()
        pred = point_sample(masks.float()[:, None], pts[None].expand(masks.shape[0], -1, -1))[:, 0]
        tgt = point_sample(
            target_masks.float()[:, None], pts[None].expand(target_masks.shape[0], -1, -1)
        )[:, 0]
        return (
            self.cost_class * cost_class
            + self.cost_mask * batch_sigmoid_ce_cost(pred, tgt)
            + self.cost_dice * batch_dice_cost(pred, tgt)
        )

    @torch.no_grad()
    def forward(
        self,
        outputs: dict[str, Tensor],
        targets: list[dict[str, Tensor]],
        point_coords: Tensor | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """Match each image's queries to its targets.

        Args:
            outputs: "pred_logits" (B, Q, K+1), "pred_masks" (B, Q, h, w).
            targets: B dicts with "labels" (N_b,) int64 and "masks" (N_b, H, W) bool.
            point_coords: (B, P, 2) points (x, y) in [0, 1]; default ``num_points`` uniform
                random points per image, drawn as the original: one ``torch.rand(1, P, 2)`` per
                image, in the loop over the batch (on CUDA one (B, P, 2) draw gives other
                numbers than B draws of (1, P, 2), so batching them would break seed parity).

        Returns:
            B pairs (query indices, target indices), int64 tensors of length min(Q, N_b).
        """
        logits, masks = outputs["pred_logits"], outputs["pred_masks"]
        num_classes = logits.shape[-1] - 1
        if len(targets) != logits.shape[0]:
            raise ValueError(f"{logits.shape[0]} predictions but {len(targets)} targets")
        indices = []
        with torch.autocast(device_type=masks.device.type, enabled=False):
            for b, target in enumerate(targets):
                labels = target["labels"]
                if labels.numel() and int(labels.max()) >= num_classes:
                    raise ValueError(
                        f"target label {int(labels.max())} is out of range for "
                        f"{num_classes} classes"
                    )
                points = (
                    torch.rand(1, self.num_points, 2, device=masks.device)[0]
                    if point_coords is None
                    else point_coords[b]
                )
                cost = self.cost_matrix(logits[b], masks[b], labels, target["masks"], points)
                if not torch.isfinite(cost).all():
                    raise FloatingPointError(f"non-finite matching cost for image {b} of the batch")
                rows, cols = linear_sum_assignment(cost.cpu().numpy())
                indices.append(
                    (
                        torch.as_tensor(rows.astype(np.int64)),
                        torch.as_tensor(cols.astype(np.int64)),
                    )
                )
        return indices
