"""The quickstart's experiment for a VFM segmentor: tiny DINOv2 + LoRA with the DGVFM heads.

    python tools/quickstart.py --output-dir output/quickstart       # first (data, generated set)
    python tools/quickstart_vfm.py --output-dir output/quickstart

On the toy datasets and generated images of a quickstart folder (made here when missing), trains
a tiny DINOv2 + LoRA with the light and masked refinement heads on toy GTA5
(configs/toy/quickstart_vfm_warmup.yaml), a source-only control, then joint self-training with
the same EMA teacher and toy SAM (configs/toy/quickstart_vfm_joint.yaml). Every stage is scored
on every toy target; DIR/vfm/report.md opens with the table of the target average per stage.
Re-running continues where an interrupted run stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from clouds.engine.quickstart import TARGETS
from clouds.engine.quickstart_report import target_average
from clouds.engine.vfm_quickstart import VfmQuickstartContext, run_vfm_quickstart
from clouds.engine.writers import setup_logging

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIGS = REPO / "configs" / "toy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir", required=True, help="the quickstart's folder (results go to DIR/vfm)"
    )
    parser.add_argument("--num-images", type=int, default=24, help="toy images per split")
    parser.add_argument(
        "--num-generated", type=int, default=192, help="images of the toy generator"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    parser.add_argument("--num-threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir).resolve()
    ctx = VfmQuickstartContext.under(
        output_dir,
        warmup_config=str(TOY_CONFIGS / "quickstart_vfm_warmup.yaml"),
        joint_config=str(TOY_CONFIGS / "quickstart_vfm_joint.yaml"),
        num_images=args.num_images,
        num_generated=args.num_generated,
        seed=args.seed,
        overrides=list(args.opts or []),
    )
    log = setup_logging(str(ctx.output_dir))
    start = time.perf_counter()
    for stage, metrics in run_vfm_quickstart(ctx).items():
        log.info("vfm %-10s target average mIoU %6.2f", stage, target_average(metrics, TARGETS))
    log.info(
        "VFM quickstart finished in %.0fs; report: %s",
        time.perf_counter() - start,
        ctx.output_dir / "report.md",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
