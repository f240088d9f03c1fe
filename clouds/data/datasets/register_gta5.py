"""GTA5 train sets: ``gta/images/<n>.png`` with converted ``gta/labels/<n>_labelTrainIds.png``.

``gta5``: as in the original CLOUDS (its ``datasets/gta_list``), 62 of the 24,966 frames are left
out (:data:`GTA5_LEFT_OUT`), so the set has 24,904 frames. ``gta5_all``: every frame, as the
original DGVFM (mmseg's GTA dataset lists the whole image folder).
"""

from __future__ import annotations

from pathlib import Path

from clouds.data.datasets.loading import PairedLayout, convert_hint, register_image_label_pairs

__all__ = ["GTA5_LEFT_OUT", "register_gta5"]

# Frame numbers (file stems) the original's GTA5 list leaves out.
GTA5_LEFT_OUT: frozenset[str] = frozenset(f"{n:05d}" for n in (15188, 17705, *range(20801, 20861)))


def register_gta5(datasets_root: Path) -> None:
    """Register ``gta5`` (CLOUDS' frame list) and ``gta5_all`` (every frame) from
    ``<datasets_root>/gta``."""
    root = datasets_root / "gta"
    layout = PairedLayout(root / "images", root / "labels", label_suffix="_labelTrainIds.png")
    for name, left_out in (("gta5", GTA5_LEFT_OUT), ("gta5_all", frozenset())):
        register_image_label_pairs(
            name,
            layout,
            "*.png",
            missing_hint=convert_hint("gta", root),
            exclude_ids=left_out,
        )
