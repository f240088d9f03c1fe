"""One run per OUTPUT_DIR: the lock file, stale locks, and the refusal to mix two runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clouds.cli_errors import user_error_code
from clouds.config import load_config
from clouds.engine.arguments import default_argument_parser
from clouds.engine.launch import setup
from clouds.engine.run_lock import (
    RunFolderError,
    RunLock,
    RunLockedError,
    check_run_folder,
    release_run_folder,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toy" / "Base-Toy-CLOUDS.yaml"


def _write_lock(folder: Path, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (folder / "run.lock").write_text(json.dumps(holder))


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_records_pid_and_host_and_is_released(tmp_path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire()
    holder = json.loads((tmp_path / "run.lock").read_text())
    assert holder["host"] == socket.gethostname() and holder["pid"] > 0
    lock.release()
    assert not (tmp_path / "run.lock").exists()


def test_second_run_is_refused_naming_the_holder(tmp_path, live_pid) -> None:
    _write_lock(tmp_path, live_pid)
    with pytest.raises(RunLockedError, match=rf"process {live_pid} on host .*run\.lock"):
        RunLock(tmp_path).acquire()
    _write_lock(tmp_path, live_pid, host="another-machine")
    with pytest.raises(RunLockedError, match="another-machine"):
        RunLock(tmp_path).acquire()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path) -> None:
    _write_lock(tmp_path, _dead_pid())
    lock = RunLock(tmp_path)
    lock.acquire()
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == lock.owner["pid"]
    lock.release()


def test_checkpoints_of_another_run_need_resume_or_overwrite(tmp_path) -> None:
    cfg = load_config(str(CONFIG), ["OUTPUT_DIR", str(tmp_path)])
    check_run_folder(tmp_path, cfg.dump(), resume=False)  # empty folder: fine
    (tmp_path / "config.yaml").write_text(cfg.dump())
    (tmp_path / "last.ckpt").write_bytes(b"x")
    with pytest.raises(RunFolderError, match="--resume.*another OUTPUT_DIR.*--overwrite") as e:
        check_run_folder(tmp_path, cfg.dump(), resume=False)
    assert user_error_code(e.value) == 2
    check_run_folder(tmp_path, cfg.dump(), resume=True)
    other = load_config(str(CONFIG), ["OUTPUT_DIR", str(tmp_path), "SOLVER.BASE_LR", "0.5"])
    with pytest.raises(RunFolderError, match=r"SOLVER\.BASE_LR: 0\.0001 -> 0\.5"):
        check_run_folder(tmp_path, other.dump(), resume=True)


def _setup(tmp_path: Path, *flags: str, lr: str = "0.0001"):
    argv = ["--config-file", str(CONFIG), *flags, "OUTPUT_DIR", str(tmp_path)]
    return setup(default_argument_parser().parse_args([*argv, "SOLVER.BASE_LR", lr]))


def test_setup_locks_refuses_mixing_and_overwrite_starts_anew(tmp_path, live_pid) -> None:
    cfg = _setup(tmp_path)
    assert (tmp_path / "run.lock").exists()
    release_run_folder(tmp_path)
    (tmp_path / "model_0000010.ckpt").write_bytes(b"x")
    (tmp_path / ".last.ckpt.0123456789ab.tmp.ckpt").write_bytes(b"half")
    with pytest.raises(RunFolderError):
        _setup(tmp_path, lr="0.5")
    with pytest.raises(RunFolderError, match="SOLVER.BASE_LR"):
        _setup(tmp_path, "--resume", lr="0.5")
    assert load_config(str(tmp_path / "config.yaml")).SOLVER.BASE_LR == cfg.SOLVER.BASE_LR
    _setup(tmp_path, "--eval-only", lr="0.5")  # evaluates beside the run, writes no checkpoint
    release_run_folder(tmp_path)
    assert load_config(str(tmp_path / "config_eval.yaml")).SOLVER.BASE_LR == 0.5
    assert load_config(str(tmp_path / "config.yaml")).SOLVER.BASE_LR == cfg.SOLVER.BASE_LR
    _setup(tmp_path, "--resume")  # same config: continues, leftover temp file removed
    assert not (tmp_path / ".last.ckpt.0123456789ab.tmp.ckpt").exists()
    release_run_folder(tmp_path)
    _setup(tmp_path, "--overwrite", lr="0.5")
    assert not (tmp_path / "model_0000010.ckpt").exists()
    assert load_config(str(tmp_path / "config.yaml")).SOLVER.BASE_LR == 0.5
    release_run_folder(tmp_path)
    _write_lock(tmp_path, live_pid)
    with pytest.raises(RunLockedError):
        _setup(tmp_path, "--resume", lr="0.5")
