"""Generated image sets under ``<root>/stable_diffusion``, named as the original CLOUDS names them.

The original (clouds/data/datasets/register_sd_semantic.py at bac4305) registers every folder
``F`` of ``stable_diffusion/`` as dataset ``"sd_" + F.replace("sd_", "")``: the folder
``sd_llama70b_v2`` is the dataset ``sd_llama70b_v2``, and so is a folder ``llama70b_v2``. Its
images are the ``.png`` files of ``F/images``. An optional ``F/labels`` folder
(``<image stem>_labelTrainIds.png``) is accepted and not read: generated images are always
pseudo-labelled in joint training, as in the original, where pseudo-labels replace those labels.

The datasets are unlabelled (``sem_seg_file_name`` None) and resolved on demand: asking the
catalog for ``sd_<x>`` looks for the folder(s) that give that name. When none does, the name
registers on ``stable_diffusion/sd_<x>`` so that loading it names the missing folder.

When ``F/train_dict.json`` exists (the list the original writes on its first load, and may come
with a downloaded set), the dataset is its images in its order, as in the original; otherwise
the ``.png`` files sorted by name.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.catalog import DatasetCatalog
from clouds.data.datasets.loading import (
    DatasetNotFoundError,
    register_dataset,
    unlabelled_dicts,
)

__all__ = [
    "GENERATED_PREFIX",
    "GeneratedSetResolver",
    "generated_set_name",
    "load_generated_set",
    "register_generated_sets",
]

GENERATED_PREFIX = "sd_"
ORIGINAL_LIST = "train_dict.json"


def generated_set_name(folder: str) -> str:
    """The dataset name of folder ``folder`` of ``stable_diffusion/``, by the original's rule."""
    return GENERATED_PREFIX + folder.replace(GENERATED_PREFIX, "")


def _listed_images(name: str, folder: Path) -> list[Path]:
    """The images of ``folder/train_dict.json``, in its order, under ``folder/images``."""
    listing = folder / ORIGINAL_LIST
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
        files = [Path(entry["file_name"]).name for entry in entries]
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DatasetNotFoundError(
            f"Dataset {name!r}: cannot read {listing} (a list of dicts with file_name, as the "
            f"original CLOUDS writes it): {e}. Delete it to use every .png of "
            f"{folder / 'images'} instead."
        ) from e
    images = [folder / "images" / f for f in files]
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"Dataset {name!r}: {listing} lists {len(missing)} image(s) missing from "
            f"{folder / 'images'}, e.g. {missing[0].name}. Delete {listing} to use the .png "
            f"files present instead."
        )
    return images


def _png_images(name: str, folder: Path) -> list[Path]:
    image_dir = folder / "images"
    if not image_dir.is_dir():
        raise DatasetNotFoundError(
            f"Dataset {name!r}: folder {image_dir} does not exist. Generate it with "
            f"`python generate_txt_im.py --folder {folder.name} ...` or see datasets/README.md."
        )
    # ``.png`` only, as the original; dot files are temporary files of writes in progress
    images = sorted(p for p in image_dir.glob("*.png") if not p.name.startswith("."))
    if not images:
        raise DatasetNotFoundError(f"Dataset {name!r}: folder {image_dir} holds no .png image")
    return images


def load_generated_set(name: str, folder: Path) -> list[dict[str, Any]]:
    """Detectron2-style dicts of the generated set in ``folder`` (``sem_seg_file_name`` None).

    Raises:
        DatasetNotFoundError: if the folder is missing or holds no image, or its
            train_dict.json is unreadable or lists a missing image.
    """
    if (folder / ORIGINAL_LIST).is_file():
        images = _listed_images(name, folder)
    else:
        images = _png_images(name, folder)
    return unlabelled_dicts(images)


class GeneratedSetResolver:
    """Catalog resolver registering ``sd_<x>`` names under one datasets root."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self._resolved: set[str] = set()

    def set_root(self, datasets_root: Path) -> None:
        """Resolve future names under ``datasets_root``; forget names resolved under another."""
        if datasets_root != self.root:
            for name in self._resolved:
                DatasetCatalog.remove(name)
            self._resolved.clear()
        self.root = datasets_root

    def _folder_of(self, name: str) -> Path:
        """The folder whose original name is ``name`` (``stable_diffusion/<name>`` if none).

        Raises:
            ValueError: when two folders give the same name (the original fails on them too).
        """
        assert self.root is not None
        sets_root = self.root / "stable_diffusion"
        matches = (
            sorted(
                d for d in sets_root.iterdir() if d.is_dir() and generated_set_name(d.name) == name
            )
            if sets_root.is_dir()
            else []
        )
        if len(matches) > 1:
            raise ValueError(
                f"Folders {', '.join(str(m) for m in matches)} all register as dataset {name!r} "
                f"(folder F is dataset 'sd_' + F without 'sd_', as in the original CLOUDS); "
                f"rename all but one"
            )
        return matches[0] if matches else sets_root / name

    def __call__(self, name: str) -> bool:
        if self.root is None or not name.startswith(GENERATED_PREFIX):
            return False
        rest = name[len(GENERATED_PREFIX) :]
        # a name the rule cannot give (it strips every "sd_"), or a path, is not a generated set
        if not rest or GENERATED_PREFIX in rest or any(c in rest for c in "/\\") or ".." in rest:
            return False
        folder = self._folder_of(name)
        loader = partial(load_generated_set, name, folder)
        register_dataset(name, loader, folder / "images", None)
        self._resolved.add(name)
        return True


_RESOLVER = GeneratedSetResolver()


def register_generated_sets(datasets_root: Path) -> None:
    """Let the catalog resolve ``sd_<x>`` under ``datasets_root`` on demand."""
    _RESOLVER.set_root(datasets_root)
    DatasetCatalog.add_resolver(_RESOLVER)
