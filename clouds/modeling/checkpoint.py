"""Checkpoints of the trainable parts of a model, saved together with the config.

Frozen foundation models (the CLIP backbone, a frozen VFM, an EMA teacher copy) are not saved:
they are re-created from their ids / paths in the config. The rule, for any model:

- a parameter is saved when it requires grad;
- a persistent buffer is saved when the module owning it has a trainable parameter somewhere
  in its subtree (so buffers of frozen subtrees, e.g. BatchNorm statistics of a frozen
  backbone or of a teacher copy, are left out, and those of trained modules are kept).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.utils.io import atomic_path

__all__ = [
    "CheckpointMismatchError",
    "load_checkpoint",
    "load_trainable_state_dict",
    "save_checkpoint",
    "trainable_state_dict",
]


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


def load_trainable_state_dict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load ``state_dict`` into the trainable parts of ``model``.

    Raises:
        CheckpointMismatchError: keys missing from / unexpected in ``state_dict`` compared with
            ``trainable_state_dict(model)``, or tensors of the wrong shape; nothing is loaded.
    """
    expected = trainable_state_dict(model)
    missing = sorted(set(expected) - set(state_dict))
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
    model.load_state_dict(state_dict, strict=False)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    cfg: CfgNode,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write {"model": trainable state dict, "config": YAML string, **extra} to ``path`` atomically."""
    payload = {**(extra or {}), "model": trainable_state_dict(model), "config": cfg.dump()}
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
