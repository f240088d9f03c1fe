"""Entry script of the two-machine tests: ``_ddp_entry.py`` plus, with ``CLOUDS_TEST_DIE_AT=N``,
a SIGKILL of this process when iteration N starts (a machine that dies mid-run).

Usage: python tests/engine/_machines_entry.py DATA_ROOT <train_net.py arguments>.
"""

from __future__ import annotations

import os
import signal
import sys

import lightning.pytorch as pl

import train_net
from clouds.engine.launch import default_argument_parser
from tests.engine._ddp_entry import RecordRank
from tests.engine._tiny import register_tiny_datasets, register_tiny_model


class DieAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    register_tiny_model()
    register_tiny_datasets(sys.argv[1])
    die_at = os.environ.get("CLOUDS_TEST_DIE_AT")
    callbacks = [RecordRank(), *([DieAt(int(die_at))] if die_at else [])]
    train_net.main(default_argument_parser().parse_args(sys.argv[2:]), callbacks=callbacks)
