"""The feature pyramid of DGVFM's CLIP ViT module, which its Rein CLIP backbone applies.

Four stride-16 maps -> strides 4, 8, 16, 32 (module names ``fpn1`` .. ``fpn4`` as the original's,
so its checkpoints load): GroupNorm(1) on each map, then two stride-2 transposed convolutions with
BatchNorm and GELU between them (stride 4), one (stride 8), nothing (stride 16) or a 2x2 max-pool
(stride 32). It trains with Rein; its BatchNorm follows ``train()``.
"""

from __future__ import annotations

from torch import nn

__all__ = ["clip_pyramid_levels"]


def clip_pyramid_levels(channels: int) -> dict[str, nn.Module]:
    """``{"fpn1": ..., "fpn4": ...}`` for maps of ``channels`` channels (patch 16)."""
    return {
        "fpn1": nn.Sequential(
            nn.GroupNorm(1, channels),
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
        ),
        "fpn2": nn.Sequential(
            nn.GroupNorm(1, channels),
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
        ),
        "fpn3": nn.GroupNorm(1, channels),
        "fpn4": nn.Sequential(nn.GroupNorm(1, channels), nn.MaxPool2d(kernel_size=2, stride=2)),
    }
