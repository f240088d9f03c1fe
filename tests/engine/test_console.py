"""Console of a run: each line once, third-party noise a user cannot act on filtered."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning.pytorch  # noqa: F401  (adds Lightning's own console handler at import)
import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from clouds.engine.console import IGNORED_WARNINGS
from clouds.engine.writers import setup_logging


@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where setup_logging(tmp_path) logs; root and Lightning handlers restored after the test.
    (Tests call setup_logging themselves: its console handler binds the test's stdout.)"""
    for name in ("", "lightning.pytorch"):
        log = logging.getLogger(name)
        monkeypatch.setattr(log, "handlers", list(log.handlers))
    return tmp_path / "log.txt"


def test_lightning_lines_once(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(str(log_file.parent))
    rank_zero_info("GPU available: False, used: False")
    rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
    out, err = capsys.readouterr()
    assert out.count("GPU available") == 1 and "GPU available" not in err
    assert "Tip" not in out + err
    assert log_file.read_text().count("GPU available") == 1


def test_other_libraries_warnings_once_in_our_format(
    log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(str(log_file.parent))
    logging.warning("No pretrained weights loaded")  # as open_clip does (root logger)
    out, err = capsys.readouterr()
    assert out.count("No pretrained weights loaded") == 1 and "root WARNING]" in out
    assert "WARNING:root" not in out + err  # no second handler from logging.basicConfig


def test_warnings_a_user_cannot_act_on_are_ignored(log_file: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        setup_logging(str(log_file.parent))  # the filters, inside this recording context
        warnings.warn("Checkpoint directory /out exists and is not empty.", stacklevel=1)
        warnings.warn("Found 213 module(s) in eval mode at the start of training.", stacklevel=1)
        warnings.warn("something the user should see", stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user should see"]
    assert all(reason for _, reason in IGNORED_WARNINGS)
