"""What a dataset's label conversion needs: where its labels are and how to map them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clouds.data.conversion.runner import (
    ConversionJob,
    ConversionResult,
    LabelConverter,
    run_conversion,
)
from clouds.utils.io import is_temp_file

__all__ = ["DatasetConversion", "DatasetLayoutError", "TRAIN_ID_SUFFIX", "find_jobs_beside"]

# Converted GTA5 / SYNTHIA / Mapillary labels sit beside their raw label as <stem>_labelTrainIds.png.
TRAIN_ID_SUFFIX = "_labelTrainIds.png"


def find_jobs_beside(
    label_dir: Path, image_dir: Path, image_ext: str = ".png"
) -> list[ConversionJob]:
    """One job per ``<label_dir>/<stem>.png`` written beside it as ``<stem>_labelTrainIds.png``.

    The image of a label is ``<image_dir>/<stem><image_ext>``; outputs of earlier runs are
    excluded, and so are temporary files of a killed run. Jobs come sorted by label path.
    """
    return [
        ConversionJob(
            label=label,
            output=label.with_name(label.stem + TRAIN_ID_SUFFIX),
            image=image_dir / f"{label.stem}{image_ext}",
        )
        for label in sorted(label_dir.glob("*.png"))
        if not label.name.endswith(TRAIN_ID_SUFFIX) and not is_temp_file(label)
    ]


class DatasetLayoutError(FileNotFoundError):
    """A conversion root that does not hold the dataset's expected folders."""


@dataclass(frozen=True)
class DatasetConversion:
    """One dataset's conversion recipe.

    Attributes:
        name: dataset name used in messages ("gta", "cityscapes", ...).
        dirname: the dataset's folder under the datasets root (``$DETECTRON2_DATASETS``).
        required: sub-folders that identify the dataset root (all must exist).
        find_jobs: lists the jobs under a dataset root.
        converter: reader and lookup table for the raw labels.
    """

    name: str
    dirname: str
    required: tuple[str, ...]
    find_jobs: Callable[[Path], list[ConversionJob]]
    converter: LabelConverter

    def resolve_root(self, root: str | Path) -> Path:
        """The dataset folder: ``root`` itself or ``root/<dirname>``, whichever has the layout.

        Raises:
            DatasetLayoutError: naming the folders it looked for.
        """
        root = Path(root)
        for candidate in (root, root / self.dirname):
            if all((candidate / sub).is_dir() for sub in self.required):
                return candidate
        expected = ", ".join(self.required)
        raise DatasetLayoutError(
            f"No {self.name} dataset under {root} (looked for {expected} in {root} and in "
            f"{root / self.dirname}). See datasets/README.md for the expected layout."
        )

    def convert(self, root: str | Path, *, nproc: int = 1, force: bool = False) -> ConversionResult:
        """Convert every raw label of the dataset at ``root`` (see :meth:`resolve_root`).

        Raises:
            DatasetLayoutError: when the layout is missing or holds no label file.
        """
        dataset_root = self.resolve_root(root)
        jobs = self.find_jobs(dataset_root)
        if not jobs:
            raise DatasetLayoutError(
                f"No {self.name} label files found under {dataset_root}. See datasets/README.md "
                f"for the expected layout."
            )
        return run_conversion(
            jobs, self.converter, nproc=nproc, force=force, desc=f"{self.name} labels"
        )
