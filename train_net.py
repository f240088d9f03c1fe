"""Train or evaluate a CLOUDS / VFM segmenter (detectron2-style command line).

    python train_net.py --config-file configs/warmup/gta/warmup_gta.yaml --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.ckpt
    python train_net.py --config-file CFG --resume          # continue OUTPUT_DIR/last.ckpt

Datasets are read from ``$DETECTRON2_DATASETS`` (default ``datasets/``). See
``python train_net.py --help`` for multi-machine, torchrun and SLURM use.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import lightning.pytorch as pl

from clouds.engine.launch import default_argument_parser, launch_from_args


def main(args: argparse.Namespace, callbacks: Sequence[pl.Callback] = ()) -> dict:
    """Run training or evaluation as ``args`` say; returns the last evaluation results.

    ``callbacks`` are added to the Trainer's (for tools that extend a run).
    """
    return launch_from_args(args, callbacks=callbacks)


if __name__ == "__main__":
    main(default_argument_parser().parse_args())
