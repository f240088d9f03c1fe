"""Patch-embedding and position-embedding resampling shared by the VFM backbones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from torch import nn

__all__ = [
    "interpolate_pos_embed",
    "interpolate_pos_embed_nhwc",
    "resize_patch_conv",
    "resize_patch_kernel",
]


def resize_patch_kernel(weight: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Resample a patch-embedding kernel (C_out, C_in, p, p) to (C_out, C_in, patch_size, patch_size).

    Bicubic, with the pseudo-inverse correction of FlexiViT (timm's ``resample_patch_embed``) so
    that a patch upsampled by the same factor keeps its embedding.
    """
    if tuple(weight.shape[-2:]) == (patch_size, patch_size):
        return weight
    return resample_patch_embed(weight, [patch_size, patch_size], interpolation="bicubic")


@torch.no_grad()
def resize_patch_conv(conv: nn.Conv2d, patch_size: int) -> nn.Conv2d:
    """A copy of a patch-embedding convolution running at ``patch_size`` (kernel and stride)."""
    new = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=patch_size,
        stride=patch_size,
        bias=conv.bias is not None,
    )
    new.weight.copy_(resize_patch_kernel(conv.weight, patch_size))
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    return new.to(conv.weight.dtype)


def interpolate_pos_embed(
    pos_embed: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int
) -> torch.Tensor:
    """Bicubically resample a (1, P + N, C) position embedding to the grid (h, w).

    The first ``num_prefix_tokens`` entries (class token) are kept; the N patch entries must
    form a square grid. Returns (1, P + h * w, C).
    """
    num_patches = pos_embed.shape[1] - num_prefix_tokens
    side = int(round(num_patches**0.5))
    if side * side != num_patches:
        raise ValueError(f"position embedding with {num_patches} patch entries is not square")
    if (side, side) == tuple(grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, list(grid), old_size=[side, side], num_prefix_tokens=num_prefix_tokens
    )


def interpolate_pos_embed_nhwc(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bicubically resample a (1, H, W, C) position embedding (SAM's layout) to (1, h, w, C)."""
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    resized = F.interpolate(
        pos_embed.permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False
    )
    return resized.permute(0, 2, 3, 1)
