"""Train or evaluate a CLOUDS / VFM segmenter (detectron2-style command line).

    python train_net.py --config-file configs/warmup/gta/train_gta.yaml --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.ckpt
    python train_net.py --config-file CFG --resume          # continue the run in OUTPUT_DIR

Datasets are read from ``$DETECTRON2_DATASETS`` (default ``datasets/``). See
``python train_net.py --help`` for multi-machine, torchrun and SLURM use.

The command line and config are checked before Lightning and the model libraries are imported
(:mod:`clouds.engine.preflight`), so ``--help`` and mistakes answer at once; a known mistake
ends with one message and an exit code (``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clouds.cli_errors import run_cli
from clouds.config import load_config
from clouds.data.data_check import check_config_data
from clouds.engine.arguments import default_argument_parser
from clouds.engine.preflight import check_data_before_training, check_datasets, run_preflight
from clouds.utils.weights_source import (
    WeightsUnavailableError,
    is_hub_unavailable_error,
    weights_unavailable_message,
)

if TYPE_CHECKING:
    import lightning.pytorch as pl


def main(args: argparse.Namespace, callbacks: Sequence[pl.Callback] = ()) -> dict:
    """Run training or evaluation as ``args`` say; returns the last evaluation results.

    ``callbacks`` are added to the Trainer's (for tools that extend a run).
    """
    from clouds.engine.launch import launch_from_args

    return launch_from_args(args, callbacks=callbacks)


def cli(argv: Sequence[str] | None = None) -> int:
    """``train_net.py`` as a command: check, then run; returns the exit code."""
    args = default_argument_parser().parse_args(argv)
    cfg = None
    needs, hub_problem = [], None

    def checked_main() -> None:
        nonlocal cfg, needs, hub_problem
        cfg = load_config(args.config_file or None, args.opts or [])
        if args.check_data:  # only the scan of every image and label
            check_datasets(cfg, eval_only=args.eval_only)
            total = check_config_data(cfg, eval_only=args.eval_only)
            print(f"check-data: {total} images (with their labels) checked, none bad")
            return
        needs, hub_problem = run_preflight(
            cfg, num_gpus=args.num_gpus, eval_only=args.eval_only, resume=args.resume
        )
        if not args.eval_only:
            check_data_before_training(cfg)
        main(args)

    def translate(exc: BaseException) -> BaseException | None:
        if not needs or not is_hub_unavailable_error(exc):
            return None
        reason = hub_problem or "the download failed"
        return WeightsUnavailableError(weights_unavailable_message(needs[0], reason))

    return run_cli(checked_main, prog="train_net.py", debug=args.debug, translate=translate)


if __name__ == "__main__":
    sys.exit(cli())
