"""A small deterministic stand-in SAM with BatchNorm layers (as MobileSAM's TinyViT has).

segment-anything's ``Sam`` with segment-anything's prompt encoder and mask decoder at width 32,
and an image encoder of two strided convolutions, each followed by BatchNorm: 1024x1024 input
(the long side the original CLOUDS resizes to) -> (B, 32, 64, 64) embeddings. In training mode
its outputs depend on the batch (statistics of the batch) and encoding updates the running
statistics, so it tells apart SAM run as the original (training mode, one image at a time) from
SAM in eval mode or encoding several images in one call. It imports nothing of this project, so
the scripts that run the original CLOUDS outside the project build the same model.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

IMG_SIZE = 1024
WIDTH = 32


class BatchNormEncoder(nn.Module):
    """(B, 3, 1024, 1024) -> (B, 32, 64, 64): conv 4x4/4 + BN + GELU, conv 4x4/4 + BN."""

    def __init__(self) -> None:
        super().__init__()
        self.img_size = IMG_SIZE
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=4, stride=4),
            nn.BatchNorm2d(16),
            nn.GELU(),
            nn.Conv2d(16, WIDTH, kernel_size=4, stride=4),
            nn.BatchNorm2d(WIDTH),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_bn_sam() -> Sam:
    """The stand-in's architecture (weights: load the fixture's state dict)."""
    grid = IMG_SIZE // 16
    return Sam(
        image_encoder=BatchNormEncoder(),
        prompt_encoder=PromptEncoder(
            embed_dim=WIDTH,
            image_embedding_size=(grid, grid),
            input_image_size=(IMG_SIZE, IMG_SIZE),
            mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=WIDTH, mlp_dim=32, num_heads=2),
            transformer_dim=WIDTH,
            iou_head_depth=2,
            iou_head_hidden_dim=16,
        ),
    )
