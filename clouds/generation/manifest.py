"""The JSONL manifest of a generated folder and the validity check of its images.

Each part ``K`` appends to its own ``manifest-part<K>.jsonl`` in the folder (so concurrent
parts never share a file), one JSON object per image::

    {"file": "im_7_p7.png", "prompt": "...", "prompt_index": 7, "seed": 123,
     "model_id": "...", "scheduler": "euler", "steps": 50, "guidance": 7.5,
     "height": 768, "width": 768, "dtype": "fp16"}

A line is appended with a single ``write`` on an ``O_APPEND`` descriptor after its image was
renamed into place; a run killed mid-line leaves at most one broken last line, which readers
skip, and a finished run rewrites its manifest atomically, sorted and without duplicates.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from PIL import Image

from clouds.utils.io import atomic_path

__all__ = ["Manifest", "SETTINGS_KEYS", "is_valid_image", "manifest_name", "read_manifests"]

logger = logging.getLogger(__name__)

SETTINGS_KEYS = (
    "prompt",
    "prompt_index",
    "seed",
    "model_id",
    "scheduler",
    "steps",
    "guidance",
    "height",
    "width",
)
"""Record keys that must match for an existing image to count as done by a rerun."""


def manifest_name(part: int) -> str:
    """File name of the manifest of part ``part``."""
    return f"manifest-part{part:03d}.jsonl"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("Skipping broken line %d of manifest %s", line_no, path)
            continue
        if isinstance(record, dict) and "file" in record:
            records.append(record)
    return records


def read_manifests(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every record of every part manifest in ``folder``, by image file name."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("manifest-part*.jsonl")):
        records.update(Manifest(path).records())
    return records


class Manifest:
    """The manifest file of one part: append records, then compact."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def records(self) -> dict[str, dict[str, Any]]:
        """The records of this file by image file name (the last of duplicates wins)."""
        if not self.path.is_file():
            return {}
        return {record["file"]: record for record in _read_jsonl(self.path)}

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line with a single write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def compact(self) -> None:
        """Rewrite the file atomically: one record per image, sorted by file name."""
        records = self.records()
        if not records:
            return
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for name in sorted(records):
                f.write(json.dumps(records[name], ensure_ascii=False, sort_keys=True) + "\n")


def is_valid_image(path: str | os.PathLike, size: tuple[int, int]) -> bool:
    """Whether ``path`` is a complete RGB PNG of ``size`` = (width, height).

    The file is checked (``verify``) and fully decoded, so a truncated file is invalid.
    """
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.load()
            return img.format == "PNG" and img.mode == "RGB" and img.size == tuple(size)
    except (OSError, SyntaxError, ValueError):
        return False
