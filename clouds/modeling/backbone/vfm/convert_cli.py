"""Command line of the original DGVFM converters that resize the patch kernel and the position
grid (``convert_dinov2.py``, ``convert_sam.py``): ``SRC DST [--kernel] [--height] [--width]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, MutableMapping, Sequence

import torch

from clouds.cli_errors import run_cli
from clouds.modeling.backbone.vfm.convert_files import save_converted

__all__ = ["kernel_grid_converter_main"]

GridConverter = Callable[..., MutableMapping[str, torch.Tensor]]


def kernel_grid_converter_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    source_help: str,
    convert_file: GridConverter,
) -> int:
    """Parse the original's arguments, convert ``SRC`` with ``convert_file(SRC, kernel=,
    height=, width=)``, save to ``DST``; returns the exit code (errors in one line)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("pretrained", help=source_help)
    parser.add_argument("converted", help="file to write")
    parser.add_argument("--kernel", default=16, type=int, help="patch size to run at")
    parser.add_argument("--height", default=512, type=int, help="crop height of the grid")
    parser.add_argument("--width", default=512, type=int, help="crop width of the grid")
    args = parser.parse_args(argv)

    def convert() -> None:
        state = convert_file(
            args.pretrained, kernel=args.kernel, height=args.height, width=args.width
        )
        save_converted(state, args.converted)
        sys.stdout.write(f"Load from {args.pretrained}\nSave to {args.converted}\n")

    return run_cli(convert, prog=prog)
