#!/usr/bin/env python
"""Plot training curves (losses, lr, mIoU per eval dataset) of one or more runs to a PNG.

Usage::

    python tools/plot_metrics.py OUTPUT_DIR [OUTPUT_DIR ...] [--output PNG]

Each OUTPUT_DIR holds the ``metrics.json`` a training run writes (a metrics.json path works
too). Several runs are drawn on the same chart, one colour per run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from clouds.evaluation.metrics_plot import load_run, plot_runs


def _run_names(sources: Sequence[Path]) -> list[str]:
    """Folder names, or full paths when two runs share a folder name."""
    names = [s.name if s.is_dir() else s.parent.name for s in sources]
    return names if len(set(names)) == len(names) else [str(s) for s in sources]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="OUTPUT_DIRs (or metrics.json files)")
    parser.add_argument(
        "--output", type=Path, default=None, help="PNG to write (default: FIRST_RUN/metrics.png)"
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=(1200, 800), metavar=("W", "H"), help="pixels"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        runs = [load_run(s, n) for s, n in zip(args.runs, _run_names(args.runs))]
    except FileNotFoundError as e:
        parser.error(str(e))
    first = args.runs[0]
    output = args.output or (first if first.is_dir() else first.parent) / "metrics.png"
    plot_runs(runs, output, size=tuple(args.size))
    logging.info("wrote %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
