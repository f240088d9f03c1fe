"""The iteration an ``--eval-only`` run reports: that of the checkpoint it evaluates.

A Trainer that only validates starts at step 0, so without this every evaluation of a trained
checkpoint would land at iteration 0 of the curves (``metrics.json``, TensorBoard) and of the
log. The checkpoint's own iteration is Lightning's ``"global_step"`` (our ``.ckpt`` files) or
detectron2's ``"iteration"`` (the original CLOUDS' files); plain state dicts have none.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl

from clouds.modeling.checkpoint import read_checkpoint_payload

__all__ = ["checkpoint_iteration", "set_trainer_iteration"]

_ITERATION_KEYS = ("global_step", "iteration")


def checkpoint_iteration(path: str | os.PathLike) -> int | None:
    """The training iteration stored in the checkpoint at ``path``, or None (no such entry, or
    a file that is not a torch checkpoint, e.g. safetensors)."""
    try:
        payload = read_checkpoint_payload(path, mmap=True)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    for key in _ITERATION_KEYS:
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def set_trainer_iteration(trainer: pl.Trainer, iteration: int) -> None:
    """Make ``trainer`` (before ``validate``) log at ``iteration`` and report it as its
    ``global_step``, as a Trainer restored from that checkpoint would."""
    epoch_loop = trainer.fit_loop.epoch_loop
    epoch_loop._batches_that_stepped = iteration  # the step of logged metrics
    epoch_loop.automatic_optimization.optim_progress.optimizer.step.total.completed = iteration
    epoch_loop.manual_optimization.optim_step_progress.total.completed = iteration
