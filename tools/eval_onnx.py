#!/usr/bin/env python
"""Evaluate an exported ONNX model with onnxruntime on DATASETS.TEST, with ``train_net.py
--eval-only``'s data, metrics, logs and report (OUTPUT_DIR/inference, metrics.json, report).

Usage::

    python tools/eval_onnx.py --config-file CFG --onnx-model model.onnx [KEY VALUE ...]

CFG is the config the model was exported from (test sets, test resolution, TEST.* keys);
MODEL.WEIGHTS is not read. The graph runs on onnxruntime's providers (the CPU at least), one
process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clouds.cli_errors import add_debug_argument, run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate an exported ONNX model.")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="config YAML")
    parser.add_argument(
        "--onnx-model", required=True, type=Path, help="file written by tools/export_onnx.py"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run"
    )
    add_debug_argument(parser)
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides"
    )
    args = parser.parse_args(argv)
    args.eval_only, args.resume = True, False
    return args


def evaluate(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """Results ``{dataset: {"sem_seg": metrics}}`` of the ONNX model on DATASETS.TEST."""
    from clouds.config import ConfigError
    from clouds.data.datasets import register_all_datasets
    from clouds.engine.data_module import CloudsDataModule
    from clouds.engine.launch import build_trainer, setup
    from clouds.engine.lightning_module import CloudsLightningModule
    from clouds.export.runtime import OnnxSegmenter

    cfg = setup(args)
    if not cfg.DATASETS.TEST:
        raise ConfigError("tools/eval_onnx.py needs at least one dataset in DATASETS.TEST")
    register_all_datasets()
    module = CloudsLightningModule(cfg=cfg, model=OnnxSegmenter(args.onnx_model))
    trainer = build_trainer(cfg)
    trainer.validate(module, datamodule=CloudsDataModule(cfg=cfg), verbose=False)
    return module.eval_results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: evaluate(args), prog="eval_onnx.py", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
