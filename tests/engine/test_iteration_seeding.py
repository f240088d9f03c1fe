"""Every training iteration draws its own random numbers: the model's (criterion points,
dropout) from the generators that :class:`IterationSeeder` seeds with ``(SEED, iteration, rank)``,
the data's (crops, flips, colours) from the per-sample seeds of the sampler. Seeding that stops
depending on the iteration (every step drawing the same crops, colours and points) fails here.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from clouds.config import load_config
from clouds.engine.launch import run
from clouds.engine.rng_state import IterationSeeder, seed_iteration
from tests.engine._tiny import register_tiny_datasets, register_tiny_model, tiny_overrides


def _draws() -> tuple[list[float], list[float], float]:
    """A few numbers from each global generator: torch, NumPy, Python."""
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), random.random()


def test_each_iteration_and_rank_gets_its_own_numbers() -> None:
    draws = {}
    for iteration in range(3):
        for rank in range(2):
            seed_iteration(42, iteration, rank)
            draws[iteration, rank] = _draws()
    for generator in range(3):
        values = [repr(d[generator]) for d in draws.values()]
        assert len(set(values)) == len(values), f"generator {generator} repeats"
    seed_iteration(42, 1, 0)
    assert _draws() == draws[1, 0]  # and the same iteration draws the same numbers again


def test_seeder_seeds_from_the_trainers_iteration() -> None:
    seeder = IterationSeeder(seed=7)
    draws = []
    for step in range(3):
        trainer = SimpleNamespace(global_step=step, global_rank=0)
        seeder.on_train_batch_start(trainer, None, None, batch_idx=0)
        draws.append(_draws())
        seed_iteration(7, step, 0)
        assert _draws() == draws[-1]
    assert len({repr(d) for d in draws}) == 3


class _RecordIterations(pl.Callback):
    """Records, inside every training forward pass, a model-side draw (as the criterion's
    point sampling makes) and each image of the batch by file name."""

    def __init__(self) -> None:
        self.model_draws: list[torch.Tensor] = []
        self.images: dict[str, list[torch.Tensor]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.model.register_forward_pre_hook(self._record)

    def _record(self, module: torch.nn.Module, args: tuple) -> None:
        if not module.training:
            return
        self.model_draws.append(torch.rand(8))
        for x in args[0]:
            self.images.setdefault(x["file_name"], []).append(x["image"].clone())


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> _RecordIterations:
    register_tiny_model()
    register_tiny_datasets(str(tmp_path_factory.mktemp("tiny_data")))
    out = tmp_path_factory.mktemp("run")
    # 8 images, 2 per batch: 8 iterations show every image twice, randomly cropped and coloured.
    overrides = tiny_overrides(
        str(out),
        **{
            "SOLVER.MAX_ITER": 8,
            "SOLVER.CHECKPOINT_PERIOD": 100,
            "TEST.EVAL_PERIOD": 0,
            "INPUT.CROP.SIZE": "(16, 32)",
            "INPUT.COLOR_AUG_SSD": True,
        },
    )
    cfg = load_config(None, overrides)
    cfg.freeze()
    recorder = _RecordIterations()
    run(cfg, callbacks=[recorder])
    return recorder


def test_model_draws_differ_between_iterations(recorded_run: _RecordIterations) -> None:
    draws = recorded_run.model_draws
    assert len(draws) == 8
    assert len({tuple(d.tolist()) for d in draws}) == len(draws)


def test_an_image_seen_twice_is_augmented_differently(recorded_run: _RecordIterations) -> None:
    seen_twice = {name: v for name, v in recorded_run.images.items() if len(v) > 1}
    assert seen_twice, "no image was drawn twice in 8 iterations"
    for name, views in seen_twice.items():
        assert not all(torch.equal(views[0], v) for v in views[1:]), name
