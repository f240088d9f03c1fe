"""Convert an official VFM weight file for DGVFM (patch 16, position grid size / 16).

Usage::

    python tools/convert_vfm_weights.py {dinov2,eva02,clip,sam} INPUT OUTPUT \\
        [--kernel 16] [--height 512] [--width 512] [--patch-resample bicubic]

INPUT is the file the DGVFM README names (``dinov2_vitl14_pretrain.pth``,
``eva02_L_pt_m38m_p14to16.pt``, OpenAI's TorchScript ``ViT-L-14.pt``, ``sam_vit_h_4b8939.pth``).
OUTPUT is a plain state dict as DGVFM's ``tools/convert_models/convert_*.py`` write it (kernel
bicubic, position embedding bicubic / bilinear for CLIP; CLIP's ``visual.`` and SAM's
``image_encoder.`` entries without their prefix). Converting is optional: MODEL.VFM.WEIGHTS
accepts the official file and converts it in memory the same way.
"""

from __future__ import annotations

import argparse
import sys

import torch

from clouds.modeling.backbone.vfm.convert import (
    FAMILIES,
    PATCH_RESAMPLE,
    convert_official_state,
    read_official_file,
)
from clouds.utils.io import atomic_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=FAMILIES, help="which VFM the file holds")
    parser.add_argument("input", help="official weight file")
    parser.add_argument("output", help="converted state dict to write")
    parser.add_argument("--kernel", type=int, default=16, help="patch size to run at")
    parser.add_argument("--height", type=int, default=512, help="crop height of the grid")
    parser.add_argument("--width", type=int, default=512, help="crop width of the grid")
    parser.add_argument(
        "--patch-resample", choices=PATCH_RESAMPLE, default="bicubic", help="kernel resize"
    )
    args = parser.parse_args(argv)
    if args.height % args.kernel or args.width % args.kernel:
        parser.error(f"--height/--width must be multiples of --kernel {args.kernel}")
    grid = (args.height // args.kernel, args.width // args.kernel)
    state = convert_official_state(
        read_official_file(args.input, args.family),
        args.family,
        patch_size=args.kernel,
        grid=grid,
        patch_resample=args.patch_resample,
    )
    with atomic_path(args.output) as tmp:
        torch.save(state, tmp)
    sys.stdout.write(
        f"Wrote {len(state)} entries of {args.family} at patch {args.kernel}, grid "
        f"{grid[0]}x{grid[1]} to {args.output}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
