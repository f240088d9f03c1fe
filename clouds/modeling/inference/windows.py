"""Window layouts and mmseg's sliding-window inference for any image -> logits function."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["LogitsFn", "slide_inference", "window_boxes"]

# (normalised images (B, 3, h, w), output size (H, W)) -> class logits (B, K, H, W)
LogitsFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


def window_boxes(
    height: int, width: int, window: tuple[int, int], stride: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Windows (y0, x0, y1, x1) covering an image; the last row/column is aligned to the border.

    A window larger than the image is clipped to it.
    """
    win_h, win_w = min(window[0], height), min(window[1], width)
    stride_h, stride_w = stride
    if stride_h <= 0 or stride_w <= 0:
        raise ValueError(f"TEST.SLIDE.STRIDE must be positive, got {stride}")
    rows = max(height - win_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - win_w + stride_w - 1, 0) // stride_w + 1
    boxes = []
    for r in range(rows):
        y1 = min(r * stride_h + win_h, height)
        for c in range(cols):
            x1 = min(c * stride_w + win_w, width)
            boxes.append((y1 - win_h, x1 - win_w, y1, x1))
    return boxes


@torch.no_grad()
def slide_inference(
    logits_fn: LogitsFn,
    image: torch.Tensor,
    *,
    window: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """Logits of ``image`` (1, 3, H, W) from overlapping windows (each predicted at its own
    size), overlaps averaged.

    Returns:
        (1, K, H, W) logits.
    """
    height, width = image.shape[-2:]
    total: torch.Tensor | None = None
    count = image.new_zeros((1, 1, height, width))
    for y0, x0, y1, x1 in window_boxes(height, width, window, stride):
        logits = logits_fn(image[..., y0:y1, x0:x1], (y1 - y0, x1 - x0))
        if total is None:
            total = logits.new_zeros((1, logits.shape[1], height, width))
        total[..., y0:y1, x0:x1] += logits
        count[..., y0:y1, x0:x1] += 1
    return total / count
