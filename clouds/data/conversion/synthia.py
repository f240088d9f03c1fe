"""SYNTHIA (RAND-CITYSCAPES): 16-bit ``GT/LABELS`` PNGs -> Cityscapes train IDs.

The class ID sits in the first channel of the 16-bit label PNG (the second holds instance
IDs). SYNTHIA's README lists 23 class IDs; as in the original CLOUDS (its
tools/convert_datasets/synthia.py), the 19 Cityscapes classes map to their train IDs, terrain,
truck and train included although RAND-CITYSCAPES never uses their IDs, and everything else
(void, parking-slot, road-work, lane-marking) becomes 255.

Layout: ``synthia/RGB/0000000.png`` and ``synthia/GT/LABELS/0000000.png``; the converted
label is written beside the raw one as ``synthia/GT/LABELS/0000000_labelTrainIds.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clouds.data.conversion.runner import ConversionJob, LabelConverter, LabelReader
from clouds.data.conversion.spec import DatasetConversion, find_jobs_beside
from clouds.data.datasets.cityscapes_meta import IGNORE_LABEL

__all__ = ["SYNTHIA_CLASSES", "SYNTHIA_CONVERSION", "SYNTHIA_TO_TRAIN_ID", "find_synthia_jobs"]

# SYNTHIA RAND-CITYSCAPES class IDs (index = ID), from the dataset's README.
SYNTHIA_CLASSES: tuple[str, ...] = (
    "void",
    "sky",
    "building",
    "road",
    "sidewalk",
    "fence",
    "vegetation",
    "pole",
    "car",
    "traffic sign",
    "pedestrian",
    "bicycle",
    "motorcycle",
    "parking-slot",
    "road-work",
    "traffic light",
    "terrain",
    "rider",
    "truck",
    "bus",
    "train",
    "wall",
    "lanemarking",
)

# SYNTHIA class ID -> Cityscapes train ID for the 19 classes; other IDs -> 255.
SYNTHIA_TO_TRAIN_ID: dict[int, int] = {
    3: 0,  # road
    4: 1,  # sidewalk
    2: 2,  # building
    21: 3,  # wall
    5: 4,  # fence
    7: 5,  # pole
    15: 6,  # traffic light
    9: 7,  # traffic sign
    6: 8,  # vegetation
    16: 9,  # terrain (not in RAND-CITYSCAPES' labels)
    1: 10,  # sky
    10: 11,  # pedestrian -> person
    17: 12,  # rider
    8: 13,  # car
    18: 14,  # truck (not in RAND-CITYSCAPES' labels)
    19: 15,  # bus
    20: 16,  # train (not in RAND-CITYSCAPES' labels)
    12: 17,  # motorcycle
    11: 18,  # bicycle
}


def _synthia_lut() -> np.ndarray:
    lut = np.full(2**16, IGNORE_LABEL, dtype=np.uint8)
    for synthia_id, train_id in SYNTHIA_TO_TRAIN_ID.items():
        lut[synthia_id] = train_id
    return lut


def find_synthia_jobs(root: Path) -> list[ConversionJob]:
    """One job per ``GT/LABELS/<stem>.png`` (outputs of earlier runs excluded)."""
    return find_jobs_beside(root / "GT" / "LABELS", root / "RGB")


SYNTHIA_CONVERSION = DatasetConversion(
    name="synthia",
    dirname="synthia",
    required=("RGB", "GT/LABELS"),
    find_jobs=find_synthia_jobs,
    converter=LabelConverter(lut=_synthia_lut(), reader=LabelReader.FIRST_CHANNEL_16BIT),
)
