"""Generated image sets: ``sd_<folder>`` is ``<root>/stable_diffusion/<folder>/images``.

The sets are unlabelled (``sem_seg_file_name`` None) and resolved on demand: asking the
catalog for ``sd_<folder>`` registers it, without listing any folder beforehand.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from clouds.data.catalog import DatasetCatalog
from clouds.data.datasets.loading import load_images, register_dataset

__all__ = [
    "GENERATED_PREFIX",
    "GeneratedSetResolver",
    "generated_set_dir",
    "register_generated_sets",
]

GENERATED_PREFIX = "sd_"


def generated_set_dir(datasets_root: Path, folder: str) -> Path:
    """Image folder of the generated set ``sd_<folder>``."""
    return datasets_root / "stable_diffusion" / folder / "images"


class GeneratedSetResolver:
    """Catalog resolver registering ``sd_<folder>`` names under one datasets root."""

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

    def __call__(self, name: str) -> bool:
        folder = name[len(GENERATED_PREFIX) :]
        if self.root is None or not name.startswith(GENERATED_PREFIX) or not folder:
            return False
        if "/" in folder or "\\" in folder or folder in (".", ".."):
            return False
        image_dir = generated_set_dir(self.root, folder)
        register_dataset(name, partial(load_images, name, image_dir), image_dir, None)
        self._resolved.add(name)
        return True


_RESOLVER = GeneratedSetResolver()


def register_generated_sets(datasets_root: Path) -> None:
    """Let the catalog resolve ``sd_<folder>`` under ``datasets_root`` on demand."""
    _RESOLVER.set_root(datasets_root)
    DatasetCatalog.add_resolver(_RESOLVER)
