"""Write miniature, seeded copies of every dataset in their real layouts and raw labels.

Usage::

    python tools/make_toy_datasets.py --root DIR [--seed S] [--num-images N] [--size H W] [--convert]
        [--dgvfm-layout]

Without ``--convert`` the labels stay raw, as the real datasets ship; convert them with
``python tools/convert_datasets/{gta,cityscapes,synthia,mapillary}.py DIR``. Then
``DETECTRON2_DATASETS=DIR`` makes every dataset loadable. See datasets/README.md.
``--dgvfm-layout`` also lays BDD100K and Mapillary out as the original DGVFM repository's
``data/`` folder (``DGVFM_DATASETS=DIR``; with ``--convert`` its Mapillary conversion runs too).
"""

import argparse
import sys
import time
from collections.abc import Sequence

from clouds.data.conversion.mapillary_dgvfm import convert_mapillary_dgvfm
from clouds.data.toy import make_converted_toy_datasets, make_toy_datasets
from clouds.data.toy.dgvfm_layout import add_dgvfm_layouts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="datasets root to write")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--num-images", type=int, default=8, help="images per split of each dataset (default 8)"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(64, 128),
        metavar=("H", "W"),
        help="image height and width (default 64 128)",
    )
    parser.add_argument("--convert", action="store_true", help="also run the label conversions")
    parser.add_argument(
        "--dgvfm-layout",
        action="store_true",
        help="also lay BDD100K and Mapillary out as the original DGVFM's data/ folder",
    )
    args = parser.parse_args(argv)
    make = make_converted_toy_datasets if args.convert else make_toy_datasets
    start = time.perf_counter()
    root = make(args.root, seed=args.seed, num_images=args.num_images, size=tuple(args.size))
    if args.dgvfm_layout:
        add_dgvfm_layouts(root)
        if args.convert:
            mapillary = root / "mapillary"
            convert_mapillary_dgvfm(mapillary, mapillary / "cityscapes_trainIdLabel", train_id=True)
    sys.stdout.write(f"Toy datasets written to {root} in {time.perf_counter() - start:.1f}s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
