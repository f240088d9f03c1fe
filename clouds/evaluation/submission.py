"""Test-server submissions of Cityscapes and ACDC: file names, label encoding, zip, checks.

Both servers take one zip of single-channel 8-bit PNGs, one per test image, at the size of the
input image:

- Cityscapes (cityscapes-dataset.com, scored by cityscapesScripts' pixel-level evaluation,
  which finds the prediction of ``{city}_{seq}_{frame}`` by that prefix): Cityscapes *label IDs*
  (road = 7, ..., bicycle = 33), named ``{city}_{seq}_{frame}.png``.
- ACDC (acdc.vision.ee.ethz.ch/submit): *train IDs* (road = 0, ..., bicycle = 18), named as the
  input image (``<sequence>_frame_<n>_rgb_anon.png``), the four conditions side by side.

Files lie at the top of the zip. :func:`check_submission` checks a zip against these rules.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clouds.config import ConfigError
from clouds.data.datasets.cityscapes_meta import NUM_CLASSES, train_id_to_label_id_lut
from clouds.utils.io import atomic_path

__all__ = [
    "ACDC",
    "CITYSCAPES",
    "SubmissionFormat",
    "SubmissionZip",
    "check_submission",
    "format_of",
]

_CITYSCAPES_STEM = re.compile(r"^(?P<key>[^_/]+_\d{6}_\d{6})_leftImg8bit$")
_ACDC_STEM = re.compile(r"^.+_rgb_anon$")


@dataclass(frozen=True)
class SubmissionFormat:
    """What one server expects.

    Attributes:
        name: the benchmark ("cityscapes", "acdc").
        label_ids: True for Cityscapes label IDs, False for train IDs.
        zip_name: the zip written for it.
    """

    name: str
    label_ids: bool
    zip_name: str

    def file_name(self, image_path: str | os.PathLike) -> str:
        """The prediction's file name for the test image at ``image_path``.

        Raises:
            ValueError: naming the image when its name is not the benchmark's.
        """
        stem = Path(image_path).stem
        if self.name == "cityscapes":
            match = _CITYSCAPES_STEM.match(stem)
            if match is None:
                raise ValueError(
                    f"{image_path}: a Cityscapes test image is named "
                    f"{{city}}_{{seq:06d}}_{{frame:06d}}_leftImg8bit.png"
                )
            return f"{match.group('key')}.png"
        if _ACDC_STEM.match(stem) is None:
            raise ValueError(f"{image_path}: an ACDC test image is named <...>_rgb_anon.png")
        return f"{stem}.png"

    def allowed_values(self) -> frozenset[int]:
        """The pixel values a prediction may hold."""
        if self.label_ids:
            return frozenset(int(v) for v in train_id_to_label_id_lut()[:NUM_CLASSES])
        return frozenset(range(NUM_CLASSES))

    def encode(self, train_ids: np.ndarray) -> np.ndarray:
        """(H, W) predicted train IDs in [0, 19) -> (H, W) uint8 in the server's encoding."""
        if train_ids.min(initial=0) < 0 or train_ids.max(initial=0) >= NUM_CLASSES:
            raise ValueError(f"Predicted train IDs must lie in [0, {NUM_CLASSES})")
        if self.label_ids:
            return train_id_to_label_id_lut()[train_ids].astype(np.uint8)
        return train_ids.astype(np.uint8)


CITYSCAPES = SubmissionFormat("cityscapes", label_ids=True, zip_name="cityscapes_test.zip")
ACDC = SubmissionFormat("acdc", label_ids=False, zip_name="acdc_test.zip")
_DATASET_FORMATS = (
    (re.compile(r"^(?:dg_)?cityscapes_test$"), CITYSCAPES),
    (re.compile(r"^(?:dg_)?acdc_(?:fog|night|rain|snow)_test$"), ACDC),
)


def format_of(dataset_name: str) -> SubmissionFormat:
    """The server format of a registered test split.

    Raises:
        ConfigError: naming the dataset when no server takes it.
    """
    for pattern, fmt in _DATASET_FORMATS:
        if pattern.match(dataset_name):
            return fmt
    raise ConfigError(
        f"No test server for dataset {dataset_name!r}; submissions are written for "
        f"cityscapes_test and acdc_{{fog,night,rain,snow}}_test"
    )


class SubmissionZip:
    """Predictions written into one zip, atomically (the zip appears when ``close`` runs).

    Usage: ``with SubmissionZip(path, fmt) as out: out.add(image_path, train_ids)``.
    """

    def __init__(self, path: str | os.PathLike, fmt: SubmissionFormat) -> None:
        self.path = Path(path)
        self.format = fmt
        self.names: set[str] = set()
        self._atomic = atomic_path(self.path)
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> SubmissionZip:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._zip = zipfile.ZipFile(self._atomic.__enter__(), "w", zipfile.ZIP_DEFLATED)
        return self

    def add(self, image_path: str | os.PathLike, train_ids: np.ndarray) -> str:
        """Add the prediction ((H, W) train IDs) of ``image_path``; returns its name in the zip.

        Raises:
            ValueError: when two images give the same file name.
        """
        assert self._zip is not None, "use SubmissionZip as a context manager"
        name = self.format.file_name(image_path)
        if name in self.names:
            raise ValueError(f"{image_path}: a prediction named {name} is already in {self.path}")
        buffer = io.BytesIO()
        Image.fromarray(self.format.encode(train_ids), mode="L").save(buffer, format="PNG")
        self._zip.writestr(name, buffer.getvalue())
        self.names.add(name)
        return name

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        assert self._zip is not None
        self._zip.close()
        self._atomic.__exit__(exc_type, exc, tb)


def check_submission(
    path: str | os.PathLike,
    fmt: SubmissionFormat,
    image_paths: Iterable[str | os.PathLike],
    image_sizes: Mapping[str, tuple[int, int]],
) -> None:
    """Check the zip at ``path`` against ``fmt``'s rules for the test images ``image_paths``:
    one file per image, named as the server expects, at the top of the zip; each a single-
    channel 8-bit PNG of the image's (H, W) (``image_sizes[str(image_path)]``) holding only the
    allowed values.

    Raises:
        ValueError: listing every broken rule (at most 10 files named per rule).
    """
    expected = {fmt.file_name(p): image_sizes[str(p)] for p in image_paths}
    problems: list[str] = []
    allowed = fmt.allowed_values()
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        if len(names) != len(expected):
            problems.append(f"{len(names)} files for {len(expected)} test images")
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        if missing:
            problems.append(f"missing predictions: {', '.join(missing[:10])}")
        if extra:
            problems.append(f"unexpected files: {', '.join(extra[:10])}")
        for name in sorted(set(names) & set(expected)):
            with Image.open(io.BytesIO(archive.read(name))) as image:
                if image.format != "PNG" or image.mode != "L":
                    problems.append(f"{name}: {image.format} {image.mode}, not a PNG of mode L")
                    continue
                array = np.asarray(image)
            height, width = expected[name]
            if array.shape != (height, width):
                problems.append(
                    f"{name}: {array.shape[0]}x{array.shape[1]}, image {height}x{width}"
                )
            bad = sorted(set(np.unique(array).tolist()) - allowed)
            if bad:
                problems.append(f"{name}: values {bad[:10]} outside the allowed IDs")
    if problems:
        raise ValueError(
            f"Submission {path} breaks the {fmt.name} rules:\n  " + "\n  ".join(problems)
        )
