"""Known user mistakes end with one message and an exit code; other errors keep their traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clouds.cli_errors import UserFileError, run_cli, user_error_code
from clouds.config import ConfigError, load_config


def _raise(exc: BaseException):
    def main() -> None:
        raise exc

    return main


def test_config_error_is_code_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        load_config(None, ["SOLVER.MAX_ITE", "3"])

    assert run_cli(main, prog="tool") == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "tool: error: command-line override: Non-existent key: SOLVER.MAX_ITE "
        "(did you mean SOLVER.MAX_ITER?)"
    )


def test_debug_and_log_level_show_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(_raise(UserFileError("x missing")), prog="tool", debug=True) == 1
    assert "Traceback" in capsys.readouterr().err
    logger = logging.getLogger("clouds")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        assert run_cli(_raise(UserFileError("x missing")), prog="tool") == 1
    finally:
        logger.setLevel(old)
    assert "Traceback" in capsys.readouterr().err


def test_other_errors_propagate() -> None:
    with pytest.raises(ZeroDivisionError):
        run_cli(_raise(ZeroDivisionError("bug")), prog="tool")
    assert run_cli(lambda: None, prog="tool") == 0


def test_translate_turns_an_error_into_a_known_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        _raise(RuntimeError("download failed")),
        prog="tool",
        translate=lambda e: UserFileError(f"set KEY instead ({e})"),
    )
    assert code == 1 and "tool: error: set KEY instead (download failed)" in capsys.readouterr().err


def test_bad_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    from clouds.modeling.checkpoint import read_checkpoint

    bad = tmp_path / "model_final.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as info:
        read_checkpoint(bad)
    assert user_error_code(info.value) == 1
    assert user_error_code(ValueError("raised elsewhere")) is None
    assert user_error_code(ConfigError("bad value")) == 2
