"""Two-stage coarse-to-fine inference on high-resolution images (DGVFM).

Stage 1 predicts the whole image at a reduced size and upsamples the logits to full resolution.
Stage 2 slides windows over the image and refines, with the coarse logits of the window as
context, only the windows where the coarse prediction is unsure (fewer than ``sure_ratio`` of
its pixels have a max class probability above ``confidence``). Refined logits replace the
coarse ones; where refined windows overlap they are averaged; elsewhere the coarse logits stay.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from clouds.modeling.inference.windows import LogitsFn, window_boxes

__all__ = ["RefineFn", "coarse_to_fine_inference", "is_unsure"]

# (window images (1, 3, h, w), coarse logits of the window (1, K, h, w)) -> (1, K, h, w) logits
RefineFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def is_unsure(logits: torch.Tensor, *, confidence: float, sure_ratio: float) -> bool:
    """Whether fewer than ``sure_ratio`` of the pixels of (1, K, h, w) logits are confident."""
    confident = logits.softmax(dim=1).amax(dim=1) > confidence
    return confident.float().mean().item() < sure_ratio


@torch.no_grad()
def coarse_to_fine_inference(
    coarse_fn: LogitsFn,
    refine_fn: RefineFn,
    image: torch.Tensor,
    *,
    coarse_size: tuple[int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    confidence: float,
    sure_ratio: float,
) -> torch.Tensor:
    """(1, 3, H, W) normalised image -> (1, K, H, W) logits.

    Args:
        coarse_fn: whole-image predictor (stage 1), run at ``coarse_size`` (h, w).
        refine_fn: window refiner (stage 2) taking the window and its coarse logits.
        window, stride: stage-2 window layout (h, w); the last windows touch the border.
        confidence, sure_ratio: a window is kept when at least ``sure_ratio`` of its pixels
            have max probability > ``confidence``.
    """
    height, width = image.shape[-2:]
    small = F.interpolate(image, size=tuple(coarse_size), mode="bilinear", align_corners=False)
    coarse = F.interpolate(
        coarse_fn(small), size=(height, width), mode="bilinear", align_corners=False
    )
    refined = torch.zeros_like(coarse)
    count = coarse.new_zeros((1, 1, height, width))
    for y0, x0, y1, x1 in window_boxes(height, width, window, stride):
        context = coarse[..., y0:y1, x0:x1]
        if is_unsure(context, confidence=confidence, sure_ratio=sure_ratio):
            refined[..., y0:y1, x0:x1] += refine_fn(image[..., y0:y1, x0:x1], context)
            count[..., y0:y1, x0:x1] += 1
    return torch.where(count > 0, refined / count.clamp(min=1), coarse)
