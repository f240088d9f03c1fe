"""Train or evaluate a CLOUDS / VFM segmenter (detectron2-style command line).

    python train_net.py --config-file configs/warmup/gta/warmup_gta.yaml --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.ckpt
    python train_net.py --config-file CFG --resume          # continue OUTPUT_DIR/last.ckpt

See ``python train_net.py --help`` for multi-machine, torchrun and SLURM use.
"""

from __future__ import annotations

import argparse

from clouds.data.datasets import register_all_datasets
from clouds.engine.launch import configure_distributed_env, default_argument_parser, run, setup


def main(args: argparse.Namespace) -> dict:
    """Set up from ``args`` and run training or evaluation; returns the evaluation results."""
    configure_distributed_env(args)
    cfg = setup(args)
    register_all_datasets()
    return run(
        cfg,
        num_gpus=args.num_gpus,
        num_machines=args.num_machines,
        resume=args.resume,
        eval_only=args.eval_only,
    )


if __name__ == "__main__":
    main(default_argument_parser().parse_args())
