"""Cityscapes (``cityscapes_train``, ``cityscapes_val``).

Images ``cityscapes/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png``, labels
``cityscapes/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png`` (converted).
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs

__all__ = ["register_cityscapes"]

_IMAGE_SUFFIX = "_leftImg8bit"


def register_cityscapes(datasets_root: Path, *, prefix: str = "") -> None:
    """Register ``<prefix>cityscapes_train`` and ``<prefix>cityscapes_val`` from
    ``<datasets_root>/cityscapes`` (the DGVFM configs' ``dg_`` sets have the same layout)."""
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
