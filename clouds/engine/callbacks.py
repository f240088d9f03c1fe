"""Lightning callbacks of the engine: iteration progress bar, final checkpoint, evaluation kept
in checkpoints, report writer."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from clouds.config import CfgNode
from clouds.utils.io import read_image, read_label

__all__ = [
    "EvaluationInCheckpoint",
    "FinalCheckpoint",
    "IterationProgressBar",
    "ReportWriter",
    "build_checkpoint_callback",
]

logger = logging.getLogger(__name__)


class IterationProgressBar(TQDMProgressBar):
    """tqdm bar over iterations (``global_step`` of ``max_steps``, with ETA), not epochs."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.reset(total=trainer.max_steps)
        self.train_progress_bar.initial = trainer.global_step
        self.train_progress_bar.set_description("Iteration")

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        n = trainer.global_step
        bar = self.train_progress_bar
        if bar is not None and self._should_update(n, trainer.max_steps):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()


def build_checkpoint_callback(cfg: CfgNode) -> ModelCheckpoint:
    """``model_<iteration>.ckpt`` every ``SOLVER.CHECKPOINT_PERIOD`` iterations in
    ``OUTPUT_DIR``, all kept, plus ``last.ckpt`` (what ``--resume`` continues from)."""
    return ModelCheckpoint(
        dirpath=cfg.OUTPUT_DIR,
        filename="model_{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.SOLVER.CHECKPOINT_PERIOD,
        save_top_k=-1,
        save_last=True,
        save_on_train_epoch_end=False,
        enable_version_counter=False,  # a resumed run rewrites model_<it>.ckpt, no "-v1" copies
    )


class FinalCheckpoint(pl.Callback):
    """At the end of training write ``model_final.ckpt`` and refresh ``last.ckpt``."""

    def __init__(self, output_dir: str, baselines: Sequence[str] = ()) -> None:
        """``baselines``: OUTPUT_DIRs of evaluated runs shown beside this one (by folder name)."""
        self.output_dir = output_dir
        self.baselines = list(baselines)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name in ("model_final.ckpt", "last.ckpt"):
            trainer.save_checkpoint(os.path.join(self.output_dir, name), weights_only=False)


class EvaluationInCheckpoint(pl.Callback):
    """Checkpoints carry the last evaluation (its iteration and results), so a resumed run
    that was already evaluated where it stopped (``--resume`` of a finished run) returns those
    results instead of evaluating again (which printed every per-class table a second time)."""

    KEY = "clouds_evaluation"

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        iteration = getattr(pl_module, "eval_iteration", None)
        if iteration is not None:
            checkpoint[self.KEY] = {"iteration": iteration, "results": pl_module.eval_results}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get(self.KEY)
        if saved is not None:
            pl_module.eval_iteration = saved["iteration"]
            pl_module.eval_results = saved["results"]


REPORT_CONTEXT = "report_context.json"
"""Optional file in OUTPUT_DIR: ``{"title": str, "intro": [str], "gallery": {heading: [[path,
caption], ...]}}``, passed to :func:`clouds.evaluation.report.write_report` (the quickstart
writes it to say what ran)."""


class ReportWriter(pl.Callback):
    """After each evaluation write ``OUTPUT_DIR/report.md`` (per-dataset mIoU table whose
    average leaves the ``DATASETS.TRAIN`` sources out, per-class IoU, a few prediction overlays)
    with :func:`clouds.evaluation.report.write_report`, headed by ``OUTPUT_DIR/``
    :data:`REPORT_CONTEXT` when that file exists."""

    def __init__(
        self, output_dir: str, baselines: Sequence[str] = (), run_name: str = "this run"
    ) -> None:
        """``baselines``: OUTPUT_DIRs of evaluated runs shown beside this one (by folder name)
        in a column named ``run_name``."""
        self.output_dir = output_dir
        self.baselines = list(baselines)
        self.run_name = run_name

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from clouds.evaluation import load_saved_results
        from clouds.evaluation.report import write_report

        results = getattr(pl_module, "eval_results", None)
        if not results:
            return
        examples = {}
        for name, items in getattr(pl_module, "eval_examples", {}).items():
            examples[name] = []
            for file_name, label_file, pred in items:
                if label_file:
                    size = tuple(pred.shape)  # the test size under TEST.SCORE_AT_TEST_SIZE
                    image = _resized(read_image(file_name), size, Image.BILINEAR)
                    gt = _resized(read_label(label_file), size, Image.NEAREST)
                    examples[name].append((image, gt, pred.numpy()))
        baselines = {Path(d).name: load_saved_results(d) for d in self.baselines}
        cfg = getattr(pl_module, "cfg", None)
        path = write_report(
            self.output_dir,
            results,
            examples,
            baselines=baselines,
            run_name=self.run_name,
            source_datasets=tuple(cfg.DATASETS.TRAIN) if cfg is not None else (),
            **_report_context(Path(self.output_dir) / REPORT_CONTEXT),
        )
        logger.info("Wrote %s", path)


def _report_context(path: Path) -> dict[str, Any]:
    """Title, intro and gallery keyword arguments of ``write_report`` read from ``path``."""
    if not path.is_file():
        return {}
    context = json.loads(path.read_text())
    unknown = set(context) - {"title", "intro", "gallery"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected title, intro, gallery")
    if "gallery" in context:
        context["gallery"] = {
            heading: [tuple(item) for item in items]
            for heading, items in context["gallery"].items()
        }
    return context


def _resized(array: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """``array`` ((H, W) or (H, W, 3)) at ``size`` (h, w), resized by PIL when it differs."""
    if tuple(array.shape[:2]) == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), resample))
