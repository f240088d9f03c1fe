"""The weight-file formats we read, and reading a file into its format and state dict.

Weight files are read through :data:`CHECKPOINT_FORMATS`. Each :class:`CheckpointFormat`
recognises a payload (the object in the file), turns it into a state dict and says how that
state dict is loaded into a model: into the trainable parts (ours, Lightning's), into the whole
model (*complete* files, which hold the frozen foundation models too, as the original CLOUDS'
detectron2 files do), or through a key mapping (the original DGVFM's mmengine files).

Files are read with ``weights_only=True`` (tensors and plain containers only). A format whose
files hold other pickled Python objects (mmengine's) is recognised from the file before
anything is unpickled, and read by its own reader only when the user trusts the file (see
:class:`PickledFile`). Add a format by inserting one entry into the list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from clouds.modeling.checkpoint.mmengine import (
    is_mmengine_checkpoint,
    load_mmengine_state,
    read_mmengine_checkpoint,
)
from clouds.modeling.checkpoint.state import load_complete_state_dict, load_trainable_state_dict
from clouds.utils.weights_file import CHECKPOINT_TODO, load_torch_weights

__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "PickledFile",
    "detect_checkpoint_format",
    "detect_pickled_format",
    "read_checkpoint",
    "read_checkpoint_payload",
]


class _PickledReader(Protocol):
    """(path, *, trust_pickle) -> the payload of a file that may hold pickled Python objects."""

    def __call__(self, path: str | os.PathLike, *, trust_pickle: bool) -> Any: ...


@dataclass(frozen=True)
class PickledFile:
    """How a format whose files hold pickled Python objects (refused by the weights-only
    reader) is told apart and read.

    Attributes:
        recognises: path -> whether the file is of this format, judged without unpickling it.
        read: (path, trust_pickle) -> payload; refuses the pickled objects unless trusted.
    """

    recognises: Callable[[str | os.PathLike], bool]
    read: _PickledReader


@dataclass(frozen=True)
class CheckpointFormat:
    """One kind of weight file.

    Attributes:
        name: shown in logs and errors.
        matches: payload (the object read from the file) -> whether it is of this kind.
        model_state: payload -> the state dict ``load_state`` takes (our key names, unless
            ``load_state`` maps them).
        load_state: (model, state dict, source named in errors) -> None; loads the state dict
            into the model, or raises :class:`CheckpointMismatchError` and loads nothing.
        complete: the state dict holds the frozen foundation models as well (the model is then
            built without downloading them, see :func:`foundation_weights_context`).
        pickled: set when the files may hold pickled Python objects: they are recognised and
            read by it instead of the weights-only reader.
    """

    name: str
    matches: Callable[[Any], bool]
    model_state: Callable[[Any], dict[str, torch.Tensor]]
    load_state: Callable[[nn.Module, Mapping[str, torch.Tensor], str], None] = (
        load_trainable_state_dict
    )
    complete: bool = False
    pickled: PickledFile | None = None


# Entries of an original CLOUDS checkpoint that belong to no part of our model: the EMA teacher
# copy and SAM (only written by the original when MODEL.CLOUDS.OVERWRITING is off).
_ORIGINAL_CLOUDS_SKIPPED_PREFIXES = ("sem_seg_head_ema.", "sam.")


def _is_tensor_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())


def _is_original_clouds(payload: Any) -> bool:
    """detectron2's ``{"model": state_dict, "iteration": N, ...}`` of the whole CLOUDS model."""
    return (
        isinstance(payload, dict)
        and "config" not in payload
        and _is_tensor_dict(payload.get("model"))
        and any(k.startswith("backbone.clip_model.") for k in payload["model"])
    )


def _original_clouds_state(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The original's keys are ours (same module names); its teacher / SAM entries are dropped."""
    return {
        k: v
        for k, v in payload["model"].items()
        if not k.startswith(_ORIGINAL_CLOUDS_SKIPPED_PREFIXES)
    }


CHECKPOINT_FORMATS: list[CheckpointFormat] = [
    CheckpointFormat(
        name="original CLOUDS (detectron2)",
        matches=_is_original_clouds,
        model_state=_original_clouds_state,
        load_state=load_complete_state_dict,
        complete=True,
    ),
    CheckpointFormat(
        name="original DGVFM (mmengine)",
        matches=lambda p: isinstance(p, dict) and "state_dict" in p and "meta" in p,
        model_state=lambda p: p["state_dict"],
        load_state=load_mmengine_state,
        pickled=PickledFile(recognises=is_mmengine_checkpoint, read=read_mmengine_checkpoint),
    ),
    CheckpointFormat(
        name="CLOUDS / Lightning (.ckpt)",
        matches=lambda p: isinstance(p, dict) and _is_tensor_dict(p.get("state_dict")),
        model_state=lambda p: p["state_dict"],
    ),
    CheckpointFormat(
        name="CLOUDS ({'model': trainable state dict})",
        matches=lambda p: isinstance(p, dict) and _is_tensor_dict(p.get("model")),
        model_state=lambda p: p["model"],
    ),
    CheckpointFormat(
        name="plain state dict",
        matches=lambda p: isinstance(p, dict) and bool(p) and _is_tensor_dict(p),
        model_state=dict,
    ),
]


def read_checkpoint_payload(
    path: str | os.PathLike, *, mmap: bool = False, key: str = "MODEL.WEIGHTS"
) -> Any:
    """The object ``torch.save`` wrote to ``path``, read with ``weights_only=True`` onto the
    CPU through :func:`clouds.utils.weights_file.load_torch_weights`; ``mmap`` maps the
    tensors' storage instead of reading it (files of the legacy, non-zip format are read whole).

    Args:
        key: the config key or flag naming the file, for the messages.

    Raises:
        UserFileError: ``path`` does not exist (a ``FileNotFoundError``).
        WeightsFileError: the file is empty, truncated, corrupt, not a torch file, or holds
            pickled objects other than tensors and plain containers (a ``ValueError``); one
            line naming ``key`` and ``path``.
    """
    return load_torch_weights(path, key=key, todo=CHECKPOINT_TODO, mmap=mmap)


def detect_checkpoint_format(payload: Any, source: str = "payload") -> CheckpointFormat:
    """The first entry of :data:`CHECKPOINT_FORMATS` that recognises ``payload``.

    Raises:
        ValueError: naming ``source`` and the known formats when none does.
    """
    for fmt in CHECKPOINT_FORMATS:
        if fmt.matches(payload):
            return fmt
    known = ", ".join(f.name for f in CHECKPOINT_FORMATS)
    raise ValueError(f"{source} is not a checkpoint of a known format ({known})")


def detect_pickled_format(path: str | os.PathLike) -> CheckpointFormat | None:
    """The entry of :data:`CHECKPOINT_FORMATS` whose :class:`PickledFile` recognises the file at
    ``path`` (nothing is unpickled), or None."""
    return next(
        (f for f in CHECKPOINT_FORMATS if f.pickled is not None and f.pickled.recognises(path)),
        None,
    )


def read_checkpoint(
    path: str | os.PathLike, *, trust_pickle: bool = False
) -> tuple[CheckpointFormat, dict[str, torch.Tensor]]:
    """The format of the file at ``path`` and its state dict (as the format's ``load_state``
    takes it). ``trust_pickle`` allows unpickling the Python objects of a format with
    :class:`PickledFile` (MODEL.WEIGHTS_TRUST_PICKLE).

    Raises:
        FileNotFoundError / ValueError: missing, unreadable or unknown file; a file holding
            pickled objects without ``trust_pickle`` (``UntrustedCheckpointError``).
    """
    fmt = detect_pickled_format(path)
    if fmt is not None and fmt.pickled is not None:
        payload = fmt.pickled.read(path, trust_pickle=trust_pickle)
    else:
        payload = read_checkpoint_payload(path)
        fmt = detect_checkpoint_format(payload, str(path))
    return fmt, fmt.model_state(payload)
