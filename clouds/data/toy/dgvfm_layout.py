"""The toy datasets also laid out as the original DGVFM repository expects its ``data/`` folder.

GTA5, Cityscapes and ACDC share their layouts with ours. This adds, beside the toy tree of
:func:`clouds.data.toy.make_toy_datasets` (same images, same raw labels):

- ``bdd100k/images/val/<name>.jpg`` and ``bdd100k/labels/val/<name>_train_id.png``;
- ``mapillary/{training,validation}/images/<key>.jpg``,
  ``mapillary/{training,validation}/v1.2/labels/<key>.png`` (raw palette labels) and
  ``mapillary/config_v1.2.json`` (the release's class list).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clouds.data.conversion.mapillary import (
    MAPILLARY_CLASSES,
    MAPILLARY_COLORS,
    MAPILLARY_READABLE_NAMES,
)

__all__ = ["MAPILLARY_VERSION", "add_dgvfm_layouts"]

MAPILLARY_VERSION = "v1.2"


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _add_bdd(root: Path) -> None:
    bdd = root / "bdd100k"
    for image in sorted((bdd / "images" / "10k" / "val").glob("*.jpg")):
        _copy(image, bdd / "images" / "val" / image.name)
        label = bdd / "labels" / "sem_seg" / "masks" / "val" / f"{image.stem}.png"
        _copy(label, bdd / "labels" / "val" / f"{image.stem}_train_id.png")


def _add_mapillary(root: Path) -> None:
    source, target = root / "mapillary_vistas", root / "mapillary"
    for split in ("training", "validation"):
        for image in sorted((source / split / "images").glob("*.jpg")):
            _copy(image, target / split / "images" / image.name)
            label = source / split / "labels" / f"{image.stem}.png"
            _copy(label, target / split / MAPILLARY_VERSION / "labels" / label.name)
    labels = [
        {"name": name, "readable": readable, "color": list(color), "evaluate": True}
        for name, readable, color in zip(
            MAPILLARY_CLASSES, MAPILLARY_READABLE_NAMES, MAPILLARY_COLORS
        )
    ]
    (target / f"config_{MAPILLARY_VERSION}.json").write_text(json.dumps({"labels": labels}))


def add_dgvfm_layouts(root: str | Path) -> Path:
    """Add the original DGVFM layouts of BDD100K and Mapillary to the raw toy tree at ``root``."""
    root = Path(root)
    _add_bdd(root)
    _add_mapillary(root)
    return root
