"""Checkpoint files: atomic writes and initialising a model from ``MODEL.WEIGHTS``.

A CLOUDS checkpoint is a Lightning checkpoint whose "state_dict" holds only the trainable
parts of the model (:func:`clouds.modeling.checkpoint.trainable_state_dict`), plus optimizer,
scheduler, sampler state and iteration.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from clouds.modeling.checkpoint import load_trainable_state_dict
from clouds.utils.io import atomic_path

__all__ = ["AtomicCheckpointIO", "load_model_weights", "read_model_state_dict"]

logger = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file beside the target and rename it into place, so an
    interrupted save never leaves a truncated ``.ckpt`` (nor replaces a good one)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def read_model_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The model weights stored in ``path``: a CLOUDS/Lightning ``.ckpt`` ("state_dict"),
    a detectron2-style file ({"model": ...}) or a plain state dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.WEIGHTS file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Cannot read MODEL.WEIGHTS checkpoint {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise ValueError(f"MODEL.WEIGHTS {path} holds a {type(loaded).__name__}, not a dict")
    for key in ("state_dict", "model"):
        if isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"MODEL.WEIGHTS {path} is not a state dict (non-tensor values found)")
    return loaded


def load_model_weights(model: nn.Module, path: str) -> None:
    """Initialise the trainable parts of ``model`` from ``path`` (see :func:`read_model_state_dict`).

    Raises:
        CheckpointMismatchError: listing missing / unexpected / mis-shaped keys.
    """
    load_trainable_state_dict(model, read_model_state_dict(path))
    logger.info("Loaded model weights from %s", path)
