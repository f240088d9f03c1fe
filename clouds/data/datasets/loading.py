"""Shared loading code of the dataset registrations: file pairing, sizes, clear errors.

Loaders run only when a dataset is asked for (``DatasetCatalog.get``); registering one only
stores a function and metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.data.datasets.cityscapes_meta import cityscapes_metadata
from clouds.utils.io import ImageReadError, read_image_hw

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetNotFoundError",
    "PairedLayout",
    "convert_hint",
    "image_hw",
    "listing_unreadable_images",
    "load_image_label_pairs",
    "load_images",
    "register_dataset",
    "register_image_label_pairs",
    "unlabelled_dicts",
]

README = "datasets/README.md"
_LIST_UNREADABLE: ContextVar[bool] = ContextVar("list_unreadable_images", default=False)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder, image or label that is missing or empty; the message names the path."""

    def __str__(self) -> str:
        return self.args[0]


@contextlib.contextmanager
def listing_unreadable_images() -> Iterator[None]:
    """Dataset loaders called inside list an image whose header cannot be read with height
    and width 0 instead of raising, so that a scan of every file
    (:mod:`clouds.data.data_check`) reaches and reports all of them."""
    token = _LIST_UNREADABLE.set(True)
    try:
        yield
    finally:
        _LIST_UNREADABLE.reset(token)


def image_hw(path: Path) -> tuple[int, int]:
    """(height, width) of an image, read from its header only ((0, 0) for an unreadable one
    inside :func:`listing_unreadable_images`).

    Raises:
        DatasetNotFoundError: naming ``path`` if it cannot be opened as an image.
    """
    try:
        return read_image_hw(path)
    except ImageReadError as e:
        if _LIST_UNREADABLE.get():
            return 0, 0
        raise DatasetNotFoundError(f"Cannot read the image header of {path}: {e.__cause__}") from e


def _list_images(name: str, image_dir: Path, pattern: str) -> list[Path]:
    if not image_dir.is_dir():
        raise DatasetNotFoundError(
            f"Dataset {name!r}: folder {image_dir} does not exist. See {README} for where "
            f"{name} comes from and how to lay it out under $DETECTRON2_DATASETS."
        )
    images = sorted(
        p
        for p in image_dir.glob(pattern)
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not p.name.startswith(".")  # temporary files of atomic writes in progress
    )
    if not images:
        raise DatasetNotFoundError(
            f"Dataset {name!r}: folder {image_dir} holds no images matching {pattern!r}. See "
            f"{README} for the expected layout."
        )
    return images


def load_image_label_pairs(
    name: str,
    image_dir: Path,
    pattern: str,
    label_of: Callable[[Path], Path],
    image_id_of: Callable[[Path], str],
    missing_hint: str = "",
    exclude_ids: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Detectron2-style dicts of every image under ``image_dir`` and its label.

    Args:
        name: dataset name (for messages).
        image_dir: folder searched with ``pattern`` (a glob relative to it).
        label_of: the train-ID label path of an image.
        image_id_of: the id of an image (its file stem without dataset suffixes).
        missing_hint: appended to the missing-label message (e.g. the conversion command).
        exclude_ids: ids of images left out of the dataset.

    Raises:
        DatasetNotFoundError: if the folder is missing or empty, or an image has no label.
    """
    images = [
        i for i in _list_images(name, image_dir, pattern) if image_id_of(i) not in exclude_ids
    ]
    labels = [label_of(image) for image in images]
    missing = [(image, label) for image, label in zip(images, labels) if not label.is_file()]
    if missing:
        image, label = missing[0]
        raise DatasetNotFoundError(
            f"Dataset {name!r}: {len(missing)} of {len(images)} images have no label file, "
            f"e.g. {label} for {image}. {missing_hint}See {README}."
        )
    dicts = []
    for image, label in zip(images, labels):
        height, width = image_hw(image)
        dicts.append(
            {
                "file_name": str(image),
                "sem_seg_file_name": str(label),
                "height": height,
                "width": width,
                "image_id": image_id_of(image),
            }
        )
    return dicts


def unlabelled_dicts(images: Iterable[Path]) -> list[dict[str, Any]]:
    """Detectron2-style dicts of ``images`` without labels (``sem_seg_file_name`` None)."""
    dicts = []
    for image in images:
        height, width = image_hw(image)
        dicts.append(
            {
                "file_name": str(image),
                "sem_seg_file_name": None,
                "height": height,
                "width": width,
                "image_id": image.stem,
            }
        )
    return dicts


def load_images(name: str, image_dir: Path) -> list[dict[str, Any]]:
    """Detectron2-style dicts of an unlabelled image folder (``sem_seg_file_name`` None).

    Raises:
        DatasetNotFoundError: if the folder is missing or holds no image.
    """
    return unlabelled_dicts(_list_images(name, image_dir, "*"))


def register_unlabelled_images(name: str, image_dir: Path, pattern: str) -> None:
    """Register ``name`` as the images ``<image_dir>/<pattern>``, without labels (a test split
    whose labels are kept by the benchmark's server)."""
    loader = partial(_unlabelled_listing, name, image_dir, pattern)
    register_dataset(name, loader, image_dir, None)


def _unlabelled_listing(name: str, image_dir: Path, pattern: str) -> list[dict[str, Any]]:
    return unlabelled_dicts(_list_images(name, image_dir, pattern))


def register_dataset(
    name: str,
    loader: Callable[[], list[dict[str, Any]]],
    image_root: Path,
    sem_seg_root: Path | None,
) -> None:
    """Register ``loader`` under ``name`` (replacing an earlier registration) with metadata."""
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(
        image_root=str(image_root),
        sem_seg_root=None if sem_seg_root is None else str(sem_seg_root),
        **cityscapes_metadata(),
    )


@dataclass(frozen=True)
class PairedLayout:
    """Where the label of an image lies in a labelled dataset split.

    An image ``<image_dir>/<sub>/<id><image_suffix>.<ext>`` (``<sub>`` empty for a flat folder)
    has the id ``<id>`` and the label ``<label_dir>/<sub>/<id><label_suffix>``.
    """

    image_dir: Path
    label_dir: Path
    label_suffix: str
    image_suffix: str = ""

    def image_id(self, image: Path) -> str:
        """The image's file stem without ``image_suffix``."""
        return image.stem.removesuffix(self.image_suffix)

    def label_of(self, image: Path) -> Path:
        """The label path of an image found under ``image_dir``."""
        sub = image.parent.relative_to(self.image_dir)
        return self.label_dir / sub / f"{self.image_id(image)}{self.label_suffix}"


def convert_hint(tool: str, root: Path) -> str:
    """Missing-label hint naming the conversion command of ``tools/convert_datasets/<tool>.py``."""
    return f"Convert the labels with `python tools/convert_datasets/{tool}.py {root}`. "


def register_image_label_pairs(
    name: str,
    layout: PairedLayout,
    pattern: str,
    *,
    missing_hint: str = "",
    exclude_ids: frozenset[str] = frozenset(),
) -> None:
    """Register ``name`` as the images ``<layout.image_dir>/<pattern>`` (but those whose id is in
    ``exclude_ids``) and their labels.

    Nothing is read until the dataset is loaded (see :func:`load_image_label_pairs`).
    """
    loader = partial(
        load_image_label_pairs,
        name,
        layout.image_dir,
        pattern,
        label_of=layout.label_of,
        image_id_of=layout.image_id,
        missing_hint=missing_hint,
        exclude_ids=exclude_ids,
    )
    register_dataset(name, loader, layout.image_dir, layout.label_dir)
