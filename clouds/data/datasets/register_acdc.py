"""ACDC (``acdc_{fog,night,rain,snow}_{train,val}``), already in train IDs.

Images ``acdc/rgb_anon/{condition}/{split}/{sequence}/<base>_rgb_anon.png``, labels
``acdc/gt/{condition}/{split}/{sequence}/<base>_gt_labelTrainIds.png``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["ACDC_CONDITIONS", "register_acdc"]

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
_IMAGE_SUFFIX = "_rgb_anon"


def _base(image: Path) -> str:
    return image.stem.removesuffix(_IMAGE_SUFFIX)


def _load_acdc(root: Path, condition: str, split: str) -> list[dict[str, Any]]:
    gt = root / "gt" / condition / split
    return load_image_label_pairs(
        f"acdc_{condition}_{split}",
        root / "rgb_anon" / condition / split,
        f"*/*{_IMAGE_SUFFIX}.png",
        label_of=lambda image: gt / image.parent.name / f"{_base(image)}_gt_labelTrainIds.png",
        image_id_of=_base,
    )


def register_acdc(datasets_root: Path) -> None:
    """Register the eight ACDC condition/split datasets from ``<datasets_root>/acdc``."""
    root = datasets_root / "acdc"
    for condition in ACDC_CONDITIONS:
        for split in ("train", "val"):
            register_dataset(
                f"acdc_{condition}_{split}",
                partial(_load_acdc, root, condition, split),
                root / "rgb_anon" / condition / split,
                root / "gt" / condition / split,
            )
