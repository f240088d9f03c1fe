"""SYNTHIA RAND-CITYSCAPES (``synthia``, train): ``synthia/RGB/<n>.png`` with converted
``synthia/GT/LABELS/<n>_labelTrainIds.png``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.datasets.loading import load_image_label_pairs, register_dataset

__all__ = ["register_synthia"]


def _load_synthia(root: Path) -> list[dict[str, Any]]:
    labels = root / "GT" / "LABELS"
    return load_image_label_pairs(
        "synthia",
        root / "RGB",
        "*.png",
        label_of=lambda image: labels / f"{image.stem}_labelTrainIds.png",
        image_id_of=lambda image: image.stem,
        missing_hint=f"Convert the labels with `python tools/convert_datasets/synthia.py {root}`. ",
    )


def register_synthia(datasets_root: Path) -> None:
    """Register ``synthia`` from ``<datasets_root>/synthia``."""
    root = datasets_root / "synthia"
    register_dataset("synthia", partial(_load_synthia, root), root / "RGB", root / "GT" / "LABELS")
