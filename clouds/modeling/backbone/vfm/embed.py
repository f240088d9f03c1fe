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


def _cubic_weights(t: torch.Tensor, a: float = -0.75) -> list[torch.Tensor]:
    """Keys' cubic convolution weights (PyTorch's bicubic, A = -0.75) of the 4 taps around a
    source position with fractional part ``t``."""

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _bicubic_matrix(size: int | torch.SymInt, source: int, scale: float) -> torch.Tensor:
    """(size, source) matrix of the 1-D bicubic resampling by ``scale`` (torch's
    ``scale_factor`` convention: source = (i + 0.5) / scale - 0.5, borders clamped)."""
    position = (torch.arange(size, dtype=torch.float32) + 0.5) / scale - 0.5
    base = position.floor()
    taps = torch.arange(source)
    matrix = torch.zeros(())
    for k, weight in enumerate(_cubic_weights(position - base)):
        index = (base.long() + (k - 1)).clamp(0, source - 1)
        matrix = matrix + weight[:, None] * (index[:, None] == taps[None, :]).float()
    return matrix


def bicubic_resize_by_scale(
    x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float]
) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=scale, mode="bicubic")`` for (B, C, H, W) ``x`` whose
    output is ``size``, as two resampling matrices: the same values (up to float rounding), and
    ``torch.export`` keeps ``size`` and ``scale`` symbolic (F.interpolate's scale factor is
    frozen at the traced value, which breaks dynamic-size ONNX export)."""
    rows = _bicubic_matrix(size[0], x.shape[-2], scale[0]).to(x.dtype)
    cols = _bicubic_matrix(size[1], x.shape[-1], scale[1]).to(x.dtype)
    return torch.einsum("yi,bcij,xj->bcyx", rows, x, cols)
