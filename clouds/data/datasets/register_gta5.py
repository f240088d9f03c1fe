"""GTA5 (``gta5``, train): ``gta/images/<n>.png`` with converted ``gta/labels/<n>_labelTrainIds.png``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["register_gta5"]


def _load_gta5(root: Path) -> list[dict[str, Any]]:
    return load_image_label_pairs(
        "gta5",
        root / "images",
        "*.png",
        label_of=lambda image: root / "labels" / f"{image.stem}_labelTrainIds.png",
        image_id_of=lambda image: image.stem,
        missing_hint=f"Convert the labels with `python tools/convert_datasets/gta.py {root}`. ",
    )


def register_gta5(datasets_root: Path) -> None:
    """Register ``gta5`` from ``<datasets_root>/gta``."""
    root = datasets_root / "gta"
    register_dataset("gta5", partial(_load_gta5, root), root / "images", root / "labels")
