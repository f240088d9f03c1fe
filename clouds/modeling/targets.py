"""Mask-classification targets from semantic label maps: one binary mask per target class."""

from __future__ import annotations

import torch

__all__ = ["semantic_targets"]


def semantic_targets(
    label: torch.Tensor,
    *,
    num_classes: int,
    ignore_label: int = 255,
    kept_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One target per class present in ``label`` (ignored pixels excluded) or in
    ``kept_classes``.

    A class of ``kept_classes`` absent from the map gets an all-zero mask: the original CLOUDS
    keeps every class SAM was prompted for as a target, even when its masks came out empty or
    were removed as overlaps.

    Args:
        label: (H, W) int64 class indices, ``ignore_label`` where unlabelled.
        num_classes: K; values other than 0..K-1 and ``ignore_label`` are an error.
        ignore_label: label of ignored pixels.
        kept_classes: (M,) int64 classes that are targets whatever the map holds, or None.

    Returns:
        {"labels": (N,) int64 sorted class indices, "masks": (N, H, W) bool}.
    """
    classes = torch.unique(label)
    if kept_classes is not None:
        classes = torch.unique(torch.cat([classes, kept_classes.to(classes)]))
    classes = classes[classes != ignore_label]
    bad = classes[(classes < 0) | (classes >= num_classes)]
    if bad.numel():
        raise ValueError(
            f"Label map holds class values {bad.tolist()} outside 0..{num_classes - 1} "
            f"(ignore label {ignore_label}); is the dataset converted to train IDs?"
        )
    return {"labels": classes.long(), "masks": label[None] == classes[:, None, None]}
