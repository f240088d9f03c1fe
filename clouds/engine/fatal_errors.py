"""Fatal errors of a run also go to ``OUTPUT_DIR/log.txt``, with their traceback.

The console shows what the command line tool prints (:mod:`clouds.cli_errors`: one message for
a known mistake); the log file of the run keeps the full record of why it stopped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["log_fatal_errors"]

logger = logging.getLogger("clouds")


@contextlib.contextmanager
def log_fatal_errors() -> Iterator[None]:
    """Write an exception leaving the block (``KeyboardInterrupt`` included) to the file
    handlers of the ``clouds`` logger (``log.txt`` after :func:`setup_logging`), then re-raise."""
    try:
        yield
    except BaseException as exc:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            0,
            "Run stopped by %s: %s",
            (type(exc).__name__, exc),
            (type(exc), exc, exc.__traceback__),
        )
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        raise
