"""DGVFM's SAM converter, same command line and output file.

Usage: ``python tools/convert_models/convert_sam.py checkpoints/sam_vit_h_4b8939.pth
checkpoints/sam_vit_h_converted.pth [--kernel 16] [--height 512] [--width 512]``

The ``image_encoder.`` entries without their prefix; patch kernel resized to ``--kernel`` and
the position grid to ``(--height, --width) / --kernel`` (bicubic). MODEL.VFM.WEIGHTS reads the
result.
"""

import argparse
import sys

from clouds.cli_errors import run_cli
from clouds.modeling.backbone.vfm.convert_files import convert_sam_file, save_converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", help="official SAM checkpoint")
    parser.add_argument("converted", help="file to write")
    parser.add_argument("--kernel", default=16, type=int, help="patch size to run at")
    parser.add_argument("--height", default=512, type=int, help="crop height of the grid")
    parser.add_argument("--width", default=512, type=int, help="crop width of the grid")
    args = parser.parse_args(argv)

    def convert() -> None:
        state = convert_sam_file(
            args.pretrained, kernel=args.kernel, height=args.height, width=args.width
        )
        save_converted(state, args.converted)
        sys.stdout.write(f"Load from {args.pretrained}\nSave to {args.converted}\n")

    return run_cli(convert, prog="convert_sam.py")


if __name__ == "__main__":
    sys.exit(main())
