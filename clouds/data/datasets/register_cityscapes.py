"""Cityscapes (``cityscapes_train``, ``cityscapes_val``).

Images ``cityscapes/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png``, labels
``cityscapes/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png`` (converted).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["register_cityscapes"]

_IMAGE_SUFFIX = "_leftImg8bit"


def _base(image: Path) -> str:
    return image.stem.removesuffix(_IMAGE_SUFFIX)


def _load_cityscapes(root: Path, split: str) -> list[dict[str, Any]]:
    gt = root / "gtFine" / split
    return load_image_label_pairs(
        f"cityscapes_{split}",
        root / "leftImg8bit" / split,
        f"*/*{_IMAGE_SUFFIX}.png",
        label_of=lambda image: gt / image.parent.name / f"{_base(image)}_gtFine_labelTrainIds.png",
        image_id_of=_base,
        missing_hint="Convert the labels with "
        f"`python tools/convert_datasets/cityscapes.py {root}`. ",
    )


def register_cityscapes(datasets_root: Path) -> None:
    """Register ``cityscapes_train`` and ``cityscapes_val`` from ``<datasets_root>/cityscapes``."""
    root = datasets_root / "cityscapes"
    for split in ("train", "val"):
        register_dataset(
            f"cityscapes_{split}",
            partial(_load_cityscapes, root, split),
            root / "leftImg8bit" / split,
            root / "gtFine" / split,
        )
