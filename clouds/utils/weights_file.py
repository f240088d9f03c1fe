"""The one reader of weight and checkpoint files: every file the project loads weights from
(MODEL.WEIGHTS, resumed checkpoints, CLIP, VFM and SAM weights, Stable Diffusion folders) is
checked and read here, so a missing, truncated, corrupt or wrong-format file always ends in one
line naming the config key (or flag), the file, what was seen and what to do.

:func:`check_weights_file` looks only at what can be read at once (well under a second for
any size): the first bytes (zip, pickle protocol, safetensors header, web page, Git LFS
pointer), the zip directory at the end of a PyTorch file (gone when a download was cut short)
and the tensor extents a safetensors header declares (larger than the file when cut short).
The preflight of every command runs it before a model is built. :func:`load_torch_weights`
and :func:`load_safetensors_weights` check, then read (``weights_only``: tensors and plain
containers only) and turn any failure into the same kind of message; torch's own advice to
read a file with ``weights_only=False`` is never passed on. :func:`reading_weights` does the
same around a third-party reader that takes the path itself (open_clip, diffusers).

Only the standard library is imported at module level, so commands check files before their
heavy imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from clouds.cli_errors import UserFileError

__all__ = [
    "CHECKPOINT_TODO",
    "SAFETENSORS",
    "TORCH",
    "TORCH_OR_SAFETENSORS",
    "WEIGHT_FILE_NAMES",
    "OPEN_CLIP_FORMATS",
    "PickledObjectsError",
    "WeightsFileError",
    "WeightsFileInfo",
    "check_weights_file",
    "human_size",
    "load_safetensors_weights",
    "load_torch_weights",
    "pipeline_weight_files",
    "reading_weights",
    "resolve_weights_path",
]

# Formats a caller accepts (check_weights_file(formats=...)).
TORCH = ("torch zip", "torch legacy")  # torch.save (zip since torch 1.6, and the older format)
SAFETENSORS = ("safetensors",)
TORCH_OR_SAFETENSORS = TORCH + SAFETENSORS
OPEN_CLIP_FORMATS = TORCH_OR_SAFETENSORS + ("numpy zip",)  # what open_clip reads from a file

# file names looked up inside a weights folder (MODEL.VFM.WEIGHTS), in this order
WEIGHT_FILE_NAMES = (
    "model.safetensors",
    "open_clip_model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
    "model.pth",
)

_FORMAT_NAMES = {
    "torch zip": "a PyTorch file (torch.save: .pt/.pth/.ckpt/.bin)",
    "torch legacy": "a PyTorch file (torch.save: .pt/.pth/.ckpt/.bin)",
    "safetensors": "a .safetensors file",
    "numpy zip": "a NumPy .npz archive",
}
# torch.save's legacy format starts with the pickle (protocol 2) of this number
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors refuses larger headers too
_DEFAULT_TODO = "Download it again (INSTALL.md lists every weight file, its source and size)"
# What to do about a bad checkpoint file (MODEL.WEIGHTS, --resume).
CHECKPOINT_TODO = (
    "Point it to a complete checkpoint: model_final.ckpt of the earlier stage, or a released "
    "file downloaded again (INSTALL.md)"
)


class WeightsFileError(ValueError):
    """A weight file that is truncated, corrupt or of the wrong format; the message (one line)
    names the config key, the file, what was seen and what to do."""

    def __str__(self) -> str:
        return self.args[0]


class PickledObjectsError(WeightsFileError):
    """A PyTorch file holding pickled Python objects besides tensors and plain containers
    (refused by the weights-only reader); ``refused`` names the first such object."""

    def __init__(self, message: str, refused: str = "") -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class WeightsFileInfo:
    """What :func:`check_weights_file` found: the file, its format and its size in bytes."""

    path: str
    format: str
    size: int


def human_size(size: int) -> str:
    """``size`` bytes as "0 bytes", "812 bytes", "1.5 kB", "312.4 MB", "1.40 GB" (10^3 units)."""
    if size < 1000:
        return f"{size} bytes"
    for unit, scale in (("kB", 1e3), ("MB", 1e6)):
        if size < scale * 1000:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1e9:.2f} GB"


def _todo(todo: str) -> str:
    return todo or _DEFAULT_TODO


def _safetensors_problem(path: str, size: int) -> str | None:
    """Why a file that starts like safetensors is not a whole one (None when it is)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if 8 + header_len > size:
            return (
                f"is truncated: its safetensors header alone needs {human_size(8 + header_len)}, "
                f"the file has {human_size(size)}"
            )
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "has a corrupt safetensors header (not valid JSON)"
    try:
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"] or [0]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return "has a corrupt safetensors header (tensor entries without data_offsets)"
    expected = 8 + header_len + max(ends)
    if expected > size:
        return (
            f"is truncated: its header describes {human_size(expected)} of tensors, the file has "
            f"{human_size(size)}"
        )
    return None


def _zip_format(path: str, size: int) -> tuple[str | None, str | None]:
    """(format, problem) of a file that starts like a zip archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None, (
            f"is truncated or corrupt: the zip directory that ends a PyTorch file is missing "
            f"({human_size(size)} seen)"
        )
    end = max((i.header_offset + i.compress_size for i in infos), default=0)
    if end > size:
        return None, "is truncated: its zip directory describes more data than the file holds"
    names = [i.filename for i in infos]
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch zip", None
    if names and all(n.endswith(".npy") for n in names):
        return "numpy zip", None
    return None, (
        f"is a zip archive but not a PyTorch file (no data.pkl inside; holds {len(names)} "
        f"files, e.g. {', '.join(names[:3]) or 'none'}): unpack it or pick the weights file itself"
    )


def _detect(path: str, size: int) -> tuple[str | None, str | None]:
    """(format, None) for a file that looks whole, else (None, what is wrong with it)."""
    if size == 0:
        return None, "is empty (0 bytes; an interrupted download?)"
    with open(path, "rb") as f:
        head = f.read(512)  # a tar header ends at 512
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_format(path, size)
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2..5
        if head.startswith(_LEGACY_MAGIC):
            return "torch legacy", None
        if _LEGACY_MAGIC.startswith(head):  # cut inside torch's magic number
            return None, f"is truncated ({human_size(size)} seen)"
        return None, (
            f"is a plain Python pickle (protocol {head[1]}), not a file written by torch.save"
        )
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len < _MAX_SAFETENSORS_HEADER:
            problem = _safetensors_problem(path, size)
            return ("safetensors", None) if problem is None else (None, problem)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<!--")):
        return None, (
            f"is a web page ({human_size(size)}), not weights: the download saved an HTML page "
            f"(a login, error or redirect page) instead of the file"
        )
    if text.startswith(b"version https://git-lfs"):
        return None, (
            f"is a Git LFS pointer ({human_size(size)}), not the weights: fetch the file itself "
            f"(`git lfs pull` in its repository, or download it)"
        )
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return None, "is a compressed archive (gzip / tar), not weights: unpack it first"
    return None, (
        f"is not a weights file of a known format ({human_size(size)}, starts with {head[:8]!r})"
    )


def _expected(formats: Sequence[str]) -> str:
    return " or ".join(dict.fromkeys(_FORMAT_NAMES.get(f, f) for f in formats))


def check_weights_file(
    path: str | os.PathLike,
    *,
    key: str,
    todo: str = "",
    formats: Sequence[str] = TORCH_OR_SAFETENSORS,
) -> WeightsFileInfo:
    """Check at once (first bytes, zip directory, safetensors header) that ``path`` is a whole
    weights file of one of ``formats``.

    Args:
        key: the config key or flag that names the file (shown first in the message).
        todo: what to do about a bad file (default: download it again, see INSTALL.md).
        formats: the accepted formats (:data:`TORCH`, :data:`SAFETENSORS`, "numpy zip").

    Raises:
        UserFileError: the file does not exist.
        WeightsFileError: a folder, an empty, truncated, corrupt or foreign file, or a format
            outside ``formats``; one line naming ``key`` and ``path``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserFileError(f"{key} file not found: {path}" + (f". {todo}." if todo else ""))
    if os.path.isdir(path):
        raise WeightsFileError(
            f"{key} {path} is a folder; expected {_expected(formats)}. Point {key} to the file."
        )
    try:
        size = os.path.getsize(path)
        fmt, problem = _detect(path, size)
    except OSError as e:
        raise WeightsFileError(
            f"{key} {path} cannot be read ({e.strerror or type(e).__name__}): check its "
            f"permissions."
        ) from e
    if problem is not None:
        raise WeightsFileError(f"{key} {path} {problem}. {_todo(todo)}.")
    assert fmt is not None
    if fmt not in formats:
        raise WeightsFileError(
            f"{key} {path} is {_FORMAT_NAMES[fmt]} ({human_size(size)}); {key} reads "
            f"{_expected(formats)}."
        )
    return WeightsFileInfo(path, fmt, size)


def _refused_global(error: BaseException) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return found.group(1) if found else ""


def _first_sentence(error: BaseException) -> str:
    """The start of ``error``'s message, without torch's advice on unsafe loading."""
    text = str(error).split("\n", 1)[0].split(". ", 1)[0].strip()
    if not text or "weights_only" in text or len(text) > 120:
        return type(error).__name__
    return f"{type(error).__name__}: {text}"


def _read_failure(path: str, key: str, todo: str, error: BaseException) -> WeightsFileError:
    """The one-line error for a file whose reading failed with ``error``."""
    refused = _refused_global(error)
    # torch's own classes are all allowed: refusing one means its name was cut (a truncated file)
    pickled_objects = "Unsupported global" in str(error) and not refused.startswith("torch.")
    if isinstance(error, pickle.UnpicklingError) and pickled_objects:
        what = f" (first: {refused})" if refused else ""
        return PickledObjectsError(
            f"{key} {path} holds pickled Python objects besides tensors and plain containers"
            f"{what}, so it is not a weights file of a known format (reading it could run "
            f"arbitrary code). {_todo(todo)}.",
            refused,
        )
    size = human_size(os.path.getsize(path)) if os.path.isfile(path) else "?"
    return WeightsFileError(
        f"{key} {path} is truncated or corrupt ({_first_sentence(error)}; {size} seen). "
        f"{_todo(todo)}."
    )


def load_torch_weights(
    path: str | os.PathLike,
    *,
    key: str,
    todo: str = "",
    mmap: bool = False,
    trusted_pickle_module: ModuleType | None = None,
) -> Any:
    """The object ``torch.save`` wrote to ``path``, read onto the CPU after
    :func:`check_weights_file`. Tensors and plain containers only, unless
    ``trusted_pickle_module`` (an unpickler whose ``find_class`` decides what may be built) is
    given for a file the user declared trusted. ``mmap`` maps tensor storage instead of reading
    it (the legacy format is read whole).

    Raises:
        UserFileError / WeightsFileError: as :func:`check_weights_file`; reading failures too.
        PickledObjectsError: other pickled objects, refused (names the first one).
    """
    import torch

    path = os.fspath(path)
    info = check_weights_file(path, key=key, todo=todo, formats=TORCH)
    mmap = mmap and info.format == "torch zip"
    try:
        if trusted_pickle_module is not None:
            return torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=trusted_pickle_module
            )
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:
        raise _read_failure(path, key, todo, e) from e


def load_safetensors_weights(
    path: str | os.PathLike, *, key: str, todo: str = ""
) -> dict[str, Any]:
    """The tensors of the safetensors file at ``path`` (CPU), after :func:`check_weights_file`.

    Raises:
        UserFileError / WeightsFileError: as :func:`check_weights_file`; reading failures too.
    """
    from safetensors.torch import load_file

    path = os.fspath(path)
    check_weights_file(path, key=key, todo=todo, formats=SAFETENSORS)
    try:
        return load_file(path)
    except Exception as e:
        raise _read_failure(path, key, todo, e) from e


# What third-party readers raise for a bad file (besides the pickle and zip errors).
_READ_ERROR_TEXT = (
    "PytorchStreamReader",
    "Error while deserializing header",
    "incomplete metadata",
    "invalid load key",
    "Ran out of input",
    "unexpected EOF",
    "failed finding central directory",
    "not a zip file",
    "Weights only load failed",
)


def _is_read_error(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, pickle.UnpicklingError | EOFError | zipfile.BadZipFile | UnicodeDecodeError
        ):
            return True
        if type(current).__name__ == "SafetensorError":
            return True
        if any(text in str(current) for text in _READ_ERROR_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def reading_weights(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    key: str,
    todo: str = "",
    formats: Sequence[str] = TORCH_OR_SAFETENSORS,
) -> Iterator[None]:
    """Around a third-party reader that opens ``paths`` itself (open_clip, diffusers): check
    each file first, then turn a reading failure inside the block into a
    :class:`WeightsFileError` naming ``key`` and the file (with several files, their folder)."""
    single = isinstance(paths, str | os.PathLike)
    files = [os.fspath(paths)] if single else list(map(os.fspath, paths))
    for path in files:
        check_weights_file(path, key=key, todo=todo, formats=formats)
    try:
        yield
    except Exception as e:
        if not _is_read_error(e) or not files:
            raise
        if single or len(files) == 1:
            raise _read_failure(files[0], key, todo, e) from e
        folder = os.path.commonpath(files)
        raise WeightsFileError(
            f"{key} {folder}: one of its weight files is truncated or corrupt "
            f"({_first_sentence(e)}). {_todo(todo)}."
        ) from e


def resolve_weights_path(
    path: str, names: Sequence[str] = WEIGHT_FILE_NAMES, *, key: str = "MODEL.VFM.WEIGHTS"
) -> str:
    """The weight file at ``path``, or the first of ``names`` inside the folder ``path``.

    Raises:
        UserFileError: naming ``key`` and ``path`` when nothing usable is there.
    """
    path = os.path.expanduser(path)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in names:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise UserFileError(f"{key} folder {path} holds none of {', '.join(names)}")
    raise UserFileError(f"{key} file or folder not found: {path}")


def _loaded_weight_files(folder: str) -> list[str]:
    """The weight files diffusers reads from one component folder: the ``.safetensors``
    files without a variant tag (``model.fp16.safetensors`` is read only when asked for), else
    the ``.bin`` files."""
    names = sorted(os.listdir(folder))
    for suffix in (".safetensors", ".bin"):
        chosen = [n for n in names if n.endswith(suffix) and "." not in n[: -len(suffix)]]
        if chosen:
            return [os.path.join(folder, n) for n in chosen]
    return []


def pipeline_weight_files(folder: str | os.PathLike, *, key: str, todo: str = "") -> list[str]:
    """The weight files a diffusers pipeline folder (``save_pretrained``) loads from, each
    checked with :func:`check_weights_file` (header only).

    Raises:
        UserFileError: no ``model_index.json`` in ``folder``.
        WeightsFileError: an unreadable ``model_index.json``, or a bad weight file; one line
            naming ``key``.
    """
    folder = os.fspath(folder)
    index = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index):
        raise UserFileError(
            f"{key} folder {folder} has no model_index.json: it is not a diffusers pipeline "
            f"folder (write one with StableDiffusionPipeline.save_pretrained)"
        )
    try:
        with open(index, encoding="utf-8") as f:
            components = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsFileError(
            f"{key} {index} is not valid JSON ({type(e).__name__}). {_todo(todo)}."
        ) from e
    files: list[str] = []
    for name, value in sorted(components.items()) if isinstance(components, dict) else []:
        sub = os.path.join(folder, name)
        if not name.startswith("_") and isinstance(value, list) and os.path.isdir(sub):
            files += _loaded_weight_files(sub)
    for path in files:
        check_weights_file(path, key=key, todo=todo)
    return files
