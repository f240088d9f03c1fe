"""Sampling mask logits at continuous points, and choosing uncertain points to sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["get_uncertain_point_coords_with_randomness", "point_sample", "uncertainty"]


def point_sample(input: Tensor, point_coords: Tensor) -> Tensor:
    """Bilinear values of ``input`` at points (zero outside, ``align_corners=False``).

    Args:
        input: (N, C, H, W) maps.
        point_coords: (N, P, 2) points as (x, y) in [0, 1] over each map (0 and 1 are its outer
            edges, so (x + 0.5) / W hits the centre of pixel column x exactly).

    Returns:
        (N, C, P) sampled values.
    """
    grid = (2.0 * point_coords - 1.0).unsqueeze(2).to(input.dtype)
    return F.grid_sample(input, grid, mode="bilinear", align_corners=False).squeeze(3)


def uncertainty(logits: Tensor) -> Tensor:
    """Uncertainty of binary mask logits (N, 1, P) -> (N, 1, P): -|logit|, highest near 0."""
    return -logits.abs()


def get_uncertain_point_coords_with_randomness(
    coarse_logits: Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> Tensor:
    """Points biased towards uncertain regions (PointRend): of ``num_points * oversample_ratio``
    uniform candidates keep the ``importance_sample_ratio`` most uncertain share, fill the rest
    with fresh uniform points. The generator calls are the original's (detectron2's): one
    ``torch.rand(N, num_points * oversample_ratio, 2)``, then, when some points are left,
    ``torch.rand(N, num_random, 2)``; so one seed gives the same points on every device.

    Args:
        coarse_logits: (N, 1, H, W) mask logits.
        num_points: points per mask P.
        oversample_ratio: candidates per point (>= 1).
        importance_sample_ratio: share of P taken from the most uncertain candidates, in [0, 1].

    Returns:
        (N, P, 2) point coordinates (x, y) in [0, 1].
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
        )
    n = coarse_logits.shape[0]
    device = coarse_logits.device
    num_sampled = int(num_points * oversample_ratio)
    candidates = torch.rand(n, num_sampled, 2, device=device)
    scores = uncertainty(point_sample(coarse_logits, candidates))[:, 0]  # (N, num_sampled)
    num_uncertain = int(importance_sample_ratio * num_points)
    top = scores.topk(num_uncertain, dim=1).indices
    chosen = candidates.gather(1, top[..., None].expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        chosen = torch.cat([chosen, torch.rand(n, num_random, 2, device=device)], dim=1)
    return chosen
