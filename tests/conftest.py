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


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _LOGGER_NAMES]
    saved = [(log.propagate, log.level, list(log.handlers)) for log in loggers]
    yield
    for log, (propagate, level, handlers) in zip(loggers, saved, strict=True):
        log.propagate, log.level, log.handlers = propagate, level, handlers
