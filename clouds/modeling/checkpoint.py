"""Checkpoints: our own (trainable parts + config) and the formats we read (dispatch).

Our checkpoints leave frozen foundation models (the CLIP backbone, a frozen VFM, an EMA teacher
copy) out: they are re-created from their ids / paths in the config. The rule, for any model:

- a parameter is saved when it requires grad;
- a persistent buffer is saved when the module owning it has a trainable parameter somewhere
  in its subtree (so buffers of frozen subtrees, e.g. BatchNorm statistics of a frozen
  backbone or of a teacher copy, are left out, and those of trained modules are kept).

Weight files are read through :data:`CHECKPOINT_FORMATS`, tried in order: each
:class:`CheckpointFormat` recognises a loaded payload, turns it into a state dict in our key
names and says whether that state dict is *complete* (holds the frozen foundation models too,
as the original CLOUDS' detectron2 files do: then the whole model is loaded strictly and the
model is built without downloading them, see :func:`foundation_weights_context`) or holds the
trainable parts only. Add a format by inserting one entry into the list.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.backbone.clip import clip_weights_from_checkpoint
from clouds.utils.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "CheckpointMismatchError",
    "detect_checkpoint_format",
    "foundation_weights_context",
    "load_checkpoint",
    "load_complete_state_dict",
    "load_model_weights",
    "load_trainable_state_dict",
    "provides_foundation_weights",
    "read_checkpoint",
    "save_checkpoint",
    "trainable_state_dict",
    "verify_state_dict",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    """A checkpoint whose trainable keys or shapes do not match the model's; the message lists them."""

    def __init__(
        self,
        *,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "state dict",
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        lines = [f"Checkpoint {source} does not match the model's trainable parameters:"]
        if missing:
            lines.append(f"  missing in the checkpoint ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(
                f"  unexpected in the checkpoint ({len(unexpected)}): {', '.join(unexpected)}"
            )
        for key, got, want in shape_mismatches:
            lines.append(f"  shape of {key}: checkpoint {list(got)}, model {list(want)}")
        super().__init__("\n".join(lines))


def _trainable_subtrees(model: nn.Module) -> set[str]:
    """Names of the modules whose subtree holds at least one parameter that requires grad."""
    names = set()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            parts = name.split(".")[:-1]
            names.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    return names


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict restricted to its trainable parts (see the module docstring)."""
    trainable_modules = _trainable_subtrees(model)
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    for module_name, module in model.named_modules():
        if module_name not in trainable_modules:
            continue
        prefix = f"{module_name}." if module_name else ""
        for buffer_name, _ in module.named_buffers(recurse=False):
            if buffer_name not in module._non_persistent_buffers_set:
                keep.add(prefix + buffer_name)
    return {key: value for key, value in model.state_dict().items() if key in keep}


def verify_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    *,
    source: str,
    required: Iterable[str] | None = None,
) -> None:
    """Check that ``state_dict`` fits ``expected`` (a model's entries): every key of
    ``required`` (default: all of ``expected``) present, no key outside ``expected``, no shape
    that differs.

    Raises:
        CheckpointMismatchError: naming ``source`` and the offending keys.
    """
    required_keys = set(expected) if required is None else set(required)
    missing = sorted(required_keys - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        (key, tuple(state_dict[key].shape), tuple(expected[key].shape))
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            missing=missing, unexpected=unexpected, shape_mismatches=shapes, source=source
        )


def load_trainable_state_dict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load ``state_dict`` into the trainable parts of ``model``.

    Raises:
        CheckpointMismatchError: keys missing from / unexpected in ``state_dict`` compared with
            ``trainable_state_dict(model)``, or tensors of the wrong shape; nothing is loaded.
    """
    verify_state_dict(state_dict, trainable_state_dict(model), source=source)
    model.load_state_dict(state_dict, strict=False)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    cfg: CfgNode,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write {"model": trainable state dict, "config": YAML string, **extra} to ``path`` atomically."""
    payload = {**(extra or {}), "model": trainable_state_dict(model), "config": cfg.dump()}
    write_checkpoint(payload, path)


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place, so an
    interrupted save never leaves a truncated file (nor replaces a good one). Every checkpoint
    we write (ours, Lightning's ``.ckpt``) goes through here."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` into ``model``; returns the whole payload.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: when the file holds no "model" entry.
        CheckpointMismatchError: when its trainable keys or shapes do not match ``model``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} is not a CLOUDS checkpoint: it has no 'model' entry")
    load_trainable_state_dict(model, payload["model"], source=str(path))
    return payload


def load_complete_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load every persistent parameter and buffer of ``model`` from ``state_dict``.

    Raises:
        CheckpointMismatchError: keys missing / unexpected / of the wrong shape compared with
            ``model.state_dict()``; nothing is loaded.
    """
    verify_state_dict(state_dict, model.state_dict(), source=source)
    model.load_state_dict(dict(state_dict), strict=True)


@dataclass(frozen=True)
class CheckpointFormat:
    """One kind of weight file.

    Attributes:
        name: shown in logs and errors.
        matches: payload (the object ``torch.load`` returned) -> whether it is of this kind.
        model_state: payload -> state dict in our model's key names.
        complete: the state dict holds the frozen foundation models as well.
    """

    name: str
    matches: Callable[[Any], bool]
    model_state: Callable[[Any], dict[str, torch.Tensor]]
    complete: bool = False


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
        complete=True,
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


def _load_payload(path: str | os.PathLike, *, mmap: bool = False) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:
        if mmap:  # files of the legacy (non-zip) format cannot be memory-mapped
            return _load_payload(path)
        raise ValueError(_unreadable_message(path, e)) from e


def _unreadable_message(path: str | os.PathLike, error: Exception) -> str:
    """Why ``path`` could not be read as weights, without torch's advice to load unsafely."""
    if os.path.getsize(path) == 0:
        return f"Cannot read checkpoint {path}: the file is empty"
    if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
        return (
            f"Cannot read checkpoint {path}: it holds Python objects other than tensors and "
            f"plain containers, so it is not a weights file of a known format"
        )
    return (
        f"Cannot read checkpoint {path}: it is not a PyTorch weights file (torch.save / "
        f"Lightning / detectron2 checkpoint), or it is truncated or corrupt "
        f"({type(error).__name__})"
    )


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


def read_checkpoint(path: str | os.PathLike) -> tuple[CheckpointFormat, dict[str, torch.Tensor]]:
    """The format of the file at ``path`` and its state dict in our key names."""
    payload = _load_payload(path)
    fmt = detect_checkpoint_format(payload, str(path))
    return fmt, fmt.model_state(payload)


def load_model_weights(
    model: nn.Module, path: str | os.PathLike, *, trust_pickle: bool = False
) -> CheckpointFormat:
    """Initialise ``model`` from the weight file at ``path`` (e.g. MODEL.WEIGHTS), whatever its
    known format: the whole model from a complete file (the original CLOUDS' detectron2 files,
    frozen CLIP included), the trainable parts otherwise. Logs and returns the format.

    ``trust_pickle`` (MODEL.WEIGHTS_TRUST_PICKLE) allows reading a file holding pickled Python
    objects: an original DGVFM (mmengine) checkpoint, read by ``original_checkpoint``.

    Raises:
        FileNotFoundError / ValueError: missing, unreadable or unknown file.
        CheckpointMismatchError: a file of another architecture (nothing is loaded).
    """
    from clouds.modeling.backbone.vfm import original_checkpoint  # it imports this module

    if original_checkpoint.is_mmengine_checkpoint(path):
        fmt = original_checkpoint.load_mmengine_weights(model, path, trust_pickle=trust_pickle)
    else:
        fmt, state = read_checkpoint(path)
        source = f"{path} ({fmt.name})"
        if fmt.complete:
            load_complete_state_dict(model, state, source=source)
        else:
            load_trainable_state_dict(model, state, source=source)
    logger.info("Loaded model weights from %s (%s)", path, fmt.name)
    return fmt


def provides_foundation_weights(path: str | os.PathLike) -> bool:
    """Whether the weight file at ``path`` holds the frozen foundation models (memory-mapped
    read; False for a missing or unknown file, which the loading itself reports)."""
    try:
        payload = _load_payload(path, mmap=True)
        return detect_checkpoint_format(payload, str(path)).complete
    except (FileNotFoundError, ValueError):
        return False


@contextlib.contextmanager
def foundation_weights_context(path: str | os.PathLike | None) -> Iterator[None]:
    """Build models inside this context when ``path`` (e.g. MODEL.WEIGHTS) is about to be
    loaded: if it holds the frozen foundation models, they are built without downloading
    pretrained weights."""
    if path and provides_foundation_weights(path):
        with clip_weights_from_checkpoint():
            yield
    else:
        yield
