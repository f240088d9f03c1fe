"""The bilinear resize of the VFM heads and segmentors (mmseg's ``resize``: align_corners False,
no antialias)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["bilinear"]


def bilinear(
    x: torch.Tensor, *, size: Sequence[int] | None = None, scale_factor: float | None = None
) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), or scaled by ``scale_factor`` (give one of the two)."""
    return F.interpolate(
        x,
        size=None if size is None else tuple(size),
        scale_factor=scale_factor,
        mode="bilinear",
        align_corners=False,
    )
