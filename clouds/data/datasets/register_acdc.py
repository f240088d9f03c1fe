"""ACDC (``acdc_{fog,night,rain,snow}_{train,val}``), already in train IDs; the test splits
``acdc_{fog,night,rain,snow}_test`` without labels.

Images ``acdc/rgb_anon/{condition}/{split}/{sequence}/<base>_rgb_anon.png``, labels
``acdc/gt/{condition}/{split}/{sequence}/<base>_gt_labelTrainIds.png``.
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import (
    PairedLayout,
    register_image_label_pairs,
    register_unlabelled_images,
)

__all__ = ["ACDC_CONDITIONS", "register_acdc"]

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
_IMAGE_SUFFIX = "_rgb_anon"


def register_acdc(datasets_root: Path, *, prefix: str = "") -> None:
    """Register the eight ACDC condition/split datasets (``<prefix>acdc_<condition>_<split>``)
    from ``<datasets_root>/acdc`` (the DGVFM configs' ``dg_`` sets have the same layout), and
    the four unlabelled test splits ``<prefix>acdc_<condition>_test``."""
    root = datasets_root / "acdc"
    for condition in ACDC_CONDITIONS:
        for split in ("train", "val"):
            layout = PairedLayout(
                root / "rgb_anon" / condition / split,
                root / "gt" / condition / split,
                label_suffix="_gt_labelTrainIds.png",
                image_suffix=_IMAGE_SUFFIX,
            )
            register_image_label_pairs(
                f"{prefix}acdc_{condition}_{split}", layout, f"*/*{_IMAGE_SUFFIX}.png"
            )
        register_unlabelled_images(
            f"{prefix}acdc_{condition}_test",
            root / "rgb_anon" / condition / "test",
            f"*/*{_IMAGE_SUFFIX}.png",
        )
