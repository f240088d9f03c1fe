"""File helpers shared by every tool: atomic writes and image reads with clear errors."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "PROJECT_ROOT",
    "DiskFullError",
    "atomic_path",
    "is_temp_file",
    "remove_temp_files",
    "image_read_errors",
    "read_image",
    "read_image_hw",
    "read_label",
    "write_png_atomic",
    "ImageReadError",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout (configs/, prompts, tools/)


class ImageReadError(OSError):
    """An image or label file that is missing, unreadable or of the wrong size."""


class DiskFullError(OSError):
    """A file could not be written because its disk (or quota) is full; names the file."""


# Temporary files of atomic_path: ".<name>.<12 hex>.tmp<suffix>" beside the target.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[^.]+)?$")
# torch.save reports a failed write as a RuntimeError of its zip writer, without errno.
_WRITE_FAILED_MESSAGES = ("file write failed", "No space left on device")


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (e.g. left by a killed run)."""
    return bool(_TEMP_NAME.match(Path(path).name))


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` (not recursive), as a
    killed writer leaves them; returns the deleted paths. Only for folders no other process is
    writing to."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if is_temp_file(p) and p.is_file()]
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return removed


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, DiskFullError):  # already names its file
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _WRITE_FAILED_MESSAGES)


def _disk_full_error(path: Path, exc: BaseException) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        errno.ENOSPC,
        f"Disk full: could not write {path} ({free} on its disk; {exc}). Free some space or "
        f"write to another disk; the previous version of the file, if any, is unchanged",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Readers never see a half-written file; on error the temporary file is removed.

    Raises:
        DiskFullError: naming ``path`` when the disk or quota is full while it is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stay on the final file. os.open with 0o666
    # gives the permissions of a normally created file (the umask applies).
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as e:
        if _disk_full(e):
            raise _disk_full_error(path, e) from e
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if _disk_full(e):
            raise _disk_full_error(path, e) from e
        raise


def write_png_atomic(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write an (H, W) or (H, W, 3) uint8/uint16 array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


@contextlib.contextmanager
def image_read_errors(path: str | os.PathLike, *, label: bool = False) -> Iterator[None]:
    """Turn the errors of opening / decoding ``path`` with PIL into an :class:`ImageReadError`.

    The message names ``path`` as an image (or, with ``label``, a label map) file that is
    missing or cannot be decoded.
    """
    file, kind = ("Label file", "label map") if label else ("Image file", "image")
    try:
        yield
    except FileNotFoundError as e:
        raise ImageReadError(f"{file} not found: {path}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"Cannot decode {kind} {path}: {e}") from e


def read_image(path: str | os.PathLike, format: str = "RGB") -> np.ndarray:
    """Read an image as (H, W, 3) uint8 in ``format`` ("RGB" or "BGR").

    Raises:
        ImageReadError: naming ``path`` when it is missing or not a decodable image.
    """
    with image_read_errors(path), Image.open(path) as img:
        img.load()
        array = np.asarray(img.convert("RGB"))
    return array[:, :, ::-1].copy() if format == "BGR" else array


def read_image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image, read from its header only.

    Raises:
        ImageReadError: naming ``path`` when it is missing or not an image.
    """
    with image_read_errors(path), Image.open(path) as img:
        width, height = img.size
    return height, width


def read_label(
    path: str | os.PathLike,
    expected_hw: tuple[int, int] | None = None,
    *,
    num_classes: int | None = None,
    ignore_label: int = 255,
) -> np.ndarray:
    """Read a label map as (H, W) array keeping its integer values (8- or 16-bit).

    Args:
        num_classes: when given, every value must be a class id below it or ``ignore_label``.

    Raises:
        ImageReadError: naming ``path`` when missing, undecodable, a colour (multi-channel)
            image, not of ``expected_hw``, or holding values outside the class range.
    """
    with image_read_errors(path, label=True), Image.open(path) as img:
        img.load()
        array = np.asarray(img)
    if array.ndim == 3:
        raise ImageReadError(
            f"Label map {path} has {array.shape[2]} channels (a colour image); expected one "
            f"channel of class ids. Convert the dataset's labels first (datasets/README.md)"
        )
    if num_classes is not None:
        bad = (array >= num_classes) & (array != ignore_label)
        if bad.any():
            values = np.unique(array[bad])[:10].tolist()
            raise ImageReadError(
                f"Label map {path} holds values {values} outside the class ids 0..{num_classes - 1}"
                f" and the ignore label {ignore_label}: is it converted to train ids, and does "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES match the dataset?"
            )
    if expected_hw is not None and tuple(array.shape[:2]) != tuple(expected_hw):
        raise ImageReadError(
            f"Label map {path} has size {array.shape[0]}x{array.shape[1]} (HxW) but its image "
            f"is {expected_hw[0]}x{expected_hw[1]}"
        )
    return array
