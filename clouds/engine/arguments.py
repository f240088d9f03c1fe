"""The command line of ``train_net.py`` (detectron2's flags, then ``KEY VALUE`` overrides).

Kept free of heavy imports (Lightning, open_clip, ...) so that ``--help`` and argument errors
answer at once.
"""

from __future__ import annotations

import argparse

__all__ = ["default_argument_parser"]


def default_argument_parser() -> argparse.ArgumentParser:
    """detectron2's training flags, ``--debug``, then ``KEY VALUE`` config overrides."""
    parser = argparse.ArgumentParser(
        description="CLOUDS training and evaluation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  train_net.py --config-file cfg.yaml --num-gpus 8\n"
            "  train_net.py --config-file cfg.yaml --eval-only MODEL.WEIGHTS model_final.ckpt\n"
            "  train_net.py --config-file cfg.yaml --num-gpus 2 MODEL.DEVICE cpu   "
            "(2 CPU processes)\n"
            "  (machine 0) train_net.py --config-file cfg.yaml --num-gpus 8 --num-machines 2 "
            "--machine-rank 0 --dist-url tcp://10.0.0.1:29500\n"
            "  torchrun --nproc-per-node 8 train_net.py --config-file cfg.yaml --num-gpus 8\n"
            "\n"
            "Known mistakes (missing dataset, config file, key or weights) end with one message\n"
            "and exit code 2 (config, command line) or 1 (files, weights); --debug shows the\n"
            "traceback too."
        ),
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUTPUT_DIR from its newest complete checkpoint, if any",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the checkpoints and metrics of the earlier run in OUTPUT_DIR and start anew",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate MODEL.WEIGHTS")
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="only scan every image and label of the config's datasets once (decodable, sizes "
        "match, label values known; cached per file) and report each bad file; training does "
        "this itself when SOLVER.MAX_ITER >= DATALOADER.CHECK_DATA_MIN_ITER",
    )
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine (at least 1), one GPU each: asking for GPUs this machine "
        "lacks is an error; with MODEL.DEVICE cpu, CPU processes",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="rank of this machine")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="tcp://host:port of machine 0 for multi-machine runs; 'auto' picks a free local port",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of known mistakes (missing files, bad keys) too",
    )
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides"
    )
    return parser
