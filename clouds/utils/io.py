"""File helpers shared by every tool: atomic writes and image reads with clear errors."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "atomic_path",
    "image_read_errors",
    "read_image",
    "read_image_hw",
    "read_label",
    "write_png_atomic",
    "ImageReadError",
]


class ImageReadError(OSError):
    """An image or label file that is missing, unreadable or of the wrong size."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Readers never see a half-written file; on error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stay on the final file. os.open with 0o666
    # gives the permissions of a normally created file (the umask applies).
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
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


def read_label(path: str | os.PathLike, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label map as (H, W) array keeping its integer values (8- or 16-bit).

    Raises:
        ImageReadError: naming ``path`` when missing, undecodable or not of ``expected_hw``.
    """
    with image_read_errors(path, label=True), Image.open(path) as img:
        img.load()
        array = np.asarray(img)
    if array.ndim == 3:
        array = array[:, :, 0]
    if expected_hw is not None and tuple(array.shape[:2]) != tuple(expected_hw):
        raise ImageReadError(
            f"Label map {path} has size {array.shape[0]}x{array.shape[1]} (HxW) but its image "
            f"is {expected_hw[0]}x{expected_hw[1]}"
        )
    return array
