"""Ending a command-line tool on a user's mistake: one message and an exit code, no traceback.

Known mistakes are a config that cannot be used (exit code 2, as argparse), and files that are
missing or unreadable: datasets, checkpoints, weights (exit code 1). Anything else is a bug and
keeps its traceback. ``--debug`` (or the ``clouds`` logger at DEBUG level) prints the traceback
of known mistakes too.

The exception classes are looked up by module and name among the modules already imported,
so this module imports nothing heavy and a tool can use it before its own heavy imports.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

__all__ = ["UserFileError", "add_debug_argument", "run_cli", "user_error_code"]

CONFIG_ERROR_CODE = 2
FILE_ERROR_CODE = 1

# (module, class name) -> exit code of the mistakes these exceptions report.
_KNOWN: dict[tuple[str, str], int] = {
    ("clouds.config", "ConfigError"): CONFIG_ERROR_CODE,
    ("clouds.data.catalog", "UnknownDatasetError"): CONFIG_ERROR_CODE,
    ("clouds.data.datasets.loading", "DatasetNotFoundError"): FILE_ERROR_CODE,
    ("clouds.data.data_check", "DataCheckError"): FILE_ERROR_CODE,
    ("clouds.modeling.checkpoint.state", "CheckpointMismatchError"): FILE_ERROR_CODE,
    ("clouds.modeling.checkpoint.mmengine", "UntrustedCheckpointError"): FILE_ERROR_CODE,
    ("clouds.sam.build", "SamCheckpointError"): FILE_ERROR_CODE,
    ("clouds.utils.weights_source", "WeightsUnavailableError"): FILE_ERROR_CODE,
    ("clouds.utils.weights_file", "WeightsFileError"): FILE_ERROR_CODE,
    ("clouds.utils.io", "ImageReadError"): FILE_ERROR_CODE,
    ("clouds.utils.io", "DiskFullError"): FILE_ERROR_CODE,
    ("clouds.engine.distributed_errors", "PeerLostError"): FILE_ERROR_CODE,
    ("clouds.generation.pipeline", "ModelNotFoundError"): FILE_ERROR_CODE,
    ("clouds.generation.prompts", "PromptFileError"): FILE_ERROR_CODE,
    ("clouds.cli_errors", "UserFileError"): FILE_ERROR_CODE,
}
# A ValueError / FileNotFoundError raised in these modules is about a checkpoint or weight
# file the user named (unreadable, unknown format, not found).
_FILE_READERS = (
    "clouds.modeling.checkpoint.formats",
    "clouds.modeling.checkpoint.full_weights",
    "clouds.modeling.checkpoint.mmengine",
    "clouds.modeling.checkpoint.ours",
    "clouds.modeling.backbone.vfm.weights",
    "clouds.modeling.backbone.vfm.loading",
    "clouds.modeling.backbone.vfm.convert",
    "clouds.modeling.backbone.vfm.convert_files",
)


class UserFileError(FileNotFoundError):
    """A file the config or command line names that is missing; the message says what to do."""

    def __str__(self) -> str:
        return self.args[0]


def _raised_in(tb: TracebackType | None) -> str:
    """Module name of the innermost frame of ``tb`` ("" without one)."""
    module = ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module


def user_error_code(exc: BaseException) -> int | None:
    """The exit code of a known user mistake, or None when ``exc`` is something else."""
    for (module_name, class_name), code in _KNOWN.items():
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    reads_a_file = _raised_in(exc.__traceback__) in _FILE_READERS
    if isinstance(exc, ValueError | FileNotFoundError) and reads_a_file:
        return FILE_ERROR_CODE
    return None


def _traceback_wanted(debug: bool) -> bool:
    return debug or logging.getLogger("clouds").isEnabledFor(logging.DEBUG)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--debug`` flag of every tool that ends through :func:`run_cli`."""
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of known mistakes too"
    )


def run_cli(
    main: Callable[[], object],
    *,
    prog: str,
    debug: bool = False,
    translate: Callable[[BaseException], BaseException | None] | None = None,
) -> int:
    """Run ``main``; return 0, or the exit code of a known mistake after printing
    ``<prog>: error: <message>`` to stderr. Other exceptions propagate.

    Args:
        translate: turns an exception into a clearer known one (e.g. a hub download failure
            into a message naming the config key), or returns None.
    """
    try:
        main()
    except Exception as exc:
        clearer = translate(exc) if translate is not None else None
        error = clearer if clearer is not None else exc
        code = user_error_code(error)
        if code is None:
            raise
        if _traceback_wanted(debug):
            traceback.print_exception(exc)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return code
    return 0
