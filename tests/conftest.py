"""Test-wide settings: CPU only, few threads, deterministic seeds, loggers as each test found
them (a run's ``setup_logging`` stops the project's loggers from propagating to the root,
where pytest's ``caplog`` listens)."""

import logging
import os
from collections.abc import Iterator

import pytest
import torch

from clouds.engine.writers import _LOGGER_NAMES

torch.set_num_threads(int(os.environ.get("CLOUDS_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


# the project's loggers as the session found them, restored after every test (module- and
# session-scoped fixtures that run a quickstart or training call setup_logging before any
# function-scoped fixture could save their state)
_BASELINE = {
    name: (log.propagate, log.level, list(log.handlers))
    for name, log in ((name, logging.getLogger(name)) for name in _LOGGER_NAMES)
}


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    yield
    for name, (propagate, level, handlers) in _BASELINE.items():
        log = logging.getLogger(name)
        log.propagate, log.level, log.handlers = propagate, level, list(handlers)
