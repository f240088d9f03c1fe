"""Scan every image and label of a config's datasets once, and report each bad file.

    python tools/check_data.py --config-file configs/warmup/gta/train_gta.yaml
    python tools/check_data.py --config-file CFG --eval-only        # DATASETS.TEST only
    python tools/check_data.py --config-file CFG DATASETS.TRAIN "('gta5',)"

Each image must decode; each label map must decode, have its image's size and hold only class
ids below MODEL.SEM_SEG_HEAD.NUM_CLASSES or the ignore label. Results are cached per file
(``$CLOUDS_CACHE_DIR``, default ``~/.cache/clouds``), so a second scan reads only what changed
and an interrupted one resumes. Exit code 0 when every file is good, 1 with one line per bad
file (``<dataset>: <problem naming the file>``), 2 for a config mistake. Same as
``train_net.py --config-file CFG --check-data``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from clouds.cli_errors import add_debug_argument, run_cli  # noqa: E402
from clouds.config import load_config  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="check_data.py",
        description="Scan every image and label of a config's datasets once (cached per file) "
        "and report each bad file with its dataset.",
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--eval-only", action="store_true", help="only the evaluation sets (DATASETS.TEST)"
    )
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: auto)")
    add_debug_argument(parser)
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE config overrides"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def check() -> None:
        from clouds.data.data_check import check_config_data
        from clouds.engine.preflight import check_datasets

        cfg = load_config(args.config_file or None, args.opts or [])
        check_datasets(cfg, eval_only=args.eval_only)
        total = check_config_data(cfg, eval_only=args.eval_only, workers=args.workers or None)
        print(f"check-data: {total} images (with their labels) checked, none bad")

    return run_cli(check, prog="check_data.py", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
