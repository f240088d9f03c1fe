"""Toy copies of every dataset: their real folder layouts, file names and raw label encodings.

Each :class:`ToyDataset` has a :class:`DomainStyle` (its domain shift), the splits the real
dataset ships with labels, and a writer that stores one rendered sample the way the real
dataset does: GTA5 palette PNGs and Cityscapes grey PNGs of Cityscapes *label IDs*, SYNTHIA
16-bit PNGs with the class in the first channel, Mapillary palette PNGs of its 66 class
indices, BDD100K and ACDC PNGs of train IDs, and unlabelled generated images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from clouds.data.conversion.mapillary import MAPILLARY_CLASSES, MAPILLARY_COLORS
from clouds.data.datasets.cityscapes_meta import (
    CITYSCAPES_LABELS,
    IGNORE_LABEL,
    train_id_to_label_id_lut,
)
from clouds.data.toy.render import DomainStyle
from clouds.utils.io import atomic_path, write_png_atomic

__all__ = ["TOY_DATASETS", "TOY_SD_FOLDER", "ToyDataset"]

# Folder name of the toy generated set: <root>/stable_diffusion/toy/images (dataset sd_toy).
TOY_SD_FOLDER = "toy"

# (root, split, index, image (H, W, 3) uint8 RGB, train IDs (H, W) uint8, rng) -> None
Writer = Callable[[Path, str, int, np.ndarray, np.ndarray, np.random.Generator], None]


@dataclass(frozen=True)
class ToyDataset:
    """One toy dataset: its look, its labelled splits and how it stores a sample."""

    style: DomainStyle
    splits: tuple[str, ...]
    write: Writer


def _save_jpeg(image: np.ndarray, path: Path, quality: int = 90) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=quality)


def _save_palette(indices: np.ndarray, colors: np.ndarray, path: Path) -> None:
    """Save (H, W) uint8 indices as a palette PNG with (N, 3) uint8 ``colors``."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colors)] = colors
    img = Image.fromarray(indices)
    img.putpalette(palette.ravel().tolist())  # turns the grey image into a palette image
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _cityscapes_label_ids(label: np.ndarray) -> np.ndarray:
    """Train IDs -> Cityscapes label IDs; the ignored ego-vehicle hood becomes 1 (ego vehicle)."""
    ids = train_id_to_label_id_lut()[label]
    ids[label == IGNORE_LABEL] = 1
    return ids


_CITYSCAPES_PALETTE = np.array(
    [label.color for label in sorted(CITYSCAPES_LABELS, key=lambda x: x.id) if label.id >= 0],
    dtype=np.uint8,
)


def _write_gta(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    name = f"{index + 1:05d}.png"
    write_png_atomic(image, root / "gta" / "images" / name)
    _save_palette(_cityscapes_label_ids(label), _CITYSCAPES_PALETTE, root / "gta" / "labels" / name)


_CITIES = {
    "train": ("aachen", "bochum", "bremen"),
    "val": ("frankfurt", "lindau", "munster"),
}


def _write_cityscapes(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    city = _CITIES[split][index % len(_CITIES[split])]
    base = f"{city}_{index:06d}_000019"
    write_png_atomic(
        image, root / "cityscapes" / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png"
    )
    gt = root / "cityscapes" / "gtFine" / split / city / f"{base}_gtFine_labelIds.png"
    write_png_atomic(_cityscapes_label_ids(label), gt)


# Cityscapes train ID -> SYNTHIA class ID (terrain, truck and train use SYNTHIA's own IDs).
_TRAIN_TO_SYNTHIA = np.array([3, 4, 2, 21, 5, 7, 15, 9, 6, 16, 1, 10, 17, 8, 18, 19, 20, 12, 11])


def _write_synthia(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    name = f"{index:07d}.png"
    write_png_atomic(image, root / "synthia" / "RGB" / name)
    classes = np.zeros(label.shape, dtype=np.uint16)  # 0 = void
    known = label != IGNORE_LABEL
    classes[known] = _TRAIN_TO_SYNTHIA[label[known]]
    # Second channel: instance IDs; any values that differ from the class IDs will do here.
    instances = np.where(known, (classes.astype(np.uint32) * 257 + 11) % 65536, 0)
    # OpenCV writes BGR: channel 2 is the file's first (class) channel, channel 1 the instance.
    bgr = np.stack([np.zeros_like(classes), instances.astype(np.uint16), classes], axis=2)
    with atomic_path(root / "synthia" / "GT" / "LABELS" / name) as tmp:
        if not cv2.imwrite(tmp, bgr):
            raise OSError(f"Cannot write {tmp}")


def _bdd_name(rng: np.random.Generator) -> str:
    return "-".join("".join(rng.choice(list("0123456789abcdef"), size=8)) for _ in range(2))


def _write_bdd(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    name = _bdd_name(rng)
    _save_jpeg(image, root / "bdd100k" / "images" / "10k" / split / f"{name}.jpg")
    write_png_atomic(
        label, root / "bdd100k" / "labels" / "sem_seg" / "masks" / split / f"{name}.png"
    )


_MAPILLARY_OF_TRAIN_ID = (
    "construction--flat--road",
    "construction--flat--sidewalk",
    "construction--structure--building",
    "construction--barrier--wall",
    "construction--barrier--fence",
    "object--support--pole",
    "object--traffic-light",
    "object--traffic-sign--front",
    "nature--vegetation",
    "nature--terrain",
    "nature--sky",
    "human--person",
    "human--rider--bicyclist",
    "object--vehicle--car",
    "object--vehicle--truck",
    "object--vehicle--bus",
    "object--vehicle--on-rails",
    "object--vehicle--motorcycle",
    "object--vehicle--bicycle",
)
_TRAIN_TO_MAPILLARY = np.array([MAPILLARY_CLASSES.index(n) for n in _MAPILLARY_OF_TRAIN_ID])
_MAPILLARY_EGO = MAPILLARY_CLASSES.index("void--ego-vehicle")
_MAPILLARY_SPLITS = {"train": "training", "val": "validation"}
_KEY_CHARS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _write_mapillary(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    key = "".join(rng.choice(_KEY_CHARS, size=22))
    folder = root / "mapillary_vistas" / _MAPILLARY_SPLITS[split]
    _save_jpeg(image, folder / "images" / f"{key}.jpg")
    indices = np.full(label.shape, _MAPILLARY_EGO, dtype=np.uint8)
    known = label != IGNORE_LABEL
    indices[known] = _TRAIN_TO_MAPILLARY[label[known]]
    _save_palette(
        indices, np.array(MAPILLARY_COLORS, dtype=np.uint8), folder / "labels" / f"{key}.png"
    )


def _acdc_writer(condition: str) -> Writer:
    def write(
        root: Path,
        split: str,
        index: int,
        image: np.ndarray,
        label: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        seq = f"GOPR{400 + index // 4:04d}"
        base = f"{seq}_frame_{index:06d}"
        write_png_atomic(
            image, root / "acdc" / "rgb_anon" / condition / split / seq / f"{base}_rgb_anon.png"
        )
        write_png_atomic(
            label, root / "acdc" / "gt" / condition / split / seq / f"{base}_gt_labelTrainIds.png"
        )

    return write


def _write_generated(
    root: Path,
    split: str,
    index: int,
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
) -> None:
    write_png_atomic(
        image, root / "stable_diffusion" / TOY_SD_FOLDER / "images" / f"{index:05d}.png"
    )


_ACDC_STYLE = {"tint": (0.95, 1.0, 1.02), "saturation": 0.7, "noise": 0.04, "texture_period": 4}

# Every toy dataset; the key is only used to seed it. Styles set the domain shift.
TOY_DATASETS: dict[str, ToyDataset] = {
    "gta": ToyDataset(
        DomainStyle(saturation=1.3, contrast=1.15, noise=0.015, texture_period=4),
        ("train",),
        _write_gta,
    ),
    "synthia": ToyDataset(
        DomainStyle(
            hue_shift=25.0,
            saturation=0.9,
            brightness=1.1,
            texture_period=6,
            noise=0.03,
            horizon_range=(0.3, 0.42),
        ),
        ("train",),
        _write_synthia,
    ),
    "cityscapes": ToyDataset(
        DomainStyle(
            hue_shift=-10.0,
            saturation=0.7,
            contrast=0.9,
            tint=(0.95, 1.05, 0.95),
            noise=0.04,
            texture_period=4,
        ),
        ("train", "val"),
        _write_cityscapes,
    ),
    "bdd": ToyDataset(
        DomainStyle(
            hue_shift=12.0,
            saturation=0.85,
            brightness=0.8,
            tint=(0.9, 0.95, 1.1),
            noise=0.06,
            texture_period=5,
            blur=0.5,
        ),
        ("train", "val"),
        _write_bdd,
    ),
    "mapillary": ToyDataset(
        DomainStyle(
            hue_shift=-20.0,
            saturation=1.1,
            brightness=1.15,
            tint=(1.08, 1.0, 0.9),
            noise=0.05,
            texture_period=3,
            horizon_range=(0.35, 0.6),
        ),
        ("train", "val"),
        _write_mapillary,
    ),
    **{
        f"acdc_{condition}": ToyDataset(
            DomainStyle(weather=condition, **_ACDC_STYLE), ("train", "val"), _acdc_writer(condition)
        )
        for condition in ("fog", "night", "rain", "snow")
    },
    "stable_diffusion": ToyDataset(
        DomainStyle(hue_shift=15.0, saturation=1.2, noise=0.01, blur=0.8, texture_period=5),
        ("train",),
        _write_generated,
    ),
}
