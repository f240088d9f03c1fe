"""--eval-only records the evaluated checkpoint's iteration (curves, log, global_step)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from clouds.config import load_config
from clouds.engine.eval_iteration import checkpoint_iteration, set_trainer_iteration
from clouds.engine.launch import run
from clouds.engine.writers import JsonLinesLogger
from tests.engine._tiny import register_tiny_datasets, register_tiny_model, tiny_overrides


def test_checkpoint_iteration_of_each_format(tmp_path: Path) -> None:
    files = {
        "lightning.ckpt": ({"state_dict": {"w": torch.zeros(1)}, "global_step": 4000}, 4000),
        "detectron2.pth": ({"model": {"w": torch.zeros(1)}, "iteration": 39999}, 39999),
        "plain.pth": ({"w": torch.zeros(1)}, None),
    }
    for name, (payload, expected) in files.items():
        torch.save(payload, tmp_path / name)
        assert checkpoint_iteration(tmp_path / name) == expected
    (tmp_path / "model.safetensors").write_bytes(b"not a torch file")
    assert checkpoint_iteration(tmp_path / "model.safetensors") is None


class _Scored(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.seen_step: int | None = None

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.seen_step = self.global_step

    def on_validation_epoch_end(self) -> None:
        self.log("cityscapes_val/sem_seg/mIoU", 42.0)


def test_validation_logs_at_the_checkpoint_iteration(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=[JsonLinesLogger(str(metrics))],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    set_trainer_iteration(trainer, 4000)
    module = _Scored()
    loader = torch.utils.data.DataLoader(torch.zeros(2, 1), batch_size=1)
    trainer.validate(module, dataloaders=loader, verbose=False)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records == [{"iteration": 4000, "cityscapes_val/sem_seg/mIoU": 42.0}]
    assert module.seen_step == 4000


def test_eval_only_run_records_the_evaluated_iteration(tmp_path: Path) -> None:
    """A tiny training run, then ``run(eval_only=True)`` of its iteration-3 checkpoint in a new
    OUTPUT_DIR: its metrics.json point lies at iteration 3, not 0."""
    register_tiny_model()
    register_tiny_datasets(str(tmp_path / "data"))
    train = tmp_path / "train"
    cfg = load_config(None, tiny_overrides(str(train), **{"SOLVER.MAX_ITER": 3}))
    cfg.freeze()
    run(cfg)
    evaluated = tmp_path / "eval"
    weights = str(train / "model_0000003.ckpt")
    cfg = load_config(None, tiny_overrides(str(evaluated), **{"MODEL.WEIGHTS": weights}))
    cfg.freeze()
    run(cfg, eval_only=True)
    records = [json.loads(line) for line in (evaluated / "metrics.json").read_text().splitlines()]
    scored = [r for r in records if any(k.endswith("mIoU") for k in r)]
    assert [r["iteration"] for r in scored] == [3]
