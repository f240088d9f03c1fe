"""Data loaders: training (infinite, ``DATALOADER.SAMPLER_TRAIN``, seeded per sample) and test.

Training batches are lists of mapped dicts (detectron2 style): ``SOLVER.IMS_PER_BATCH /
world_size`` per process, or ``SOLVER.IMS_PER_GPU`` per process (:func:`images_per_rank`). The
training sampler yields ``(index, seed)``; the dataset maps the image with the global torch,
NumPy and Python ``random`` generators seeded with ``seed`` (their states restored after), so
augmentation does not depend on worker count, prefetching or where a run was resumed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import DatasetCatalog
from clouds.data.mappers import SemSegTestMapper, SemSegTrainMapper
from clouds.data.samplers import (
    InferenceSampler,
    RareClassSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    WeightedMultiDatasetSampler,
)
from clouds.data.vfm_pipelines import MAPPER_NAME as VFM_MAPPER_NAME
from clouds.data.vfm_pipelines import VFMTestMapper, VFMTrainMapper
from clouds.utils.io import atomic_path, read_label

__all__ = [
    "MappedDataset",
    "build_test_loader",
    "build_test_mapper",
    "build_train_loader",
    "build_train_mapper",
    "TrainSampler",
    "build_train_sampler",
    "class_pixel_counts",
    "dataset_factors",
    "get_dataset_dicts",
    "is_generated",
    "trivial_batch_collator",
]

logger = logging.getLogger(__name__)


def trivial_batch_collator(batch: list[dict]) -> list[dict]:
    """Keep a batch as the list of dicts the model takes."""
    return batch


def get_dataset_dicts(names: Sequence[str], *, filter_empty: bool = False) -> list[list[dict]]:
    """Load each named dataset (one list per name); each dict gets "dataset_name"."""
    out = []
    for name in names:
        dicts = [dict(d, dataset_name=name) for d in DatasetCatalog.get(name)]
        if filter_empty:
            dicts = [d for d in dicts if not d.get("sem_seg_file_name") or _has_labels(d)]
        if not dicts:
            raise ValueError(f"Dataset {name!r} has no images")
        out.append(dicts)
    return out


def _has_labels(d: dict, ignore_label: int = 255) -> bool:
    return bool((read_label(d["sem_seg_file_name"]) != ignore_label).any())


@contextlib.contextmanager
def _generators_seeded(seed: int) -> Iterator[None]:
    """The global torch (CPU), NumPy and Python ``random`` generators seeded by ``seed`` inside,
    as detectron2's ``seed_all_rng(seed)`` seeds them, their states restored after (the CLOUDS
    augmentation draws from NumPy and ``random`` as detectron2 does, the DGVFM pipelines from
    NumPy as mmcv / mmseg do, our own options from torch)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


class MappedDataset(Dataset):
    """Map-style dataset over dataset dicts, mapped on access.

    A key is an index or an ``(index, seed)`` pair; with a seed the mapper runs with the global
    generators seeded by it (:func:`_generators_seeded`), so the sample is reproducible. An
    ``(index, seed, rare_class)`` key (:class:`RareClassSampler`) also hands the class to the
    mapper as "rare_class".
    """

    def __init__(self, dicts: list[dict], mapper: Callable[[dict], dict]) -> None:
        self.dicts = dicts
        self.mapper = mapper

    def __len__(self) -> int:
        return len(self.dicts)

    def __getitem__(self, key: int | tuple[int, ...]) -> dict:
        if isinstance(key, tuple):
            index, seed, *rare_class = key
            d = self.dicts[index]
            if rare_class:
                d = dict(d, rare_class=rare_class[0])
            with _generators_seeded(seed):
                return self.mapper(d)
        return self.mapper(self.dicts[key])


def class_pixel_counts(
    dicts: list[dict], *, num_classes: int, cache_file: str | None = None
) -> np.ndarray:
    """(N, K) pixel count of each train class in each image (0 for unlabelled images).

    Reads every label once (progress bar) and caches the table as JSON in ``cache_file``.
    """
    keys = [d.get("sem_seg_file_name") or "" for d in dicts]
    if cache_file and os.path.isfile(cache_file):
        with open(cache_file) as f:
            cached = json.load(f)
        if cached.get("files") == keys and cached.get("num_classes") == num_classes:
            return np.asarray(cached["counts"], dtype=np.int64).reshape(len(keys), num_classes)
    counts = np.zeros((len(dicts), num_classes), dtype=np.int64)
    for i, key in enumerate(tqdm(keys, desc="class statistics", disable=len(keys) < 100)):
        if key:
            label = read_label(key).astype(np.int64).ravel()
            counts[i] = np.bincount(label[label < num_classes], minlength=num_classes)
    if cache_file:
        with atomic_path(cache_file) as tmp, open(tmp, "w") as f:
            json.dump({"files": keys, "num_classes": num_classes, "counts": counts.tolist()}, f)
    return counts


def is_generated(dicts: list[dict]) -> bool:
    """Whether a training dataset is a generated (unlabelled) set: no image has a label file."""
    return not any(d.get("sem_seg_file_name") for d in dicts)


def dataset_factors(cfg: CfgNode, datasets: list[list[dict]]) -> list[float]:
    """Sampling factor of each training dataset: ``DATASETS.TARGET_FACTOR`` for a generated
    set, ``DATASETS.SOURCE_FACTOR`` for a labelled one (the original's repeat factors)."""
    return [
        cfg.DATASETS.TARGET_FACTOR if is_generated(d) else cfg.DATASETS.SOURCE_FACTOR
        for d in datasets
    ]


TrainSampler = (
    TrainingSampler | RepeatFactorTrainingSampler | WeightedMultiDatasetSampler | RareClassSampler
)


def build_train_sampler(
    cfg: CfgNode, datasets: list[list[dict]], *, rank: int, world_size: int
) -> TrainSampler:
    """The sampler named by ``DATALOADER.SAMPLER_TRAIN`` over the concatenated ``datasets``.

    - "TrainingSampler" (detectron2's): every image once per shuffled epoch.
    - "WeightedTrainingSampler" (the original's joint training): detectron2's repeat-factor
      sampler, each image repeated by its dataset's factor (:func:`dataset_factors`), so a
      dataset's share of the draws is ``factor x size`` over the sum of them.
    - "WeightedMultiDatasetSampler" (ours): picks a dataset with probability ``factor / sum``,
      whatever its size, then one of its images.
    - "RareClassSampler": rare-class sampling with ``DATALOADER.RARE_CLASS_TEMPERATURE``.
    """
    name = cfg.DATALOADER.SAMPLER_TRAIN
    topology = {"seed": cfg.SEED, "rank": rank, "world_size": world_size}
    if name == "TrainingSampler":
        return TrainingSampler(size=sum(len(d) for d in datasets), **topology)
    if name == "WeightedTrainingSampler":
        factors = dataset_factors(cfg, datasets)
        logger.info("Repeat factors per dataset: %s", dict(zip(cfg.DATASETS.TRAIN, factors)))
        per_image = [f for f, d in zip(factors, datasets) for _ in d]
        return RepeatFactorTrainingSampler(repeat_factors=per_image, **topology)
    if name == "WeightedMultiDatasetSampler":
        return WeightedMultiDatasetSampler(
            dataset_sizes=[len(d) for d in datasets],
            weights=dataset_factors(cfg, datasets),
            **topology,
        )
    if name == "RareClassSampler":
        flat = [d for ds in datasets for d in ds]
        counts = class_pixel_counts(
            flat,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            cache_file=os.path.join(cfg.OUTPUT_DIR, "rare_class_stats.json"),
        )
        return RareClassSampler(
            class_pixel_counts=counts,
            temperature=cfg.DATALOADER.RARE_CLASS_TEMPERATURE,
            min_pixels=cfg.DATALOADER.RARE_CLASS_MIN_PIXELS,
            **topology,
        )
    raise ConfigError(
        "DATALOADER.SAMPLER_TRAIN must be TrainingSampler, WeightedTrainingSampler, "
        f"WeightedMultiDatasetSampler or RareClassSampler, got {name!r}"
    )


def images_per_rank(cfg: CfgNode, world_size: int) -> int:
    """Images each of ``world_size`` processes trains on per iteration.

    Exactly one of two keys sets the batch: ``SOLVER.IMS_PER_BATCH``, the total over all
    processes (detectron2, the CLOUDS configs: split evenly), or ``SOLVER.IMS_PER_GPU``, the
    batch of each process (mmseg's per-GPU ``batch_size``, the DGVFM configs: N processes train
    on N times it). The other one must be 0.

    Raises:
        ConfigError: both or neither key set, a negative value, or a total that the processes
            cannot share evenly.
    """
    total, per_process = cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.IMS_PER_GPU
    if total < 0 or per_process < 0:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH={total} and SOLVER.IMS_PER_GPU={per_process} must be >= 0"
        )
    if total > 0 and per_process > 0:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH={total} (total over all processes) and SOLVER.IMS_PER_GPU="
            f"{per_process} (per process) are both set: set the one you mean and the other to 0 "
            f"(the DGVFM configs set IMS_PER_GPU as mmseg's per-GPU batch_size, the CLOUDS "
            f"configs IMS_PER_BATCH as detectron2's total)"
        )
    if per_process > 0:
        return per_process
    if total == 0:
        raise ConfigError(
            "Set the training batch: SOLVER.IMS_PER_BATCH (total over all processes) or "
            "SOLVER.IMS_PER_GPU (per process)"
        )
    if total % world_size != 0 or total < world_size:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH={total} must be a positive multiple of the number of "
            f"processes ({world_size}); or set SOLVER.IMS_PER_BATCH 0 and SOLVER.IMS_PER_GPU "
            f"to the images of each process"
        )
    return total // world_size


def build_train_mapper(cfg: CfgNode) -> Callable[[dict], dict]:
    """The training mapper of ``INPUT.DATASET_MAPPER_NAME`` ("vfm_mmseg": DGVFM's pipeline)."""
    if cfg.INPUT.DATASET_MAPPER_NAME == VFM_MAPPER_NAME:
        return VFMTrainMapper.from_config(cfg)
    return SemSegTrainMapper.from_config(cfg)


def build_test_mapper(cfg: CfgNode, dataset_name: str) -> Callable[[dict], dict]:
    """The test mapper of ``dataset_name`` for ``INPUT.DATASET_MAPPER_NAME``."""
    if cfg.INPUT.DATASET_MAPPER_NAME == VFM_MAPPER_NAME:
        return VFMTestMapper.from_config(cfg, dataset_name)
    return SemSegTestMapper.from_config(cfg)


def build_train_loader(
    cfg: CfgNode,
    *,
    rank: int = 0,
    world_size: int = 1,
    mapper: Callable[[dict], dict] | None = None,
) -> DataLoader:
    """Infinite training loader over ``DATASETS.TRAIN``; its sampler is ``loader.sampler``."""
    datasets = get_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    )
    sampler = build_train_sampler(cfg, datasets, rank=rank, world_size=world_size)
    dataset = MappedDataset([d for ds in datasets for d in ds], mapper or build_train_mapper(cfg))
    workers = cfg.DATALOADER.NUM_WORKERS
    per_rank = images_per_rank(cfg, world_size)
    logger.info(
        "Training batch: %d image(s) per process x %d process(es) = %d per iteration",
        per_rank,
        world_size,
        per_rank * world_size,
    )
    return DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=workers,
        collate_fn=trivial_batch_collator,
        persistent_workers=False,
        pin_memory=False,
        prefetch_factor=2 if workers > 0 else None,
    )


def build_test_loader(
    cfg: CfgNode,
    dataset_name: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    mapper: Callable[[dict], dict] | None = None,
) -> DataLoader:
    """Batch-1 loader over ``dataset_name``; each rank gets a disjoint shard, no padding."""
    dicts = get_dataset_dicts([dataset_name])[0]
    dataset = MappedDataset(dicts, mapper or build_test_mapper(cfg, dataset_name))
    return DataLoader(
        dataset,
        batch_size=1,
        sampler=InferenceSampler(len(dataset), rank=rank, world_size=world_size),
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=trivial_batch_collator,
    )
