"""Command line shared by ``tools/convert_datasets/*.py``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from clouds.data.conversion.runner import ConversionResult
from clouds.data.conversion.spec import DatasetConversion, DatasetLayoutError
from clouds.utils.io import DiskFullError

__all__ = ["conversion_main", "report_conversion"]


def report_conversion(name: str, convert: Callable[[], ConversionResult]) -> int:
    """Run ``convert``, write its failures and a one-line summary; returns the exit code.

    Exit codes: 0 all converted or up to date, 1 some files failed (each named on stderr,
    the rest converted) or the disk is full (the file named; the conversion stops), 2 no
    dataset where it was looked for.
    """
    try:
        result = convert()
    except DatasetLayoutError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except DiskFullError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    for message in result.failures:
        sys.stderr.write(f"FAILED: {message}\n")
    sys.stdout.write(
        f"{name}: {result.converted} converted, {result.skipped} up to date, "
        f"{len(result.failures)} failed\n"
    )
    return 0 if result.ok else 1


def conversion_main(spec: DatasetConversion, argv: Sequence[str] | None = None) -> int:
    """Parse ``ROOT [--nproc N] [--force]``, convert, report (:func:`report_conversion`)."""
    parser = argparse.ArgumentParser(
        description=f"Convert {spec.name} labels to 19-class Cityscapes train-ID PNGs "
        f"(255 = ignore). See datasets/README.md."
    )
    parser.add_argument(
        "root",
        help=f"the {spec.name} folder, or the datasets root holding it as {spec.dirname}/",
    )
    parser.add_argument(
        "--nproc", type=int, default=os.cpu_count() or 1, help="worker processes (default: all)"
    )
    parser.add_argument(
        "--force", action="store_true", help="re-convert labels that are already up to date"
    )
    args = parser.parse_args(argv)
    return report_conversion(
        spec.name, lambda: spec.convert(args.root, nproc=args.nproc, force=args.force)
    )
