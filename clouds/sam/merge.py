"""Merge per-region binary masks back into one label map."""

from __future__ import annotations

import torch

__all__ = ["merge_masks"]


def merge_masks(
    masks: torch.Tensor,
    class_ids: torch.Tensor,
    fallback: torch.Tensor,
    *,
    rm_intersection: bool,
) -> torch.Tensor:
    """Paint masks of their classes over ``fallback``.

    Masks are painted from the largest to the smallest, so a small object inside a large
    region keeps its own label. With ``rm_intersection``, pixels claimed by masks of two or more
    different classes are removed from every mask (two masks of the same class do not conflict)
    and keep the ``fallback`` label, like pixels that no mask covers.

    Args:
        masks: (R, H, W) bool, one mask per refined region.
        class_ids: (R,) int64 class of each mask.
        fallback: (H, W) int64 label of uncovered pixels (the teacher's labels, or all 255).
        rm_intersection: drop pixels claimed by several classes.

    Returns:
        (H, W) int64 label map.
    """
    if masks.ndim != 3 or masks.shape[1:] != fallback.shape or len(masks) != len(class_ids):
        raise ValueError(
            f"merge_masks got masks {tuple(masks.shape)}, class_ids {tuple(class_ids.shape)} "
            f"and fallback {tuple(fallback.shape)}: expected (R, H, W), (R,) and (H, W)"
        )
    merged = fallback.clone()
    if len(masks) == 0:
        return merged
    order = torch.argsort(masks.flatten(1).sum(1), descending=True, stable=True)
    for index in order.tolist():
        merged[masks[index]] = class_ids[index]
    if rm_intersection:
        classes = torch.unique(class_ids)
        per_class = torch.stack([masks[class_ids == c].any(0) for c in classes])
        conflict = per_class.sum(0) > 1
        merged[conflict] = fallback[conflict]
    return merged
