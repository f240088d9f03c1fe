"""Convert Mapillary Vistas labels as the original DGVFM does (its own class mapping).

Usage: ``python tools/convert_datasets/mapillary2cityscape.py data/mapillary
data/mapillary/cityscapes_trainIdLabel --train_id [--version v1.2] [--nproc N]``

Reads ``<root>/config_<version>.json`` and ``<root>/{training,validation}/<version>/labels/*.png``;
writes ``<save_dir>/{train,val}/label/<key>.png`` (train IDs with ``--train_id``, else Cityscapes
label IDs), which the DGVFM configs' ``dg_mapillary_*`` datasets read. The CLOUDS configs use
``tools/convert_datasets/mapillary.py`` (the original CLOUDS mapping) instead.
"""

import argparse
import os
import sys

from clouds.data.conversion.cli import report_conversion
from clouds.data.conversion.mapillary_dgvfm import convert_mapillary_dgvfm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ori_root_dir", help="the Mapillary Vistas folder")
    parser.add_argument("save_dir", help="folder to write {train,val}/label/ into")
    parser.add_argument("--version", default="v1.2", help="label version folder (default v1.2)")
    parser.add_argument("--train_id", action="store_true", help="write train IDs (0-18, 255)")
    parser.add_argument("--nproc", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--force", action="store_true", help="re-convert up-to-date labels")
    args = parser.parse_args(argv)
    return report_conversion(
        "mapillary",
        lambda: convert_mapillary_dgvfm(
            args.ori_root_dir,
            args.save_dir,
            version=args.version,
            train_id=args.train_id,
            nproc=args.nproc,
            force=args.force,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
