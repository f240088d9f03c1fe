"""DGVFM's CLIP converter, same command line and output file.

Usage: ``python tools/convert_models/convert_clip.py checkpoints/ViT-L-14.pt
checkpoints/CLIP-ViT-L_converted.pth [--kernel 16] [--height 512] [--embed_dim 1024]``

The ``visual.`` entries of OpenAI's TorchScript archive in float32 without their prefix; patch
kernel resized to ``--kernel`` (bicubic), position grid to ``--height / --kernel`` squared
(bilinear). MODEL.VFM.WEIGHTS reads the result.
"""

import argparse
import sys

from clouds.cli_errors import run_cli
from clouds.modeling.backbone.vfm.convert_files import convert_clip_file, save_converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", help="OpenAI's TorchScript CLIP file")
    parser.add_argument("converted", help="file to write")
    parser.add_argument("--kernel", default=16, type=int, help="patch size to run at")
    parser.add_argument("--height", default=512, type=int, help="crop size of the square grid")
    parser.add_argument("--embed_dim", default=1024, type=int, help="width of the image tower")
    args = parser.parse_args(argv)

    def convert() -> None:
        state = convert_clip_file(
            args.pretrained, kernel=args.kernel, height=args.height, embed_dim=args.embed_dim
        )
        save_converted(state, args.converted)
        sys.stdout.write(f"Load from {args.pretrained}\nSave to {args.converted}\n")

    return run_cli(convert, prog="convert_clip.py")


if __name__ == "__main__":
    sys.exit(main())
