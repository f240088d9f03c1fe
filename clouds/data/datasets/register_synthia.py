"""SYNTHIA RAND-CITYSCAPES (``synthia``, train): ``synthia/RGB/<n>.png`` with converted
``synthia/GT/LABELS/<n>_labelTrainIds.png``."""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs

__all__ = ["register_synthia"]


def register_synthia(datasets_root: Path) -> None:
    """Register ``synthia`` from ``<datasets_root>/synthia``."""
    root = datasets_root / "synthia"
    layout = PairedLayout(root / "RGB", root / "GT" / "LABELS", label_suffix="_labelTrainIds.png")
    register_image_label_pairs(
        "synthia", layout, "*.png", missing_hint=convert_hint("synthia", root)
    )
