"""The LightningModule: one training iteration, optimisation, evaluation, checkpoint contents.

Extension point for joint training: ``module.batch_transform`` (None by default) is called on
every training batch before the model sees it, e.g. a pseudo-labeller that adds "sem_seg" to
the unlabelled (generated-set) images from an EMA teacher. Teachers and other helpers attached
to the module must keep ``requires_grad=False``: only trainable parameters of ``module.model``
reach the optimizer, and DDP only synchronises parameters that require gradients.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import nn

from clouds.config import CfgNode
from clouds.engine.solver import (
    build_lr_scheduler,
    build_optimizer,
    clip_gradients,
    trainable_parameters,
)
from clouds.engine.sync_batchnorm import sync_light_head_batchnorm
from clouds.evaluation import SemSegEvaluator
from clouds.modeling.acceleration import AccelerationSettings, apply_acceleration, autocast
from clouds.modeling.checkpoint import load_trainable_state_dict, trainable_state_dict

__all__ = ["CloudsLightningModule", "NonFiniteLossError", "flatten_results"]

logger = logging.getLogger(__name__)

BatchTransform = Callable[[list[dict]], list[dict]]


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite training loss; the message names the iteration and the loss terms."""


def flatten_results(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """``{dataset: {"sem_seg": {metric: v}}}`` -> ``{"<dataset>/sem_seg/<metric>": v}``."""
    return {
        f"{dataset}/{task}/{metric}": float(value)
        for dataset, tasks in results.items()
        for task, metrics in tasks.items()
        for metric, value in metrics.items()
    }


class CloudsLightningModule(pl.LightningModule):
    """Trains and evaluates ``model`` (a detectron2-style segmenter, see DESIGN.md).

    Args:
        cfg: the full config (solver, test datasets, output dir).
        model: the segmenter; ``model(batch)`` returns a dict of weighted losses in training
            mode and a list of {"sem_seg": (K, H, W)} in eval mode.
    """

    def __init__(self, *, cfg: CfgNode, model: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.batch_transform: BatchTransform | None = None
        self.test_dataset_names: list[str] = list(cfg.DATASETS.TEST)
        self.evaluators: list[SemSegEvaluator] = []
        self.eval_results: dict[str, dict[str, dict[str, float]]] = {}
        self.eval_iteration: int | None = None  # global_step of the last evaluation
        self.eval_examples: dict[str, list[tuple[str, str | None, torch.Tensor]]] = {}
        self.num_report_examples = cfg.TEST.NUM_REPORT_EXAMPLES
        self.acceleration = AccelerationSettings.from_config(cfg)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> CloudsLightningModule:
        from clouds.modeling import build_model

        settings = AccelerationSettings.from_config(cfg)
        return cls(cfg=cfg, model=apply_acceleration(build_model(cfg), settings))

    def forward(self, batched_inputs: list[dict]) -> dict[str, torch.Tensor] | list[dict]:
        return self.model(batched_inputs)

    def setup(self, stage: str) -> None:
        """On several processes, before DDP wraps the model: the DGVFM light head's BatchNorm
        normalises over all of them, as the original's SyncBatchNorm."""
        if self.trainer.world_size > 1:
            device_type = self.trainer.strategy.root_device.type
            if sync_light_head_batchnorm(self.model, device_type=device_type):
                logger.info(
                    "Light-head BatchNorm synchronised over %d processes", self.trainer.world_size
                )

    # ------------------------------------------------------------------ training
    def training_step(self, batch: list[dict], batch_idx: int) -> torch.Tensor:
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        loss_dict = self.model(batch)
        loss = sum(loss_dict.values())
        self._check_finite(loss, loss_dict)
        batch_size = len(batch)
        self.log("total_loss", loss.detach(), batch_size=batch_size, prog_bar=True)
        self.log_dict(
            {name: value.detach() for name, value in loss_dict.items()}, batch_size=batch_size
        )
        self.log("lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)
        return loss

    def _check_finite(self, loss: torch.Tensor, loss_dict: dict[str, torch.Tensor]) -> None:
        finite = bool(torch.isfinite(loss).item())
        all_finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if all_finite:
            return
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items())
        where = "on this process" if not finite else "on another process"
        raise NonFiniteLossError(
            f"Loss became NaN or infinite at iteration {self.global_step} {where} "
            f"(total_loss={float(loss.detach()):.4g}; {terms}). Training stopped; the last "
            f"checkpoint in {self.cfg.OUTPUT_DIR} holds the last good state. Lower "
            f"SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS or disable SOLVER.AMP and resume."
        )

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.cfg, self.model)
        scheduler = build_lr_scheduler(self.cfg, optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as ``SOLVER.CLIP_GRADIENTS`` says (after AMP unscaling, before the step)."""
        clip_gradients(self.cfg, trainable_parameters(self.model))

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only the trainable parts of the model (no frozen foundation models)."""
        checkpoint["state_dict"] = trainable_state_dict(self.model)
        checkpoint["clouds_checkpoint"] = 1

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Load the trainable parts (errors list mismatched keys), then let Lightning's own
        strict load see the full, already-restored state."""
        source = getattr(self._trainer, "ckpt_path", None) or "the resumed checkpoint"
        load_trainable_state_dict(self.model, checkpoint["state_dict"], source=str(source))
        checkpoint["state_dict"] = self.state_dict()

    # ---------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self.evaluators = [
            SemSegEvaluator.from_config(self.cfg, name) for name in self.test_dataset_names
        ]
        for evaluator in self.evaluators:
            evaluator.reset()
        self.eval_examples = {name: [] for name in self.test_dataset_names}

    def validation_step(self, batch: list[dict], batch_idx: int, dataloader_idx: int = 0) -> None:
        with autocast(self.device, self.acceleration.amp_dtype):
            outputs = self.model(batch)
        self.evaluators[dataloader_idx].process(batch, outputs)
        examples = self.eval_examples[self.test_dataset_names[dataloader_idx]]
        if self.global_rank == 0 and len(examples) < self.num_report_examples:
            for inputs, output in zip(batch, outputs):
                pred = output["sem_seg"].argmax(dim=0).to(torch.uint8).cpu()
                examples.append((inputs["file_name"], inputs.get("sem_seg_file_name"), pred))

    def on_validation_epoch_end(self) -> None:
        self.eval_results = {
            name: evaluator.evaluate()
            for name, evaluator in zip(self.test_dataset_names, self.evaluators)
        }
        self.eval_iteration = self.global_step
        flat = flatten_results(self.eval_results)
        for name, result in self.eval_results.items():
            logger.info(
                "Evaluation of %s at iteration %d: mIoU %.2f",
                name,
                self.global_step,
                result["sem_seg"]["mIoU"],
            )
        # Every process holds the same numbers (the evaluator reduces over processes), so the
        # mean over processes that sync_dist takes leaves them unchanged.
        loggable = {k: v for k, v in flat.items() if not math.isnan(v)}
        self.log_dict(loggable, batch_size=1, sync_dist=True)
