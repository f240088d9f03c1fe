"""Cityscapes classes: the 19 train classes, their colours and the label-ID <-> train-ID tables.

Every dataset of the project is evaluated on the 19 Cityscapes train classes. GTA5 and
Cityscapes store *label IDs* (0..33, the full Cityscapes label set; ``-1`` is the license
plate, never drawn into label images); training and evaluation use *train IDs* (0..18,
255 = ignore). Cityscapes-format predictions for the official scripts use label IDs again.
Values follow ``cityscapesscripts/helpers/labels.py`` of the Cityscapes benchmark.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_COLORS",
    "CITYSCAPES_LABELS",
    "IGNORE_LABEL",
    "LABEL_ID_TO_TRAIN_ID",
    "NUM_CLASSES",
    "TRAIN_ID_TO_LABEL_ID",
    "CityscapesLabel",
    "cityscapes_metadata",
    "label_id_to_train_id_lut",
    "train_id_to_label_id_lut",
]

IGNORE_LABEL = 255


class CityscapesLabel(NamedTuple):
    """One entry of the full Cityscapes label set."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, 255, (0, 0, 142)),
)

LABEL_ID_TO_TRAIN_ID: dict[int, int] = {label.id: label.train_id for label in CITYSCAPES_LABELS}

_TRAIN_LABELS = sorted(
    (label for label in CITYSCAPES_LABELS if label.train_id != IGNORE_LABEL),
    key=lambda label: label.train_id,
)
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(label.name for label in _TRAIN_LABELS)
CITYSCAPES_COLORS: tuple[tuple[int, int, int], ...] = tuple(label.color for label in _TRAIN_LABELS)
TRAIN_ID_TO_LABEL_ID: tuple[int, ...] = tuple(label.id for label in _TRAIN_LABELS)
NUM_CLASSES = len(CITYSCAPES_CLASSES)


def label_id_to_train_id_lut() -> np.ndarray:
    """(256,) uint8 table: ``lut[label_id]`` is the train ID (255 for ignored and unknown IDs)."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        if label_id >= 0:
            lut[label_id] = train_id
    return lut


def train_id_to_label_id_lut() -> np.ndarray:
    """(256,) uint8 table: ``lut[train_id]`` is the Cityscapes label ID (0 "unlabeled" otherwise)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[: len(TRAIN_ID_TO_LABEL_ID)] = TRAIN_ID_TO_LABEL_ID
    return lut


def cityscapes_metadata() -> dict[str, Any]:
    """Metadata shared by every dataset evaluated on the 19 Cityscapes train classes."""
    return {
        "stuff_classes": list(CITYSCAPES_CLASSES),
        "stuff_colors": [list(color) for color in CITYSCAPES_COLORS],
        "ignore_label": IGNORE_LABEL,
        "evaluator_type": "sem_seg",
    }
