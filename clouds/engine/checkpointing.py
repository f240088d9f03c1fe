"""Lightning's checkpoint writer, routed through :func:`clouds.modeling.checkpoint.write_checkpoint`.

A CLOUDS checkpoint is a Lightning checkpoint whose "state_dict" holds only the trainable
parts of the model (:func:`clouds.modeling.checkpoint.trainable_state_dict`), plus optimizer,
scheduler, sampler state and iteration. Reading any weight file (ours, Lightning's, the
original CLOUDS' detectron2 and DGVFM's mmengine files) is the job of the
:mod:`clouds.modeling.checkpoint` package (:mod:`~clouds.modeling.checkpoint.formats`).
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from clouds.modeling.checkpoint import write_checkpoint

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temporary file, then rename), so an interrupted save never
    leaves a truncated ``.ckpt`` (nor replaces a good one)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        write_checkpoint(checkpoint, path)
