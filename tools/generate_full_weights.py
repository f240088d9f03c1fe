"""DGVFM's ``generate_full_weights.py``: backbone + Rein + head of a Rein DINOv2 run in one file.

Usage: ``python tools/generate_full_weights.py --dinov2_segmentor_path OUT.pth --backbone
checkpoints/dinov2_vitl14_pretrain.pth --rein_head CHECKPOINT``

``--rein_head`` is a checkpoint of a MODEL.REIN.ENABLED run of ours (or an original mmengine
checkpoint, read with ``--trust-pickle`` when it holds pickled objects). OUT gets the original's
key layout (``backbone.*`` the converted DINOv2, ``backbone.reins.*``, ``decode_head.*``) and
loads through MODEL.WEIGHTS. As the original, an existing OUT is left as it is.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from clouds.cli_errors import run_cli
from clouds.modeling.checkpoint.full_weights import full_rein_checkpoint
from clouds.modeling.checkpoint.ours import write_checkpoint


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dinov2_segmentor_path", required=True, help="file to write")
    parser.add_argument("--backbone", required=True, help="official DINOv2 file")
    parser.add_argument("--rein_head", required=True, help="checkpoint of the Rein run")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a --rein_head holding pickled objects (an original mmengine checkpoint)",
    )
    args = parser.parse_args(argv)

    def generate() -> None:
        if os.path.isfile(args.dinov2_segmentor_path):
            sys.stdout.write(f"{args.dinov2_segmentor_path} exists; left as it is\n")
            return
        payload = full_rein_checkpoint(
            args.rein_head, args.backbone, trust_pickle=args.trust_pickle
        )
        write_checkpoint(payload, args.dinov2_segmentor_path)
        sys.stdout.write(f"Wrote {args.dinov2_segmentor_path}\n")

    return run_cli(generate, prog="generate_full_weights.py")


if __name__ == "__main__":
    sys.exit(main())
