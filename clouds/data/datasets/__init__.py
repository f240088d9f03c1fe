"""The project's named datasets (detectron2-style dicts + metadata on the 19 Cityscapes classes).

``register_all_datasets(root)`` registers ``gta5``, ``synthia``, ``cityscapes_{train,val}``,
``bdd_{train,val}``, ``mapillary_{train,val}``, ``acdc_{fog,night,rain,snow}_{train,val}``,
the unlabelled test splits ``cityscapes_test`` and ``acdc_{fog,night,rain,snow}_test``
and lets ``sd_<folder>`` resolve on demand; the DGVFM configs' ``dg_*`` datasets, in the original
DGVFM layouts, come from ``$DGVFM_DATASETS`` (:mod:`.register_dgvfm`). Nothing touches the disk until a dataset is
loaded. ``class_names(name)`` gives a dataset's classes, registering the built-in datasets under
the default root first when nothing has registered them (as detectron2 registers its built-in
datasets under ``$DETECTRON2_DATASETS`` on import). See datasets/README.md for the layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

from clouds.data.catalog import MetadataCatalog, dataset_class_names
from clouds.data.datasets.loading import DatasetNotFoundError
from clouds.data.datasets.register_acdc import ACDC_CONDITIONS, register_acdc
from clouds.data.datasets.register_bdd import register_bdd
from clouds.data.datasets.register_cityscapes import register_cityscapes
from clouds.data.datasets.register_dgvfm import DGVFM_DATASET_NAMES, register_dgvfm_datasets
from clouds.data.datasets.register_gta5 import register_gta5
from clouds.data.datasets.register_mapillary import register_mapillary
from clouds.data.datasets.register_sd import register_generated_sets
from clouds.data.datasets.register_synthia import register_synthia

__all__ = [
    "DATASET_NAMES",
    "TEST_SPLIT_NAMES",
    "DatasetNotFoundError",
    "class_names",
    "datasets_root",
    "register_all_datasets",
]

# Every fixed dataset name ``register_all_datasets`` registers (generated sets come on demand).
DATASET_NAMES: tuple[str, ...] = (
    "gta5",
    "gta5_all",
    "synthia",
    "cityscapes_train",
    "cityscapes_val",
    "bdd_train",
    "bdd_val",
    "mapillary_train",
    "mapillary_val",
    *(f"acdc_{c}_{s}" for c in ACDC_CONDITIONS for s in ("train", "val")),
    *DGVFM_DATASET_NAMES,
)
# The test splits without labels (for the benchmarks' servers: tools/make_submission.py).
TEST_SPLIT_NAMES: tuple[str, ...] = (
    "cityscapes_test",
    *(f"acdc_{c}_test" for c in ACDC_CONDITIONS),
)


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$DETECTRON2_DATASETS``, else ``datasets``."""
    if root is None:
        root = os.environ.get("DETECTRON2_DATASETS", "datasets")
    return Path(root)


def register_all_datasets(root: str | os.PathLike | None = None) -> Path:
    """Register every dataset under ``root`` (see :func:`datasets_root`; the ``dg_*`` ones under
    ``$DGVFM_DATASETS``, see :mod:`.register_dgvfm`); safe to call again.

    A second call replaces the earlier registrations, so it can point them at another root.

    Returns:
        The datasets root used.
    """
    path = datasets_root(root)
    for register in (
        register_gta5,
        register_synthia,
        register_cityscapes,
        register_bdd,
        register_mapillary,
        register_acdc,
        register_generated_sets,
    ):
        register(path)
    register_dgvfm_datasets(None if root is None or os.environ.get("DGVFM_DATASETS") else path)
    return path


def class_names(dataset_name: str) -> list[str]:
    """The ``stuff_classes`` of ``dataset_name``; a built-in dataset nothing has registered yet
    is registered first, with every other one, under :func:`datasets_root`.

    Raises:
        UnknownDatasetError: naming a dataset that has no class list.
    """
    if dataset_name in DATASET_NAMES and not MetadataCatalog.get(dataset_name).get("stuff_classes"):
        register_all_datasets()
    return dataset_class_names(dataset_name)
