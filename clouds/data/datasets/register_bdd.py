"""BDD100K semantic segmentation (``bdd_train``, ``bdd_val``), already in train IDs.

Images ``bdd100k/images/10k/{split}/<name>.jpg``, labels
``bdd100k/labels/sem_seg/masks/{split}/<name>.png`` (the official 10K release layout).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["register_bdd"]


def _load_bdd(root: Path, split: str) -> list[dict[str, Any]]:
    masks = root / "labels" / "sem_seg" / "masks" / split
    return load_image_label_pairs(
        f"bdd_{split}",
        root / "images" / "10k" / split,
        "*.jpg",
        label_of=lambda image: masks / f"{image.stem}.png",
        image_id_of=lambda image: image.stem,
    )


def register_bdd(datasets_root: Path) -> None:
    """Register ``bdd_train`` and ``bdd_val`` from ``<datasets_root>/bdd100k``."""
    root = datasets_root / "bdd100k"
    for split in ("train", "val"):
        register_dataset(
            f"bdd_{split}",
            partial(_load_bdd, root, split),
            root / "images" / "10k" / split,
            root / "labels" / "sem_seg" / "masks" / split,
        )
