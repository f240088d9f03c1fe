"""Run CLOUDS as an experiment in a toy world, on a fresh machine, in a few minutes on a CPU.

    python tools/quickstart.py --output-dir output/quickstart

Makes the toy datasets (every dataset's real layout and label encoding), converts them with the
conversion tools, trains a tiny CLOUDS on toy GTA5 (configs/toy/warmup_gta.yaml, through the
same code as train_net.py), trains as many more iterations as a joint stage on toy GTA5 alone
(the source-only control), generates an unlabelled set with the toy text-to-image generator
(generate_txt_im.py's code), then trains jointly on toy GTA5 + that set from the warm-up twice
(configs/toy/quickstart_joint.yaml): with EMA-teacher pseudo-labels as they are, and refined by
the toy SAM. Every stage's model is scored on toy GTA5, Cityscapes, BDD, Mapillary and ACDC;
DIR/report.md opens with the table of the target average per stage. No dataset or weight
downloads. Re-running continues where an interrupted run stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from clouds.engine.quickstart import TARGETS, QuickstartContext, run_quickstart
from clouds.engine.quickstart_report import target_average
from clouds.engine.writers import setup_logging

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, help="folder for data, runs and report")
    parser.add_argument(
        "--config-file",
        default=str(REPO / "configs" / "toy" / "warmup_gta.yaml"),
        help="warm-up config (default: configs/toy/warmup_gta.yaml)",
    )
    parser.add_argument(
        "--joint-config-file",
        default=str(REPO / "configs" / "toy" / "quickstart_joint.yaml"),
        help="joint-training config (default: configs/toy/quickstart_joint.yaml)",
    )
    parser.add_argument("--num-images", type=int, default=24, help="toy images per split")
    parser.add_argument(
        "--num-generated", type=int, default=192, help="images of the toy generator"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the tiny model's ops are too small to gain from more)",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir).resolve()
    log = setup_logging(str(output_dir))
    start = time.perf_counter()
    ctx = QuickstartContext(
        output_dir=output_dir,
        warmup_config=args.config_file,
        joint_config=args.joint_config_file,
        num_images=args.num_images,
        num_generated=args.num_generated,
        seed=args.seed,
        overrides=list(args.opts or []),
    )
    results = run_quickstart(ctx)
    for stage, metrics in results.items():
        log.info("%-14s target average mIoU %6.2f", stage, target_average(metrics, TARGETS))
    log.info(
        "Quickstart finished in %.0fs; report: %s",
        time.perf_counter() - start,
        output_dir / "report.md",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
