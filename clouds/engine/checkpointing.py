"""Lightning's checkpoint writer and reader, routed through :mod:`clouds.modeling.checkpoint`
(``write_checkpoint``, ``read_checkpoint_payload``).

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

from clouds.modeling.checkpoint import read_checkpoint_payload, write_checkpoint

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temporary file, then rename), so an interrupted save never
    leaves a truncated ``.ckpt`` (nor replaces a good one); read them (``--resume``) with
    tensors and plain containers only, an unreadable file named in the error."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        write_checkpoint(checkpoint, path)

    def load_checkpoint(
        self,
        path: str | os.PathLike,
        map_location: Any = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """The checkpoint at ``path``, read onto the CPU (the optimizer and the model move
        their state to their own devices when loading it). Our checkpoints hold no pickled
        Python objects, so they are always read with ``weights_only``.

        Raises:
            FileNotFoundError: naming ``path``.
            ValueError: an empty, truncated or foreign file, naming ``path`` (one line,
                :mod:`clouds.utils.weights_file`).
        """
        if weights_only is False:
            raise TypeError("AtomicCheckpointIO reads checkpoints with weights_only only")
        payload = read_checkpoint_payload(path, key="--resume checkpoint")
        if not isinstance(payload, dict):
            raise ValueError(f"{path} is not a training checkpoint (.ckpt): it holds no dict")
        return payload
