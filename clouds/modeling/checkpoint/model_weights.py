"""Initialising a model from a weight file (MODEL.WEIGHTS) of any known format."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from torch import nn

from clouds.modeling.backbone.clip import clip_weights_from_checkpoint
from clouds.modeling.checkpoint.formats import (
    CheckpointFormat,
    detect_checkpoint_format,
    detect_pickled_format,
    read_checkpoint,
    read_checkpoint_payload,
)

__all__ = ["foundation_weights_context", "load_model_weights", "provides_foundation_weights"]

logger = logging.getLogger(__name__)


def load_model_weights(
    model: nn.Module, path: str | os.PathLike, *, trust_pickle: bool = False
) -> CheckpointFormat:
    """Initialise ``model`` from the weight file at ``path`` (e.g. MODEL.WEIGHTS), whatever its
    known format, by that format's rule: the whole model from a complete file (the original
    CLOUDS' detectron2 files, frozen CLIP included), the trainable parts from ours, the mapped
    keys of an original DGVFM (mmengine) file. Logs and returns the format.

    ``trust_pickle`` (MODEL.WEIGHTS_TRUST_PICKLE) allows reading a file holding pickled Python
    objects (an original DGVFM checkpoint).

    Raises:
        FileNotFoundError / ValueError: missing, unreadable or unknown file, or pickled objects
            without ``trust_pickle``.
        CheckpointMismatchError: a file of another architecture (nothing is loaded).
    """
    fmt, state = read_checkpoint(path, trust_pickle=trust_pickle)
    fmt.load_state(model, state, f"{path} ({fmt.name})")
    logger.info("Loaded model weights from %s (%s)", path, fmt.name)
    return fmt


def provides_foundation_weights(path: str | os.PathLike) -> bool:
    """Whether the weight file at ``path`` holds the frozen foundation models (memory-mapped
    read; False for a missing or unknown file, which the loading itself reports)."""
    try:
        fmt = detect_pickled_format(path) or detect_checkpoint_format(
            read_checkpoint_payload(path, mmap=True), str(path)
        )
    except (FileNotFoundError, ValueError):
        return False
    return fmt.complete


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
