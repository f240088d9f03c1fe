"""Checkpoint files: atomic writes and initialising a model from ``MODEL.WEIGHTS`` (any format
of :mod:`clouds.modeling.checkpoint`, the original CLOUDS' detectron2 files included).

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

from clouds.modeling.checkpoint import load_model_weights as load_checkpoint_weights
from clouds.modeling.checkpoint import read_checkpoint
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
    """The model weights stored in ``path``, in our key names, whatever its known format
    (:data:`clouds.modeling.checkpoint.CHECKPOINT_FORMATS`)."""
    return read_checkpoint(path)[1]


def load_model_weights(model: nn.Module, path: str, *, trust_pickle: bool = False) -> None:
    """Initialise ``model`` from ``path`` (MODEL.WEIGHTS): the trainable parts from our
    checkpoints, the whole model (frozen CLIP included) from an original CLOUDS checkpoint, and
    an original DGVFM (mmengine) checkpoint when ``trust_pickle`` (MODEL.WEIGHTS_TRUST_PICKLE).

    Raises:
        CheckpointMismatchError: listing missing / unexpected / mis-shaped keys.
    """
    fmt = load_checkpoint_weights(model, path, trust_pickle=trust_pickle)
    logger.info("Loaded model weights from %s (%s)", path, fmt.name)
