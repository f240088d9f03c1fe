"""The datasets of the DGVFM reproduction configs, in the original DGVFM repository's layouts.

Read from ``$DGVFM_DATASETS`` (default: ``$DETECTRON2_DATASETS`` when set, else ``data``), as
its configs read ``data/...``:

- ``dg_gta_train``: ``gta/images/<n>.png``, ``gta/labels/<n>_labelTrainIds.png`` (every frame);
- ``dg_cityscapes_{train,val}``: ``cityscapes/leftImg8bit/<split>/<city>/*_leftImg8bit.png``,
  ``cityscapes/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``;
- ``dg_bdd100k_val``: ``bdd100k/images/val/<name>.jpg``, ``bdd100k/labels/val/<name>_train_id.png``
  (``datasets/bdd100k`` when ``<root>/bdd100k`` is absent: the original README's place);
  ``dg_bdd100k_train``: ``bdd100k/images/10k/train/*.jpg``, ``labels/sem_seg/masks/train/*.png``;
- ``dg_mapillary_{train,val}``: ``mapillary/{training,validation}/images/<key>.jpg`` with the
  labels ``tools/convert_datasets/mapillary2cityscape.py`` writes,
  ``mapillary/cityscapes_trainIdLabel/{train,val}/label/<key>.png`` (the original's mapping);
- ``dg_acdc_<condition>_{train,val}``: ``acdc/rgb_anon/<condition>/<split>/<seq>/*_rgb_anon.png``,
  ``acdc/gt/<condition>/<split>/<seq>/*_gt_labelTrainIds.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs
from clouds.data.datasets.register_acdc import ACDC_CONDITIONS, register_acdc
from clouds.data.datasets.register_cityscapes import register_cityscapes

__all__ = ["DGVFM_DATASET_NAMES", "dgvfm_datasets_root", "register_dgvfm_datasets"]

DGVFM_DATASET_NAMES: tuple[str, ...] = (
    "dg_gta_train",
    "dg_cityscapes_train",
    "dg_cityscapes_val",
    "dg_bdd100k_train",
    "dg_bdd100k_val",
    "dg_mapillary_train",
    "dg_mapillary_val",
    *(f"dg_acdc_{c}_{s}" for c in ACDC_CONDITIONS for s in ("train", "val")),
)


def dgvfm_datasets_root() -> Path:
    """``$DGVFM_DATASETS``, else ``$DETECTRON2_DATASETS``, else ``data``."""
    return Path(os.environ.get("DGVFM_DATASETS") or os.environ.get("DETECTRON2_DATASETS", "data"))


def register_dgvfm_datasets(root: Path | None = None) -> Path:
    """Register every ``dg_*`` dataset under ``root`` (default :func:`dgvfm_datasets_root`)."""
    root = dgvfm_datasets_root() if root is None else Path(root)
    gta = root / "gta"
    register_image_label_pairs(
        "dg_gta_train",
        PairedLayout(gta / "images", gta / "labels", label_suffix="_labelTrainIds.png"),
        "*.png",
        missing_hint=convert_hint("gta", gta),
    )
    register_cityscapes(root, prefix="dg_")
    bdd = root / "bdd100k"
    if not bdd.is_dir() and Path("datasets/bdd100k").is_dir():
        bdd = Path("datasets/bdd100k")
    register_image_label_pairs(
        "dg_bdd100k_val",
        PairedLayout(bdd / "images" / "val", bdd / "labels" / "val", label_suffix="_train_id.png"),
        "*.jpg",
    )
    register_image_label_pairs(
        "dg_bdd100k_train",
        PairedLayout(
            bdd / "images" / "10k" / "train",
            bdd / "labels" / "sem_seg" / "masks" / "train",
            label_suffix=".png",
        ),
        "*.jpg",
    )
    mapillary = root / "mapillary"
    converted = mapillary / "cityscapes_trainIdLabel"
    for split, folder in (("train", "training"), ("val", "validation")):
        register_image_label_pairs(
            f"dg_mapillary_{split}",
            PairedLayout(mapillary / folder / "images", converted / split / "label", ".png"),
            "*.jpg",
            missing_hint="Convert the labels with `python tools/convert_datasets/"
            f"mapillary2cityscape.py {mapillary} {converted} --train_id`. ",
        )
    register_acdc(root, prefix="dg_")
    return root
