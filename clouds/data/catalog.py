"""Named datasets and their metadata (detectron2's DatasetCatalog / MetadataCatalog interfaces).

A dataset is a function returning a list of detectron2-style dicts::

    {"file_name": str, "sem_seg_file_name": str | None, "height": int, "width": int,
     "image_id": str}

Metadata is a namespace with ``stuff_classes``, ``stuff_colors``, ``ignore_label``,
``evaluator_type`` and dataset-specific fields. Registering stores functions only; nothing
touches the disk until a dataset is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

__all__ = [
    "DatasetCatalog",
    "Metadata",
    "MetadataCatalog",
    "UnknownDatasetError",
    "dataset_class_names",
]


class UnknownDatasetError(KeyError):
    """A dataset name that nothing registered."""

    def __str__(self) -> str:
        return self.args[0]


class _DatasetCatalog:
    def __init__(self) -> None:
        self._loaders: dict[str, Callable[[], list[dict]]] = {}
        self._resolvers: list[Callable[[str], bool]] = []

    def register(self, name: str, loader: Callable[[], list[dict]]) -> None:
        """Register ``loader`` under ``name``; registering the same name twice is an error."""
        if name in self._loaders and self._loaders[name] is not loader:
            raise ValueError(f"Dataset {name!r} is already registered")
        self._loaders[name] = loader

    def add_resolver(self, resolver: Callable[[str], bool]) -> None:
        """Add a function that may register an unknown name on demand (returns True if it did)."""
        if resolver not in self._resolvers:
            self._resolvers.append(resolver)

    def __contains__(self, name: str) -> bool:
        return name in self._loaders or any(r(name) for r in self._resolvers)

    def get(self, name: str) -> list[dict]:
        """Load dataset ``name`` (errors from the loader name the missing path)."""
        if name not in self:
            known = ", ".join(sorted(self._loaders)) or "none"
            raise UnknownDatasetError(
                f"Dataset {name!r} is not registered. Known datasets: {known}. Generated sets "
                f"register as sd_<folder> from datasets/stable_diffusion/<folder>/images."
            )
        return self._loaders[name]()

    def list(self) -> list[str]:
        return sorted(self._loaders)

    def remove(self, name: str) -> None:
        self._loaders.pop(name, None)


class Metadata(SimpleNamespace):
    """Attributes of one dataset; ``get`` returns a default for missing ones."""

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def set(self, **kwargs: Any) -> Metadata:
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self


class _MetadataCatalog:
    def __init__(self) -> None:
        self._metadata: dict[str, Metadata] = {}

    def get(self, name: str) -> Metadata:
        """The metadata of ``name``, created empty on first access."""
        if name not in self._metadata:
            DatasetCatalog.__contains__(name)  # let resolvers register on-demand datasets
        return self._metadata.setdefault(name, Metadata(name=name))

    def remove(self, name: str) -> None:
        self._metadata.pop(name, None)


DatasetCatalog = _DatasetCatalog()
MetadataCatalog = _MetadataCatalog()


def dataset_class_names(dataset_name: str) -> list[str]:
    """The ``stuff_classes`` of a registered dataset.

    Raises:
        UnknownDatasetError: naming the dataset when its metadata has no class list.
    """
    names = MetadataCatalog.get(dataset_name).get("stuff_classes")
    if not names:
        raise UnknownDatasetError(
            f"Dataset {dataset_name!r} has no 'stuff_classes' in its metadata: register it first "
            "(clouds.data.datasets.register_all_datasets) or set MetadataCatalog.get(name)"
            ".stuff_classes"
        )
    return list(names)
