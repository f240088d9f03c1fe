"""Fixed 2-D sine position embeddings (DETR style) for feature maps without padding."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PositionEmbeddingSine"]


class PositionEmbeddingSine(nn.Module):
    """Sine/cosine embedding of the (y, x) position of every pixel of a feature map.

    The first ``num_pos_feats`` channels encode y, the last ``num_pos_feats`` encode x.
    """

    def __init__(
        self,
        *,
        num_pos_feats: int = 64,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float = 2 * math.pi,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """Embeddings for ``x`` (B, C, H, W) -> (B, 2 * num_pos_feats, H, W), dtype of ``x``."""
        b, _, h, w = x.shape
        eps = 1e-6
        y_embed = torch.arange(1, h + 1, device=x.device, dtype=torch.float32)
        x_embed = torch.arange(1, w + 1, device=x.device, dtype=torch.float32)
        if self.normalize:
            y_embed = y_embed / (h + eps) * self.scale
            x_embed = x_embed / (w + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, device=x.device, dtype=torch.float32)
        dim_t = self.temperature ** (
            2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats
        )
        pos_y = _interleave_sin_cos(y_embed[:, None] / dim_t)  # (H, F)
        pos_x = _interleave_sin_cos(x_embed[:, None] / dim_t)  # (W, F)
        pos = torch.cat(
            [pos_y[:, None, :].expand(h, w, -1), pos_x[None, :, :].expand(h, w, -1)], dim=-1
        )
        return pos.permute(2, 0, 1)[None].expand(b, -1, -1, -1).to(x.dtype)


def _interleave_sin_cos(angles: Tensor) -> Tensor:
    """(..., F) angles -> (..., F): sin of the even entries and cos of the odd ones, interleaved."""
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)
