"""Convert Mapillary Vistas labels to 19-class Cityscapes train-ID PNGs.

Usage: ``python tools/convert_datasets/mapillary.py ROOT [--nproc N]``

See datasets/README.md for the layout and where the converted files are written.
"""

import sys

from clouds.data.conversion import MAPILLARY_CONVERSION
from clouds.data.conversion.cli import conversion_main

if __name__ == "__main__":
    sys.exit(conversion_main(MAPILLARY_CONVERSION))
