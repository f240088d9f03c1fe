#!/usr/bin/env python
"""Evaluate a segmenter under the 15 ImageNet-C corruptions at 5 severities.

Usage (train_net.py's ``KEY VALUE`` overrides may stand anywhere among the options)::

    python tools/eval_corruptions.py --config-file CFG MODEL.WEIGHTS W --output-dir DIR \\
        [--dataset NAME ...] [--corruptions C ...] [--severities 1 2 3 4 5] [--seed 0] \\
        [KEY VALUE ...]

Evaluates ``--dataset`` (default DATASETS.TEST) clean and under every corruption x severity
with the usual evaluator and test mapper (the corruption is applied to the mapped image, seeded
per image: clouds.evaluation.corruptions). Each finished cell is written to
``DIR/cells/<corruption>_s<severity>.json``; a rerun skips them (resume after a crash). Writes
``DIR/report.md`` / ``report.html`` (clean metrics, mIoU per corruption and severity, means,
% of clean, ACDC per condition and day / night) and ``DIR/report_files/corruptions.png``.
Needs the ``robustness`` extra (``pip install -e ".[robustness]"``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence

from clouds.cli_errors import add_debug_argument, run_cli
from clouds.config import load_config
from clouds.engine.preflight import check_weights
from clouds.evaluation.corruptions import CORRUPTIONS, SEVERITIES

logger = logging.getLogger("eval_corruptions")

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$")  # a config key, e.g. MODEL.WEIGHTS
_ONE_VALUE = ("--config-file", "--output-dir", "--dataset", "--seed")


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the tool's own arguments, the ``KEY VALUE`` config overrides) of ``argv``: a config key
    (upper case, dotted) that is not the value of a one-value option starts an override."""
    own: list[str] = []
    overrides: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if _KEY.match(token) and i + 1 < len(tokens) and not (own and own[-1] in _ONE_VALUE):
            overrides += tokens[i : i + 2]
            i += 2
        else:
            own.append(token)
            i += 1
    return own, overrides


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Evaluate a CLOUDS / VFM segmenter under ImageNet-C corruptions.",
        epilog="Example: tools/eval_corruptions.py --config-file CFG --output-dir "
        "output/corruptions MODEL.WEIGHTS output/model_final.ckpt",
    )
    parser.add_argument(
        "--config-file", default="", metavar="FILE", help="config YAML (default: the defaults)"
    )
    parser.add_argument("--output-dir", required=True, help="cells, report and plot go here")
    parser.add_argument(
        "--dataset", action="append", help="dataset to evaluate (repeat; default DATASETS.TEST)"
    )
    parser.add_argument(
        "--corruptions", nargs="+", default=list(CORRUPTIONS), choices=CORRUPTIONS, metavar="C"
    )
    parser.add_argument(
        "--severities", nargs="+", type=int, default=list(SEVERITIES), choices=SEVERITIES
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed of the per-image seeds")
    add_debug_argument(parser)
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides")
    own, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    args.opts = [*args.opts, *overrides]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    args = parse_args(argv)

    def evaluate() -> None:
        cfg = load_config(args.config_file or None, args.opts or [])
        check_weights(cfg, eval_only=True)
        from clouds.data.datasets import class_names, register_all_datasets
        from clouds.engine.robustness import evaluate_corruptions
        from clouds.evaluation.robustness_report import write_robustness_report

        register_all_datasets()
        datasets = list(args.dataset or cfg.DATASETS.TEST)
        corruptions = list(dict.fromkeys(args.corruptions))
        severities = sorted(set(args.severities))
        cells = evaluate_corruptions(
            cfg,
            args.output_dir,
            datasets=datasets,
            corruptions=corruptions,
            severities=severities,
            seed=args.seed,
        )
        report = write_robustness_report(
            args.output_dir,
            cells,
            datasets=datasets,
            corruptions=corruptions,
            severities=severities,
            class_names=class_names(datasets[0]),
            intro=[
                f"Config {args.config_file}, weights {cfg.MODEL.WEIGHTS or '(none)'}, "
                f"seed {args.seed}."
            ],
        )
        logger.info("Wrote %s", report)

    return run_cli(evaluate, prog="eval_corruptions.py", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
