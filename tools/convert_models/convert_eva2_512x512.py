"""DGVFM's EVA02 converter, same command line and output file.

Usage: ``python tools/convert_models/convert_eva2_512x512.py
checkpoints/eva02_L_pt_m38m_p14to16.pt checkpoints/eva02_L_converted.pth``

``["model"]`` unwrapped, rotary entries dropped, patch kernel 16x16 and position grid 32x32
(bicubic), as the original (it has no size options). MODEL.VFM.WEIGHTS reads the result.
"""

import argparse
import sys

from clouds.cli_errors import run_cli
from clouds.modeling.backbone.vfm.convert_files import convert_eva02_file, save_converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", metavar="PATH", help="official EVA02 checkpoint")
    parser.add_argument("output", metavar="PATH", help="file to write")
    args = parser.parse_args(argv)

    def convert() -> None:
        save_converted(convert_eva02_file(args.input), args.output)
        sys.stdout.write(f"Load from {args.input}\nSave to {args.output}\n")

    return run_cli(convert, prog="convert_eva2_512x512.py")


if __name__ == "__main__":
    sys.exit(main())
