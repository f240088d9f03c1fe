"""Entry script of the 2-process CPU DDP test: ``train_net.py`` plus the tiny test model.

Usage: python tests/engine/_ddp_entry.py DATA_ROOT <train_net.py arguments>. Lightning re-runs
this script for the second process. Every rank writes OUTPUT_DIR/rank<r>.pt with its final
trainable weights, the image ids it trained on, the number of parameter tensors that DDP's
reducer synchronises and the class names of the model's BatchNorm layers.
"""

from __future__ import annotations

import os
import sys

import lightning.pytorch as pl
import torch

import train_net
from clouds.engine.launch import default_argument_parser
from clouds.modeling.checkpoint import trainable_state_dict
from tests.engine._tiny import register_tiny_datasets, register_tiny_model


class RecordRank(pl.Callback):
    """Record image ids per step and, at the end, weights and DDP's synchronised tensors."""

    def __init__(self) -> None:
        self.image_ids: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.image_ids.extend(d["image_id"] for d in batch)

    def on_train_end(self, trainer, pl_module) -> None:
        ddp_data = trainer.strategy.model._get_ddp_logging_data()
        record = {
            "weights": trainable_state_dict(pl_module.model),
            "image_ids": self.image_ids,
            "ddp_num_parameter_tensors": ddp_data["num_parameter_tensors"],
            "norm_types": sorted(
                type(m).__name__
                for m in pl_module.model.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            ),
            "world_size": trainer.world_size,
        }
        path = os.path.join(pl_module.cfg.OUTPUT_DIR, f"rank{trainer.global_rank}.pt")
        torch.save(record, path)


if __name__ == "__main__":
    register_tiny_model()
    register_tiny_datasets(sys.argv[1])
    train_net.main(default_argument_parser().parse_args(sys.argv[2:]), callbacks=[RecordRank()])
