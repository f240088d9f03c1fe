"""DGVFM's SAM converter, same command line and output file.

Usage: ``python tools/convert_models/convert_sam.py checkpoints/sam_vit_h_4b8939.pth
checkpoints/sam_vit_h_converted.pth [--kernel 16] [--height 512] [--width 512]``

The ``image_encoder.`` entries without their prefix; patch kernel resized to ``--kernel`` and
the position grid to ``(--height, --width) / --kernel`` (bicubic). MODEL.VFM.WEIGHTS reads the
result.
"""

import sys
from collections.abc import Sequence

from clouds.modeling.backbone.vfm.convert_cli import kernel_grid_converter_main
from clouds.modeling.backbone.vfm.convert_files import convert_sam_file


def main(argv: Sequence[str] | None = None) -> int:
    return kernel_grid_converter_main(
        argv,
        prog="convert_sam.py",
        description=__doc__.splitlines()[0],
        source_help="official SAM checkpoint",
        convert_file=convert_sam_file,
    )


if __name__ == "__main__":
    sys.exit(main())
