"""Cityscapes (``cityscapes_train``, ``cityscapes_val``; ``cityscapes_test`` without labels).

Images ``cityscapes/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png``, labels
``cityscapes/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png`` (converted).
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import (
    PairedLayout,
    convert_hint,
    register_image_label_pairs,
    register_unlabelled_images,
)

__all__ = ["register_cityscapes"]

_IMAGE_SUFFIX = "_leftImg8bit"


def register_cityscapes(datasets_root: Path, *, prefix: str = "") -> None:
    """Register ``<prefix>cityscapes_train`` and ``<prefix>cityscapes_val`` from
    ``<datasets_root>/cityscapes`` (the DGVFM configs' ``dg_`` sets have the same layout), and
    the unlabelled ``<prefix>cityscapes_test`` (``leftImg8bit/test/{city}/``)."""
    root = datasets_root / "cityscapes"
    for split in ("train", "val"):
        layout = PairedLayout(
            root / "leftImg8bit" / split,
            root / "gtFine" / split,
            label_suffix="_gtFine_labelTrainIds.png",
            image_suffix=_IMAGE_SUFFIX,
        )
        register_image_label_pairs(
            f"{prefix}cityscapes_{split}",
            layout,
            f"*/*{_IMAGE_SUFFIX}.png",
            missing_hint=convert_hint("cityscapes", root),
        )
    register_unlabelled_images(
        f"{prefix}cityscapes_test", root / "leftImg8bit" / "test", f"*/*{_IMAGE_SUFFIX}.png"
    )
