"""Miniature, seeded copies of every dataset for tests, demos and the quickstart.

``make_converted_toy_datasets(root)`` writes the toy tree and runs the label conversions,
so that ``register_all_datasets(root)`` can load every dataset from it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clouds.data.conversion import CONVERSIONS
from clouds.data.toy.datasets import TOY_DATASETS, TOY_SD_FOLDER, ToyDataset
from clouds.data.toy.render import DomainStyle, render_scene
from clouds.data.toy.scene import Scene, sample_scene

__all__ = [
    "TOY_DATASETS",
    "TOY_SD_FOLDER",
    "DomainStyle",
    "Scene",
    "ToyDataset",
    "make_converted_toy_datasets",
    "make_toy_datasets",
    "render_scene",
    "sample_scene",
    "toy_sample",
    "toy_scene",
]


def make_toy_datasets(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_images: int = 8,
    size: tuple[int, int] = (64, 128),
) -> Path:
    """Write raw toy copies of every dataset under ``root`` (labels not yet converted).

    Args:
        root: datasets root (the layout of ``$DETECTRON2_DATASETS``).
        seed: base seed; each image is a pure function of (seed, dataset, split, index).
        num_images: images per split of each dataset.
        size: (height, width) of every image.

    Returns:
        ``root`` as a Path.
    """
    height, width = size
    if num_images < 1 or height < 16 or width < 16:
        raise ValueError(
            f"Toy datasets need num_images >= 1 and a size of at least 16x16, got "
            f"num_images={num_images}, size={size}"
        )
    root = Path(root)
    for key, dataset in TOY_DATASETS.items():
        for split in dataset.splits:
            for index in range(num_images):
                rng = _sample_rng(key, split, index, seed)
                scene, image = toy_sample(key, rng, size)
                dataset.write(root, split, index, image, scene.label, rng)
    return root


def _sample_rng(key: str, split: str, index: int, seed: int) -> np.random.Generator:
    dataset_index = list(TOY_DATASETS).index(key)
    split_index = TOY_DATASETS[key].splits.index(split)
    return np.random.default_rng([seed, dataset_index, split_index, index])


def toy_sample(
    key: str, rng: np.random.Generator, size: tuple[int, int] = (64, 128)
) -> tuple[Scene, np.ndarray]:
    """Sample one scene of toy dataset ``key`` and render it in that dataset's style.

    Returns:
        The scene (its (H, W) train-ID label) and the (H, W, 3) uint8 RGB image.
    """
    style = TOY_DATASETS[key].style
    scene = sample_scene(rng, size[0], size[1], horizon_range=style.horizon_range)
    return scene, render_scene(scene, style, rng)


def toy_scene(
    key: str, split: str, index: int, *, seed: int = 0, size: tuple[int, int] = (64, 128)
) -> Scene:
    """The scene behind image ``index`` of ``split`` of toy dataset ``key`` (its ground truth)."""
    return toy_sample(key, _sample_rng(key, split, index, seed), size)[0]


def make_converted_toy_datasets(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_images: int = 8,
    size: tuple[int, int] = (64, 128),
) -> Path:
    """Write the toy tree under ``root`` and convert its labels, ready for registration.

    Afterwards ``clouds.data.datasets.register_all_datasets(root)`` loads every dataset
    (``gta5``, ``synthia``, ``cityscapes_{train,val}``, ``bdd_{train,val}``,
    ``mapillary_{train,val}``, ``acdc_{fog,night,rain,snow}_{train,val}``) and the
    unlabelled generated set ``sd_toy``.

    Args:
        root: datasets root to fill.
        seed: base seed of the toy images.
        num_images: images per split of each dataset.
        size: (height, width) of every image.

    Returns:
        ``root`` as a Path.

    Raises:
        RuntimeError: if a label could not be converted (the message lists the files).
    """
    root = make_toy_datasets(root, seed=seed, num_images=num_images, size=size)
    failures: list[str] = []
    for conversion in CONVERSIONS.values():
        failures += conversion.convert(root, nproc=1).failures
    if failures:
        raise RuntimeError("Toy label conversion failed:\n" + "\n".join(failures))
    return root
