"""Multi-scale deformable attention (Deformable DETR) in pure PyTorch.

The core op samples every level with ``F.grid_sample`` (bilinear, zero padding,
``align_corners=False``) and mixes the samples with the attention weights. It has no compiled
extension; on GPU ``torch.compile`` fuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MSDeformAttn", "ms_deform_attn_core"]


def _level_shapes(spatial_shapes: Tensor | Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """(H, W) of each level as Python ints (symbolic sizes under torch.export stay symbolic,
    so an exported graph keeps its dynamic image size)."""
    if isinstance(spatial_shapes, Tensor):
        if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
            raise ValueError(
                f"spatial_shapes must have shape (L, 2), got {tuple(spatial_shapes.shape)}"
            )
        spatial_shapes = spatial_shapes.tolist()
    return [(_size(h), _size(w)) for h, w in spatial_shapes]


def _size(value: int | torch.SymInt) -> int | torch.SymInt:
    """A level size as a Python int; a symbolic one (torch.export) as it is."""
    return value if isinstance(value, torch.SymInt) else int(value)


def ms_deform_attn_core(
    value: Tensor,
    spatial_shapes: Tensor | Sequence[Sequence[int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Attention-weighted sum of bilinear samples taken on every level of a feature pyramid.

    Args:
        value: (N, S, M, D) flattened levels (level-major, row-major inside a level), M heads of
            D channels; S = sum of H_l * W_l.
        spatial_shapes: (L, 2) int64 tensor (or sequence of pairs) of the levels' (H, W).
        sampling_locations: (N, Lq, M, L, P, 2) locations as (x, y) normalised to [0, 1] over each
            level (0 and 1 are the outer edges of the border pixels); outside reads zeros.
        attention_weights: (N, Lq, M, L, P) weight of every sample.

    Returns:
        (N, Lq, M * D) the weighted sums, heads concatenated, in the dtype of ``value``.
        Sampling runs in float32 (or float64): half-precision locations would be off by fractions of a pixel.
    """
    shapes = _level_shapes(spatial_shapes)
    n, s, m, d = value.shape
    _, lq, _, num_levels, p, _ = sampling_locations.shape
    if num_levels != len(shapes):
        raise ValueError(
            f"sampling_locations has {num_levels} levels but spatial_shapes has {len(shapes)}"
        )
    if sum(h * w for h, w in shapes) != s:
        raise ValueError(f"spatial_shapes {shapes} do not add up to the value length {s}")
    dtype = torch.promote_types(value.dtype, torch.float32)
    value_levels = value.to(dtype).split([h * w for h, w in shapes], dim=1)
    # grid_sample works on (N*M, D, H, W) maps with (N*M, Lq, P, 2) grids in [-1, 1].
    grids = (2 * sampling_locations.to(dtype) - 1).permute(0, 2, 1, 3, 4, 5).flatten(0, 1)
    samples = []
    for level, (h, w) in enumerate(shapes):
        value_l = value_levels[level].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        samples.append(
            F.grid_sample(
                value_l,
                grids[:, :, level],
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
        )
    # (N*M, D, Lq, L*P) samples against (N*M, 1, Lq, L*P) weights.
    stacked = torch.stack(samples, dim=-2).flatten(-2)
    weights = attention_weights.permute(0, 2, 1, 3, 4).reshape(n * m, 1, lq, num_levels * p)
    out = (stacked * weights.to(dtype)).sum(-1)
    return out.view(n, m * d, lq).transpose(1, 2).to(value.dtype)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention: each query samples P points per level and head."""

    def __init__(self, *, d_model: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets start on rays in n_heads directions, at 1..P steps; uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        bias = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((bias * steps).flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """Attend from each query around its reference point on every level.

        Args:
            query: (N, Lq, C) queries (position embedding already added).
            reference_points: (N or 1, Lq, L, 2) reference (x, y) in [0, 1] per level.
            input_flatten: (N, S, C) flattened levels, S = sum of H_l * W_l.
            spatial_shapes: L pairs (H_l, W_l) as Python ints.

        Returns:
            (N, Lq, C) attended features.
        """
        n, lq, _ = query.shape
        if reference_points.shape[-1] != 2:
            raise ValueError(
                f"reference_points must end in (x, y), got shape {tuple(reference_points.shape)}"
            )
        value = self.value_proj(input_flatten).view(
            n, -1, self.n_heads, self.d_model // self.n_heads
        )
        offsets = self.sampling_offsets(query).view(
            n, lq, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = (
            self.attention_weights(query)
            .view(n, lq, self.n_heads, self.n_levels * self.n_points)
            .softmax(-1)
            .view(n, lq, self.n_heads, self.n_levels, self.n_points)
        )
        # Offsets are in pixels of each level: divide by (W, H) to move in [0, 1] units.
        normalizer = torch.tensor(
            [[w, h] for h, w in spatial_shapes], dtype=torch.float32, device=offsets.device
        )
        locations = (
            reference_points.float()[:, :, None, :, None, :]
            + offsets.float() / normalizer[None, None, None, :, None, :]
        )
        out = ms_deform_attn_core(value, spatial_shapes, locations, weights)
        return self.output_proj(out)
