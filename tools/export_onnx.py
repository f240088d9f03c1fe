#!/usr/bin/env python
"""Export a trained segmenter to ONNX (onnxruntime, TensorRT and other runtimes).

Usage (train_net.py's config handling: ``KEY VALUE`` overrides last)::

    python tools/export_onnx.py --config-file CFG --output model.onnx MODEL.WEIGHTS W [KEY VALUE ...]

Writes ``model.onnx`` (a VFM segmentor with a refinement head also ``model.refine.onnx``):
float32 (1, 3, H, W) RGB 0-255 image in (H, W multiples of the model's size divisibility, the
padding value is the pixel mean), per-class scores (CLOUDS) or light-head logits (VFM) out,
with the normalisation, backbone, head and the model's semantic inference inside. The driver
(clouds.export.runtime, used by ``demo/demo.py --backend onnxruntime`` and
``tools/eval_onnx.py``) does the padding, resizing and the VFM test-time strategy. The class
list is that of ``--dataset`` (default DATASETS.TEST[0]); the text-classifier head's embeddings
of it are stored in the graph. Needs the ``export`` extra (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from clouds.cli_errors import add_debug_argument, run_cli
from clouds.config import load_config
from clouds.engine.preflight import check_weights

logger = logging.getLogger("export_onnx")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Export a CLOUDS / VFM segmenter to ONNX.",
        epilog="Example: tools/export_onnx.py --config-file CFG --output model.onnx "
        "MODEL.WEIGHTS output/model_final.ckpt",
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="config YAML")
    parser.add_argument("--output", default="model.onnx", help="ONNX file to write")
    parser.add_argument("--dataset", help="dataset whose class list the graph predicts")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (18 or newer)")
    add_debug_argument(parser)
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    args = parse_args(argv)

    def export() -> None:
        cfg = load_config(args.config_file, args.opts or [])
        check_weights(cfg, eval_only=True)
        from clouds.data.datasets import register_all_datasets
        from clouds.export.exporter import export_onnx

        register_all_datasets()
        for path in export_onnx(cfg, args.output, dataset_name=args.dataset, opset=args.opset):
            logger.info("Wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)

    return run_cli(export, prog="export_onnx.py", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
