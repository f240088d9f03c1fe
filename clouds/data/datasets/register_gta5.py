"""GTA5 (``gta5``, train): ``gta/images/<n>.png`` with converted ``gta/labels/<n>_labelTrainIds.png``."""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs

__all__ = ["register_gta5"]


def register_gta5(datasets_root: Path) -> None:
    """Register ``gta5`` from ``<datasets_root>/gta``."""
    root = datasets_root / "gta"
    layout = PairedLayout(root / "images", root / "labels", label_suffix="_labelTrainIds.png")
    register_image_label_pairs("gta5", layout, "*.png", missing_hint=convert_hint("gta", root))
