"""Batching images of different sizes: pad to a common, divisible size (detectron2's ImageList)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["pad_to_divisible"]


def pad_to_divisible(
    tensors: Sequence[torch.Tensor], size_divisibility: int = 0, pad_value: float = 0.0
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Stack (C, H_i, W_i) or (H_i, W_i) tensors into one batch, padding bottom and right.

    Args:
        tensors: the images (or label maps), all with the same leading dims.
        size_divisibility: the padded height and width are multiples of it (0 or 1: no rounding).
        pad_value: value of the padded pixels.

    Returns:
        (B, C, Hp, Wp) or (B, Hp, Wp) batch and the original (H_i, W_i) of each tensor.
    """
    if not tensors:
        raise ValueError("pad_to_divisible needs at least one tensor")
    sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
    height = max(h for h, _ in sizes)
    width = max(w for _, w in sizes)
    if size_divisibility > 1:
        height = math.ceil(height / size_divisibility) * size_divisibility
        width = math.ceil(width / size_divisibility) * size_divisibility
    padded = [
        F.pad(t, (0, width - w, 0, height - h), value=pad_value)
        for t, (h, w) in zip(tensors, sizes)
    ]
    return torch.stack(padded), sizes
