#!/usr/bin/env python
"""Write test-server submissions for Cityscapes and ACDC (one zip per server).

Usage (options first, then train_net.py's ``KEY VALUE`` overrides)::

    python tools/make_submission.py --config-file CFG --output-dir DIR \\
        [--dataset cityscapes_test] [--dataset acdc_fog_test ...] MODEL.WEIGHTS W [KEY VALUE ...]

Predicts every image of the test splits (default: cityscapes_test and the four
acdc_<condition>_test; registered from the original folder layouts, see datasets/README.md)
with the model and test mapper of ``train_net.py --eval-only``, at the input image's size, and
writes ``DIR/cityscapes_test.zip`` (Cityscapes label IDs, ``{city}_{seq}_{frame}.png``) and
``DIR/acdc_test.zip`` (train IDs, named as the input images, all conditions), each checked
against the server's rules once written (clouds.evaluation.submission).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from clouds.cli_errors import add_debug_argument, run_cli
from clouds.config import load_config
from clouds.engine.preflight import check_weights

logger = logging.getLogger("make_submission")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write Cityscapes / ACDC test-server submissions.",
        epilog="Example: tools/make_submission.py --config-file CFG --output-dir "
        "output/submission MODEL.WEIGHTS output/model_final.ckpt",
    )
    parser.add_argument(
        "--config-file", default="", metavar="FILE", help="config YAML (default: the defaults)"
    )
    parser.add_argument("--output-dir", required=True, help="the zips go here")
    parser.add_argument(
        "--dataset",
        action="append",
        help="test split to predict (repeat; default cityscapes_test and acdc_*_test)",
    )
    add_debug_argument(parser)
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    args = parse_args(argv)

    def submit() -> None:
        cfg = load_config(args.config_file or None, args.opts or [])
        check_weights(cfg, eval_only=True)
        from clouds.data.datasets import TEST_SPLIT_NAMES, register_all_datasets
        from clouds.engine.submission import write_submissions

        register_all_datasets()
        for path in write_submissions(cfg, args.output_dir, args.dataset or TEST_SPLIT_NAMES):
            logger.info("Ready to upload: %s", path)

    return run_cli(submit, prog="make_submission.py", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
