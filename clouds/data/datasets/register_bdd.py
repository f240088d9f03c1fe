"""BDD100K semantic segmentation (``bdd_train``, ``bdd_val``), already in train IDs.

Images ``bdd100k/images/10k/{split}/<name>.jpg``, labels
``bdd100k/labels/sem_seg/masks/{split}/<name>.png`` (the official 10K release layout).
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, register_image_label_pairs

__all__ = ["register_bdd"]


def register_bdd(datasets_root: Path) -> None:
    """Register ``bdd_train`` and ``bdd_val`` from ``<datasets_root>/bdd100k``."""
    root = datasets_root / "bdd100k"
    for split in ("train", "val"):
        layout = PairedLayout(
            root / "images" / "10k" / split,
            root / "labels" / "sem_seg" / "masks" / split,
            label_suffix=".png",
        )
        register_image_label_pairs(f"bdd_{split}", layout, "*.jpg")
