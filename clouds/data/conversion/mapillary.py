"""Mapillary Vistas v1.2: 66-class palette label PNGs -> the 19 Cityscapes train IDs.

Labels are palette PNGs whose pixel values are indices into the 66 v1.2 classes below
(index 65 is "void--unlabeled"). :data:`MAPILLARY_TO_CITYSCAPES` is the original CLOUDS's
mapping of 25 classes (manhole counts as road); classes it does not list become 255.

Layout: ``mapillary_vistas/{training,validation}/images/<key>.jpg`` and
``.../labels/<key>.png``; the converted label is written beside the raw one as
``.../labels/<key>_labelTrainIds.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clouds.data.conversion.runner import ConversionJob, LabelConverter
from clouds.data.conversion.spec import DatasetConversion, find_jobs_beside
from clouds.data.datasets.cityscapes_meta import CITYSCAPES_CLASSES, IGNORE_LABEL

__all__ = [
    "MAPILLARY_CLASSES",
    "MAPILLARY_COLORS",
    "MAPILLARY_CONVERSION",
    "MAPILLARY_READABLE_NAMES",
    "MAPILLARY_SPLITS",
    "MAPILLARY_TO_CITYSCAPES",
    "find_mapillary_jobs",
    "mapillary_to_train_id_lut",
]

MAPILLARY_SPLITS: tuple[str, ...] = ("training", "validation")

# The 66 Mapillary Vistas v1.2 classes (index = label value) and their palette colours.
_MAPILLARY_TABLE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("animal--bird", (165, 42, 42)),
    ("animal--ground-animal", (0, 192, 0)),
    ("construction--barrier--curb", (196, 196, 196)),
    ("construction--barrier--fence", (190, 153, 153)),
    ("construction--barrier--guard-rail", (180, 165, 180)),
    ("construction--barrier--other-barrier", (90, 120, 150)),
    ("construction--barrier--wall", (102, 102, 156)),
    ("construction--flat--bike-lane", (128, 64, 255)),
    ("construction--flat--crosswalk-plain", (140, 140, 200)),
    ("construction--flat--curb-cut", (170, 170, 170)),
    ("construction--flat--parking", (250, 170, 160)),
    ("construction--flat--pedestrian-area", (96, 96, 96)),
    ("construction--flat--rail-track", (230, 150, 140)),
    ("construction--flat--road", (128, 64, 128)),
    ("construction--flat--service-lane", (110, 110, 110)),
    ("construction--flat--sidewalk", (244, 35, 232)),
    ("construction--structure--bridge", (150, 100, 100)),
    ("construction--structure--building", (70, 70, 70)),
    ("construction--structure--tunnel", (150, 120, 90)),
    ("human--person", (220, 20, 60)),
    ("human--rider--bicyclist", (255, 0, 0)),
    ("human--rider--motorcyclist", (255, 0, 100)),
    ("human--rider--other-rider", (255, 0, 200)),
    ("marking--crosswalk-zebra", (200, 128, 128)),
    ("marking--general", (255, 255, 255)),
    ("nature--mountain", (64, 170, 64)),
    ("nature--sand", (230, 160, 50)),
    ("nature--sky", (70, 130, 180)),
    ("nature--snow", (190, 255, 255)),
    ("nature--terrain", (152, 251, 152)),
    ("nature--vegetation", (107, 142, 35)),
    ("nature--water", (0, 170, 30)),
    ("object--banner", (255, 255, 128)),
    ("object--bench", (250, 0, 30)),
    ("object--bike-rack", (100, 140, 180)),
    ("object--billboard", (220, 220, 220)),
    ("object--catch-basin", (220, 128, 128)),
    ("object--cctv-camera", (222, 40, 40)),
    ("object--fire-hydrant", (100, 170, 30)),
    ("object--junction-box", (40, 40, 40)),
    ("object--mailbox", (33, 33, 33)),
    ("object--manhole", (100, 128, 160)),
    ("object--phone-booth", (142, 0, 0)),
    ("object--pothole", (70, 100, 150)),
    ("object--street-light", (210, 170, 100)),
    ("object--support--pole", (153, 153, 153)),
    ("object--support--traffic-sign-frame", (128, 128, 128)),
    ("object--support--utility-pole", (0, 0, 80)),
    ("object--traffic-light", (250, 170, 30)),
    ("object--traffic-sign--back", (192, 192, 192)),
    ("object--traffic-sign--front", (220, 220, 0)),
    ("object--trash-can", (140, 140, 20)),
    ("object--vehicle--bicycle", (119, 11, 32)),
    ("object--vehicle--boat", (150, 0, 255)),
    ("object--vehicle--bus", (0, 60, 100)),
    ("object--vehicle--car", (0, 0, 142)),
    ("object--vehicle--caravan", (0, 0, 90)),
    ("object--vehicle--motorcycle", (0, 0, 230)),
    ("object--vehicle--on-rails", (0, 80, 100)),
    ("object--vehicle--other-vehicle", (128, 64, 64)),
    ("object--vehicle--trailer", (0, 0, 110)),
    ("object--vehicle--truck", (0, 0, 70)),
    ("object--vehicle--wheeled-slow", (0, 0, 192)),
    ("void--car-mount", (32, 32, 32)),
    ("void--ego-vehicle", (120, 10, 10)),
    ("void--unlabeled", (0, 0, 0)),
)
MAPILLARY_CLASSES: tuple[str, ...] = tuple(name for name, _ in _MAPILLARY_TABLE)
# The classes' "readable" names in the release's config_v1.2.json (same order).
MAPILLARY_READABLE_NAMES: tuple[str, ...] = (
    "Bird",
    "Ground Animal",
    "Curb",
    "Fence",
    "Guard Rail",
    "Barrier",
    "Wall",
    "Bike Lane",
    "Crosswalk - Plain",
    "Curb Cut",
    "Parking",
    "Pedestrian Area",
    "Rail Track",
    "Road",
    "Service Lane",
    "Sidewalk",
    "Bridge",
    "Building",
    "Tunnel",
    "Person",
    "Bicyclist",
    "Motorcyclist",
    "Other Rider",
    "Lane Marking - Crosswalk",
    "Lane Marking - General",
    "Mountain",
    "Sand",
    "Sky",
    "Snow",
    "Terrain",
    "Vegetation",
    "Water",
    "Banner",
    "Bench",
    "Bike Rack",
    "Billboard",
    "Catch Basin",
    "CCTV Camera",
    "Fire Hydrant",
    "Junction Box",
    "Mailbox",
    "Manhole",
    "Phone Booth",
    "Pothole",
    "Street Light",
    "Pole",
    "Traffic Sign Frame",
    "Utility Pole",
    "Traffic Light",
    "Traffic Sign (Back)",
    "Traffic Sign (Front)",
    "Trash Can",
    "Bicycle",
    "Boat",
    "Bus",
    "Car",
    "Caravan",
    "Motorcycle",
    "On Rails",
    "Other Vehicle",
    "Trailer",
    "Truck",
    "Wheeled Slow",
    "Car Mount",
    "Ego Vehicle",
    "Unlabeled",
)
MAPILLARY_COLORS: tuple[tuple[int, int, int], ...] = tuple(color for _, color in _MAPILLARY_TABLE)

# Mapillary class name -> Cityscapes train class name, the original CLOUDS's mapping (its
# tools/convert_datasets/mapillary.py, 25 classes); every class not listed is ignored.
MAPILLARY_TO_CITYSCAPES: dict[str, str] = {
    "construction--flat--road": "road",
    "marking--general": "road",
    "object--manhole": "road",
    "construction--barrier--curb": "sidewalk",
    "construction--flat--sidewalk": "sidewalk",
    "construction--structure--building": "building",
    "construction--barrier--wall": "wall",
    "construction--barrier--fence": "fence",
    "object--support--pole": "pole",
    "object--support--utility-pole": "pole",
    "object--traffic-light": "traffic light",
    "object--traffic-sign--front": "traffic sign",
    "nature--vegetation": "vegetation",
    "nature--terrain": "terrain",
    "nature--sky": "sky",
    "human--person": "person",
    "human--rider--bicyclist": "rider",
    "human--rider--motorcyclist": "rider",
    "human--rider--other-rider": "rider",
    "object--vehicle--car": "car",
    "object--vehicle--truck": "truck",
    "object--vehicle--bus": "bus",
    "object--vehicle--on-rails": "train",
    "object--vehicle--motorcycle": "motorcycle",
    "object--vehicle--bicycle": "bicycle",
}


def mapillary_to_train_id_lut() -> np.ndarray:
    """(256,) uint8 table: ``lut[mapillary_index]`` is the Cityscapes train ID (or 255)."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for index, name in enumerate(MAPILLARY_CLASSES):
        if name in MAPILLARY_TO_CITYSCAPES:
            lut[index] = CITYSCAPES_CLASSES.index(MAPILLARY_TO_CITYSCAPES[name])
    return lut


def find_mapillary_jobs(root: Path) -> list[ConversionJob]:
    """One job per ``{training,validation}/labels/<key>.png`` (earlier outputs excluded)."""
    return [
        job
        for split in MAPILLARY_SPLITS
        for job in find_jobs_beside(root / split / "labels", root / split / "images", ".jpg")
    ]


MAPILLARY_CONVERSION = DatasetConversion(
    name="mapillary",
    dirname="mapillary_vistas",
    required=("training/labels", "validation/labels"),
    find_jobs=find_mapillary_jobs,
    converter=LabelConverter(lut=mapillary_to_train_id_lut()),
)
