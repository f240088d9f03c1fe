"""DGVFM's DINOv2 converter, same command line and output file.

Usage: ``python tools/convert_models/convert_dinov2.py checkpoints/dinov2_vitl14_pretrain.pth
checkpoints/dinov2_converted.pth [--kernel 16] [--height 512] [--width 512]``

The patch kernel is resized to ``--kernel`` and the position grid to ``(--height, --width) /
--kernel`` (bicubic); every other entry is kept. MODEL.VFM.WEIGHTS reads the result (and the
official file too, converting it in memory).
"""

import argparse
import sys

from clouds.cli_errors import run_cli
from clouds.modeling.backbone.vfm.convert_files import convert_dinov2_file, save_converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", help="official DINOv2 file")
    parser.add_argument("converted", help="file to write")
    parser.add_argument("--kernel", default=16, type=int, help="patch size to run at")
    parser.add_argument("--height", default=512, type=int, help="crop height of the grid")
    parser.add_argument("--width", default=512, type=int, help="crop width of the grid")
    args = parser.parse_args(argv)

    def convert() -> None:
        state = convert_dinov2_file(
            args.pretrained, kernel=args.kernel, height=args.height, width=args.width
        )
        save_converted(state, args.converted)
        sys.stdout.write(f"Load from {args.pretrained}\nSave to {args.converted}\n")

    return run_cli(convert, prog="convert_dinov2.py")


if __name__ == "__main__":
    sys.exit(main())
