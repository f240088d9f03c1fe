"""Parallel, idempotent conversion of raw label maps to 19-class train-ID PNGs.

A dataset module lists :class:`ConversionJob` s (raw label, its image, the output path) and
a :class:`LabelConverter` (how to read the raw label and the value lookup table). The
runner converts every job with a process pool, skips outputs that are newer than their
source and decode whole, writes atomically (removing the temporary files a killed run left),
and collects the files it could not convert instead of stopping.
"""

from __future__ import annotations

import enum
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from clouds.data.datasets.cityscapes_meta import IGNORE_LABEL
from clouds.utils.io import (
    DiskFullError,
    ImageReadError,
    image_read_errors,
    read_image_hw,
    read_label,
    remove_temp_files,
    write_png_atomic,
)

__all__ = [
    "ConversionJob",
    "ConversionResult",
    "LabelConverter",
    "LabelReader",
    "run_conversion",
]


class LabelReader(enum.Enum):
    """How a raw label file stores its class values."""

    PIL = "pil"  # 8-bit grey or palette PNG: the pixel value / palette index is the class
    FIRST_CHANNEL_16BIT = "first_channel_16bit"  # 16-bit multi-channel PNG, class in channel 0


@dataclass(frozen=True)
class ConversionJob:
    """One raw label to convert; ``image`` (if given) must have the same size."""

    label: Path
    output: Path
    image: Path | None = None


@dataclass(frozen=True)
class LabelConverter:
    """Maps raw label values to train IDs through ``lut`` (values beyond it become 255)."""

    lut: np.ndarray
    reader: LabelReader = LabelReader.PIL

    def read(self, path: Path) -> np.ndarray:
        """The raw (H, W) class values stored in ``path``.

        Raises:
            ImageReadError: naming ``path`` if missing, undecodable or a colour image.
        """
        if self.reader is LabelReader.PIL:
            return _read_single_channel(path)
        if not path.is_file():
            raise ImageReadError(f"Label file not found: {path}")
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ImageReadError(f"Cannot decode label map {path}")
        # OpenCV orders channels BGR(A): the file's first channel is the last colour channel.
        return array if array.ndim == 2 else array[:, :, 2 if array.shape[2] >= 3 else 0]

    def convert(self, raw: np.ndarray) -> np.ndarray:
        """(H, W) raw values -> (H, W) uint8 train IDs."""
        out = np.full(raw.shape, IGNORE_LABEL, dtype=np.uint8)
        known = (raw >= 0) & (raw < len(self.lut))
        out[known] = self.lut[raw[known]]
        return out


@dataclass
class ConversionResult:
    """What a conversion run did; ``failures`` holds one message per file it could not convert."""

    converted: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


_SINGLE_CHANNEL_MODES = ("L", "P", "I", "I;16")


def _read_single_channel(path: Path) -> np.ndarray:
    """(H, W) values of a grey or palette label PNG (palette PNGs give their indices)."""
    with image_read_errors(path, label=True), Image.open(path) as img:
        mode = img.mode
    if mode not in _SINGLE_CHANNEL_MODES:
        raise ImageReadError(
            f"Label map {path} is a {mode} image; expected a grey or palette PNG of class IDs "
            f"(colour-coded labels cannot be converted)"
        )
    return read_label(path)


def _is_up_to_date(job: ConversionJob) -> bool:
    """The output exists, is not older than its label and decodes whole (a file cut short or
    corrupted by a crash is converted again)."""
    try:
        if job.output.stat().st_mtime < job.label.stat().st_mtime:
            return False
        with Image.open(job.output) as img:
            img.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def _convert_one(job: ConversionJob, converter: LabelConverter, force: bool) -> tuple[str, str]:
    """Convert one job; returns ("converted" | "skipped" | "failed", message)."""
    if not force and _is_up_to_date(job):
        return "skipped", ""
    try:
        raw = converter.read(job.label)
        if job.image is not None and job.image.exists():
            height, width = read_image_hw(job.image)
            if raw.shape[:2] != (height, width):
                raise ImageReadError(
                    f"Label map {job.label} has size {raw.shape[0]}x{raw.shape[1]} (HxW) but its "
                    f"image {job.image} is {height}x{width}"
                )
        write_png_atomic(converter.convert(raw), job.output)
    except DiskFullError:
        raise  # every later file would fail too: stop the conversion
    except (ImageReadError, OSError, ValueError) as e:
        return "failed", str(e)
    return "converted", ""


def run_conversion(
    jobs: Sequence[ConversionJob],
    converter: LabelConverter,
    *,
    nproc: int = 1,
    force: bool = False,
    desc: str = "converting labels",
) -> ConversionResult:
    """Convert every job (in ``nproc`` processes), keeping on after files that fail.

    Args:
        jobs: labels to convert.
        converter: reader and lookup table of the dataset.
        nproc: worker processes; 1 converts in this process.
        force: re-convert outputs that are already newer than their source label.
        desc: progress-bar title.
    """
    result = ConversionResult()
    for folder in sorted({job.output.parent for job in jobs}):
        remove_temp_files(folder)  # left by a conversion killed while writing
    work = partial(_convert_one, converter=converter, force=force)
    with tqdm(total=len(jobs), desc=desc, unit="file") as bar:
        if nproc <= 1 or len(jobs) <= 1:
            outcomes = map(work, jobs)
            pool = None
        else:
            pool = multiprocessing.Pool(nproc)
            outcomes = pool.imap_unordered(work, jobs, chunksize=max(1, len(jobs) // (8 * nproc)))
        try:
            for status, message in outcomes:
                if status == "converted":
                    result.converted += 1
                elif status == "skipped":
                    result.skipped += 1
                else:
                    result.failures.append(message)
                bar.update()
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    result.failures.sort()
    return result
