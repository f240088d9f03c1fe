"""Merge per-region binary masks back into one label map."""

from __future__ import annotations

import torch

__all__ = ["OVERLAP_MODES", "merge_masks"]

OVERLAP_MODES = ("all", "conflict")


def merge_masks(
    masks: torch.Tensor,
    class_ids: torch.Tensor,
    fallback: torch.Tensor,
    *,
    rm_intersection: bool,
    overlap: str = "all",
) -> torch.Tensor:
    """Paint masks of their classes over ``fallback``.

    With ``rm_intersection`` and ``overlap="all"`` (the original), every pixel covered by two or
    more masks, of the same class or not, is removed from every mask; the remaining masks are
    disjoint, so the map is the one the original's per-class union of masks describes. With
    ``overlap="conflict"`` (ours) only pixels claimed by masks of different classes are removed.
    Masks are painted from the largest to the smallest, so without ``rm_intersection`` a small
    object inside a large region keeps its own label. Removed and uncovered pixels keep the
    ``fallback`` label.

    Args:
        masks: (R, H, W) bool, one mask per refined region.
        class_ids: (R,) int64 class of each mask.
        fallback: (H, W) int64 label of uncovered pixels (all ignore in the original, or the
            teacher's labels).
        rm_intersection: drop pixels covered by several masks.
        overlap: which overlaps ``rm_intersection`` drops: "all" or "conflict".

    Returns:
        (H, W) int64 label map.
    """
    if masks.ndim != 3 or masks.shape[1:] != fallback.shape or len(masks) != len(class_ids):
        raise ValueError(
            f"merge_masks got masks {tuple(masks.shape)}, class_ids {tuple(class_ids.shape)} "
            f"and fallback {tuple(fallback.shape)}: expected (R, H, W), (R,) and (H, W)"
        )
    if overlap not in OVERLAP_MODES:
        raise ValueError(
            f"MODEL.CLOUDS.SAM.OVERLAP must be one of {OVERLAP_MODES}, got {overlap!r}"
        )
    merged = fallback.clone()
    if len(masks) == 0:
        return merged
    order = torch.argsort(masks.flatten(1).sum(1), descending=True, stable=True)
    for index in order.tolist():
        merged[masks[index]] = class_ids[index]
    if rm_intersection:
        if overlap == "all":
            dropped = masks.sum(0) > 1
        else:
            per_class = torch.stack([masks[class_ids == c].any(0) for c in torch.unique(class_ids)])
            dropped = per_class.sum(0) > 1
        merged[dropped] = fallback[dropped]
    return merged
