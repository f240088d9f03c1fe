"""Mapillary Vistas v1.2 (``mapillary_train``, ``mapillary_val``).

Images ``mapillary_vistas/{training,validation}/images/<key>.jpg``, labels converted to the
19 Cityscapes train IDs as ``mapillary_vistas/{training,validation}/labels/<key>_labelTrainIds.png``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["register_mapillary"]

_SPLITS = {"train": "training", "val": "validation"}


def _load_mapillary(root: Path, split: str) -> list[dict[str, Any]]:
    folder = root / _SPLITS[split]
    return load_image_label_pairs(
        f"mapillary_{split}",
        folder / "images",
        "*.jpg",
        label_of=lambda image: folder / "labels" / f"{image.stem}_labelTrainIds.png",
        image_id_of=lambda image: image.stem,
        missing_hint="Convert the labels with "
        f"`python tools/convert_datasets/mapillary.py {root}`. ",
    )


def register_mapillary(datasets_root: Path) -> None:
    """Register ``mapillary_train`` and ``mapillary_val`` from ``<datasets_root>/mapillary_vistas``."""
    root = datasets_root / "mapillary_vistas"
    for split, folder in _SPLITS.items():
        register_dataset(
            f"mapillary_{split}",
            partial(_load_mapillary, root, split),
            root / folder / "images",
            root / folder / "labels",
        )
