"""Mapillary Vistas v1.2 (``mapillary_train``, ``mapillary_val``).

Images ``mapillary_vistas/{training,validation}/images/<key>.jpg``, labels converted to the
19 Cityscapes train IDs as ``mapillary_vistas/{training,validation}/labels/<key>_labelTrainIds.png``.
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs

__all__ = ["register_mapillary"]

_SPLITS = {"train": "training", "val": "validation"}


def register_mapillary(datasets_root: Path) -> None:
    """Register ``mapillary_train`` and ``mapillary_val`` from ``<datasets_root>/mapillary_vistas``."""
    root = datasets_root / "mapillary_vistas"
    for split, folder in _SPLITS.items():
        layout = PairedLayout(
            root / folder / "images", root / folder / "labels", label_suffix="_labelTrainIds.png"
        )
        register_image_label_pairs(
            f"mapillary_{split}", layout, "*.jpg", missing_hint=convert_hint("mapillary", root)
        )
