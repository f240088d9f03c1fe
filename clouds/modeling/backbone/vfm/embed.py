"""Position-embedding resampling shared by the VFM backbones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["interpolate_pos_embed_nhwc"]


def interpolate_pos_embed_nhwc(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bicubically resample a (1, H, W, C) position embedding (SAM's layout) to (1, h, w, C)."""
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    resized = F.interpolate(
        pos_embed.permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False
    )
    return resized.permute(0, 2, 3, 1)
