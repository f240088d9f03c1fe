"""Our own checkpoints: ``{"model": trainable state dict, "config": YAML string, ...}``, and
the atomic writer every checkpoint we write (ours, Lightning's ``.ckpt``) goes through."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.checkpoint.formats import read_checkpoint_payload
from clouds.modeling.checkpoint.state import load_trainable_state_dict, trainable_state_dict
from clouds.utils.io import atomic_path

__all__ = ["load_checkpoint", "save_checkpoint", "write_checkpoint"]


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place, so an
    interrupted save never leaves a truncated file (nor replaces a good one). Every checkpoint
    we write (ours, Lightning's ``.ckpt``) goes through here."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    cfg: CfgNode,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write {"model": trainable state dict, "config": YAML string, **extra} to ``path`` atomically."""
    payload = {**(extra or {}), "model": trainable_state_dict(model), "config": cfg.dump()}
    write_checkpoint(payload, path)


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` into ``model``; returns the whole payload.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: when the file cannot be read or holds no "model" entry.
        CheckpointMismatchError: when its trainable keys or shapes do not match ``model``.
    """
    payload = read_checkpoint_payload(path)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} is not a CLOUDS checkpoint: it has no 'model' entry")
    load_trainable_state_dict(model, payload["model"], source=str(path))
    return payload
