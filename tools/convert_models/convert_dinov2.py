"""DGVFM's DINOv2 converter, same command line and output file.

Usage: ``python tools/convert_models/convert_dinov2.py checkpoints/dinov2_vitl14_pretrain.pth
checkpoints/dinov2_converted.pth [--kernel 16] [--height 512] [--width 512]``

The patch kernel is resized to ``--kernel`` and the position grid to ``(--height, --width) /
--kernel`` (bicubic); every other entry is kept. MODEL.VFM.WEIGHTS reads the result (and the
official file too, converting it in memory).
"""

import sys
from collections.abc import Sequence

from clouds.modeling.backbone.vfm.convert_cli import kernel_grid_converter_main
from clouds.modeling.backbone.vfm.convert_files import convert_dinov2_file


def main(argv: Sequence[str] | None = None) -> int:
    return kernel_grid_converter_main(
        argv,
        prog="convert_dinov2.py",
        description=__doc__.splitlines()[0],
        source_help="official DINOv2 file",
        convert_file=convert_dinov2_file,
    )


if __name__ == "__main__":
    sys.exit(main())
