"""Two-stage inference on high-resolution images, as DGVFM's ``MsVFMEncoderDecoder``.

``coarse_to_fine`` (its ``ms_slide_inference``): stage 1 predicts the whole image resized to a
fixed ``coarse_size`` and resizes the stride-4 logits to full resolution in one step. Stage 2
slides windows over the full image; a window whose coarse prediction is unsure (fewer than
``sure_ratio`` of its pixels have max probability > ``confidence``) is refined with its crop of
the coarse logits as context, a sure window keeps that crop. EVERY window adds its logits
(refined or coarse) and the sum is divided by the per-pixel window count, so where sure and
refined windows overlap, coarse and refined logits are averaged.

``msfull_slide`` (its ``msfull_slide_inference``): stage 1 slides the light head over the image
resized to ``coarse_size``; stage 2 refines every window.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from clouds.modeling.inference.windows import slide_inference, window_boxes

__all__ = ["CoarseFn", "RefineFn", "coarse_to_fine_inference", "is_unsure", "msfull_inference"]

# (normalised images (1, 3, h, w), output size (H, W)) -> (1, K, H, W) light-head logits
CoarseFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
# (window (1, 3, h, w), coarse logits of the window (1, K, h, w)) -> (1, K, h, w) logits
RefineFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def is_unsure(logits: torch.Tensor, *, confidence: float, sure_ratio: float) -> bool:
    """Whether fewer than ``sure_ratio`` of the pixels of (1, K, h, w) logits are confident."""
    confident = logits.softmax(dim=1).amax(dim=1) > confidence
    return confident.float().mean().item() < sure_ratio


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _merge_windows(
    image: torch.Tensor,
    coarse: torch.Tensor,
    window_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """Sum of ``window_fn(window image, coarse crop)`` over the windows / per-pixel count."""
    height, width = image.shape[-2:]
    total = torch.zeros_like(coarse)
    count = coarse.new_zeros((1, 1, height, width))
    for y0, x0, y1, x1 in window_boxes(height, width, window, stride):
        total[..., y0:y1, x0:x1] += window_fn(image[..., y0:y1, x0:x1], coarse[..., y0:y1, x0:x1])
        count[..., y0:y1, x0:x1] += 1
    return total / count


@torch.no_grad()
def coarse_to_fine_inference(
    coarse_fn: CoarseFn,
    refine_fn: RefineFn,
    image: torch.Tensor,
    *,
    coarse_size: tuple[int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    confidence: float,
    sure_ratio: float,
) -> torch.Tensor:
    """(1, 3, H, W) normalised image -> (1, K, H, W) logits (the original's ms_slide).

    Args:
        coarse_fn: light-head predictor (stage 1), run on the image resized to ``coarse_size``.
        refine_fn: window refiner (stage 2) taking the window and its coarse logits.
        window, stride: stage-2 window layout (h, w); the last windows touch the border.
        confidence, sure_ratio: a window is sure when at least ``sure_ratio`` of its pixels
            have max probability > ``confidence``; it then contributes its coarse logits.
    """
    height, width = image.shape[-2:]
    coarse = coarse_fn(_resize(image, tuple(coarse_size)), (height, width))

    def window_logits(crop: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if is_unsure(context, confidence=confidence, sure_ratio=sure_ratio):
            return refine_fn(crop, context)
        return context

    return _merge_windows(image, coarse, window_logits, window, stride)


@torch.no_grad()
def msfull_inference(
    coarse_fn: CoarseFn,
    refine_fn: RefineFn,
    image: torch.Tensor,
    *,
    coarse_size: tuple[int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """(1, 3, H, W) -> (1, K, H, W): sliding light head on the image at ``coarse_size``,
    resized to full size, then every window refined with its crop of it, overlaps averaged."""
    height, width = image.shape[-2:]
    small = _resize(image, tuple(coarse_size))
    coarse = _resize(
        slide_inference(coarse_fn, small, window=window, stride=stride), (height, width)
    )
    return _merge_windows(image, coarse, refine_fn, window, stride)
