"""A finished run resumed (``--resume``) is not evaluated a second time: its checkpoint carries
the last evaluation, so the log holds each per-class table once and the results come back."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from clouds.config import load_config
from clouds.engine.callbacks import EvaluationInCheckpoint
from clouds.engine.launch import run
from tests.engine._tiny import register_tiny_datasets, register_tiny_model, tiny_overrides


class _CountEvaluations(pl.Callback):
    def __init__(self) -> None:
        self.count = 0

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.count += 1


def test_resumed_finished_run_is_not_evaluated_again(tmp_path: Path) -> None:
    register_tiny_model()
    register_tiny_datasets(str(tmp_path / "data"))
    cfg = load_config(None, tiny_overrides(str(tmp_path / "run")))
    cfg.freeze()
    first, again = _CountEvaluations(), _CountEvaluations()
    results = run(cfg, callbacks=[first])
    assert first.count == 2  # iterations 3 and 6
    assert run(cfg, resume=True, callbacks=[again]) == results
    assert again.count == 0  # each evaluation (and its per-class tables) happened once


def test_checkpoint_without_evaluation_keeps_the_module_state() -> None:
    class Module:
        eval_iteration = None
        eval_results: dict = {}

    module, checkpoint = Module(), {}
    callback = EvaluationInCheckpoint()
    callback.on_save_checkpoint(None, module, checkpoint)
    assert EvaluationInCheckpoint.KEY not in checkpoint
    module.eval_iteration, module.eval_results = 6, {"a": {"sem_seg": {"mIoU": 1.0}}}
    callback.on_save_checkpoint(None, module, checkpoint)
    restored = Module()
    callback.on_load_checkpoint(None, restored, checkpoint)
    assert (restored.eval_iteration, restored.eval_results) == (6, module.eval_results)
