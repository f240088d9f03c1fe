"""Run outputs: python logging to ``log.txt`` + console, ``metrics.json`` (JSON lines)."""

from __future__ import annotations

import json
import logging
import os
import sys
from argparse import Namespace
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from clouds.engine.console import ThirdPartyNoiseFilter, ignore_third_party_warnings

__all__ = ["JsonLinesLogger", "setup_logging"]

_HANDLER_TAG = "_clouds_handler"
_LOGGER_NAMES = ("clouds", "lightning.pytorch", "lightning.fabric", "__main__", "train_net")


def setup_logging(output_dir: str, rank: int = 0) -> logging.Logger:
    """Log ``clouds``, Lightning and the entry script to ``output_dir/log.txt`` (rank 0;
    ``log.txt.rank<N>`` for others) and, on rank 0, to the console. Safe to call again: handlers
    added by an earlier call are replaced.

    Each line is written once: Lightning's own console handler is removed, and warnings other
    libraries log through the root logger go to the same handlers (which also keeps
    ``logging.warning`` calls of those libraries from installing a second console handler).
    Third-party messages a user cannot act on are dropped (:mod:`clouds.engine.console`).
    """
    ignore_third_party_warnings()
    os.makedirs(output_dir, exist_ok=True)
    file_name = "log.txt" if rank == 0 else f"log.txt.rank{rank}"
    formatter = logging.Formatter(
        "[%(asctime)s %(name)s %(levelname)s] %(message)s", datefmt="%m/%d %H:%M:%S"
    )
    handlers: list[logging.Handler] = [logging.FileHandler(os.path.join(output_dir, file_name))]
    if rank == 0:
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ThirdPartyNoiseFilter())
        setattr(handler, _HANDLER_TAG, True)
    for name in ("", *_LOGGER_NAMES):  # "": the root logger (other libraries' warnings)
        log = logging.getLogger(name)
        for old in [h for h in log.handlers if _replaced(h, name)]:
            log.removeHandler(old)
            if getattr(old, _HANDLER_TAG, False):
                old.close()
        for handler in handlers:
            log.addHandler(handler)
        if name:
            log.setLevel(logging.INFO)
            log.propagate = False
    return logging.getLogger("clouds")


def _replaced(handler: logging.Handler, logger_name: str) -> bool:
    """Handlers :func:`setup_logging` removes: its own earlier ones, and the plain console
    handler Lightning adds to its loggers at import (it would print every line a second time)."""
    if getattr(handler, _HANDLER_TAG, False):
        return True
    return logger_name.startswith("lightning") and type(handler) is logging.StreamHandler


class JsonLinesLogger(Logger):
    """Lightning logger appending one JSON object per logging step to ``path``:
    ``{"iteration": step, "<metric>": value, ...}`` (losses, lr, evaluation results)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    @property
    def name(self) -> str:
        return "metrics.json"

    @property
    def version(self) -> str:
        return ""

    def _append(self, record: dict[str, Any]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        record: dict[str, Any] = {"iteration": step}
        record.update({k: float(v) for k, v in metrics.items() if k != "epoch"})
        self._append(record)

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        params = vars(params) if isinstance(params, Namespace) else dict(params)
        if params:
            self._append({"hyperparameters": {k: str(v) for k, v in params.items()}})
