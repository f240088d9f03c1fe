"""Random numbers that a resumed run draws exactly as an uninterrupted one.

Before every training iteration, :class:`IterationSeeder` seeds the global generators of
torch (CPU and CUDA), NumPy and Python from ``(SEED, iteration, global rank)``. What the model
draws in an iteration (the criterion's and matcher's point sampling, dropout, SAM prompts)
then depends only on the iteration and the process, never on what ran before it in this
process: neither on how many batches the loader prefetched, nor on evaluations, nor on where a
run was killed and resumed. With the per-sample seeds of the training sampler
(:mod:`clouds.data.samplers`) and the iteration, optimizer, scheduler, sampler and EMA-teacher
states of the checkpoint, a resumed run repeats the uninterrupted one bit for bit.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

__all__ = ["IterationSeeder", "seed_iteration"]


def seed_iteration(seed: int, iteration: int, rank: int) -> None:
    """Seed torch (all devices), NumPy and ``random`` from ``(seed, iteration, rank)``."""
    torch_seed, numpy_seed = np.random.SeedSequence([seed, iteration, rank]).generate_state(2)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed))
    random.seed(int(torch_seed))


class IterationSeeder(pl.Callback):
    """Calls :func:`seed_iteration` at the start of every training iteration (``global_step``
    before the step, i.e. the number of iterations done)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_iteration(self.seed, trainer.global_step, trainer.global_rank)
