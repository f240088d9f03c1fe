"""One run per OUTPUT_DIR: a lock file naming its holder, and the refusal to mix two runs.

``OUTPUT_DIR/run.lock`` holds ``{"pid", "host", "started"}`` of the process (global rank 0)
that owns the folder. A second run in the same folder stops with a message naming the holder;
a lock left by a process of this host that no longer exists (killed, crashed) is taken over.

A folder that holds checkpoints belongs to the run that wrote them: a new run without
``--resume`` there is refused (``--overwrite`` deletes that run's checkpoints and metrics
first), and ``--resume`` with a config that differs from the folder's ``config.yaml`` is
refused, so ``config.yaml`` always describes the weights beside it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path

import yaml

from clouds.config import ConfigError

__all__ = [
    "RunFolderError",
    "RunLock",
    "RunLockedError",
    "check_run_folder",
    "claim_run_folder",
    "clear_run_outputs",
    "release_run_folder",
    "saved_seed",
]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
# What --overwrite deletes: the previous run's checkpoints and logged metrics.
_RUN_OUTPUT_PATTERNS = ("*.ckpt", "metrics.json", "events.out.tfevents.*")
# An unreadable lock younger than this may be one being written right now.
_UNREADABLE_LOCK_GRACE_S = 5.0


class RunLockedError(ConfigError):
    """OUTPUT_DIR is in use by another live run; the message names its pid and host."""


class RunFolderError(ConfigError):
    """OUTPUT_DIR holds another run's checkpoints (or a different config) than this command's."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """``OUTPUT_DIR/run.lock``: :meth:`acquire` creates it (or takes over a stale one),
    :meth:`release` removes it if it is still ours. Also released at interpreter exit."""

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.path = Path(output_dir) / LOCK_NAME
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def _read_holder(self) -> dict | None:
        """The holder recorded in the lock file; None when it is gone or unreadable."""
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _is_stale(self, holder: dict | None) -> bool:
        if holder is None:  # half-written by a process killed while creating it
            with contextlib.suppress(FileNotFoundError):
                return time.time() - self.path.stat().st_mtime > _UNREADABLE_LOCK_GRACE_S
            return True
        if holder.get("host") != self.owner["host"]:
            return False  # cannot tell whether a process on another machine is alive
        pid = int(holder.get("pid", -1))
        return pid == self.owner["pid"] or not _pid_alive(pid)

    def acquire(self) -> None:
        """Create the lock file.

        Raises:
            RunLockedError: a live process (or one on another host) holds the folder.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps({**self.owner, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_holder()
                if not self._is_stale(holder):
                    who = (
                        f"process {holder.get('pid')} on host {holder.get('host')} "
                        f"(since {holder.get('started', '?')})"
                        if holder
                        else "another process"
                    )
                    raise RunLockedError(
                        f"OUTPUT_DIR {self.path.parent} is in use by {who}: its lock file is "
                        f"{self.path}. Wait for that run to end or choose another OUTPUT_DIR; "
                        f"delete the lock file only if that process is really gone."
                    ) from None
                logger.warning(
                    "Taking over the stale lock %s of %s, which is no longer running",
                    self.path,
                    holder or "an unknown process",
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(content)
            self.held = True
            atexit.register(self.release)
            return
        raise RunLockedError(f"Could not take the lock {self.path}: another run keeps taking it")

    def release(self) -> None:
        """Remove the lock file if this process still holds it."""
        if not self.held:
            return
        self.held = False
        holder = self._read_holder()
        if holder is not None and holder.get("pid") == self.owner["pid"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _flatten(node: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, object] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _has_checkpoints(output_dir: Path) -> bool:
    return any(p.is_file() for p in output_dir.glob("*.ckpt"))


def saved_seed(output_dir: str | os.PathLike) -> int | None:
    """SEED of the run whose ``config.yaml`` is in ``output_dir`` (None without one)."""
    path = Path(output_dir) / "config.yaml"
    if not path.is_file():
        return None
    seed = (yaml.safe_load(path.read_text()) or {}).get("SEED")
    return int(seed) if isinstance(seed, int) and seed >= 0 else None


def check_run_folder(output_dir: str | os.PathLike, config_yaml: str, *, resume: bool) -> None:
    """Refuse to mix this run with the one whose checkpoints are in ``output_dir``.

    Args:
        config_yaml: this run's full config, as ``cfg.dump()`` writes it.
        resume: whether ``--resume`` was given.

    Raises:
        RunFolderError: checkpoints there without ``--resume``, or ``--resume`` with a config
            that differs from the folder's ``config.yaml`` (the differing keys are named).
    """
    folder = Path(output_dir)
    if not _has_checkpoints(folder):
        return
    if not resume:
        raise RunFolderError(
            f"OUTPUT_DIR {folder} holds the checkpoints of an earlier run. Pass --resume to "
            f"continue it, choose another OUTPUT_DIR, or pass --overwrite to delete its "
            f"checkpoints and metrics and start again."
        )
    saved_path = folder / "config.yaml"
    if not saved_path.is_file():
        raise RunFolderError(
            f"OUTPUT_DIR {folder} holds checkpoints but no config.yaml, so --resume cannot tell "
            f"which run wrote them. Choose another OUTPUT_DIR or pass --overwrite."
        )
    saved = _flatten(yaml.safe_load(saved_path.read_text()) or {})
    new = _flatten(yaml.safe_load(config_yaml) or {})
    differing = sorted(
        k for k in saved.keys() | new.keys() if k != "OUTPUT_DIR" and saved.get(k) != new.get(k)
    )
    if differing:
        shown = "; ".join(f"{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in differing[:8])
        more = f" (and {len(differing) - 8} more)" if len(differing) > 8 else ""
        raise RunFolderError(
            f"--resume in {folder}: this config differs from the run there ({saved_path}): "
            f"{shown}{more}. Resume with the same config, choose another OUTPUT_DIR, or pass "
            f"--overwrite to start a new run there."
        )


def clear_run_outputs(output_dir: str | os.PathLike) -> list[Path]:
    """``--overwrite``: delete the checkpoints and metrics of the run in ``output_dir``;
    returns the deleted paths."""
    folder = Path(output_dir)
    removed = [p for pattern in _RUN_OUTPUT_PATTERNS for p in folder.glob(pattern) if p.is_file()]
    for path in removed:
        path.unlink()
    if removed:
        logger.warning(
            "--overwrite: deleted %d files of the earlier run in %s", len(removed), folder
        )
    return removed


def claim_run_folder(
    output_dir: str | os.PathLike,
    config_yaml: str,
    *,
    resume: bool,
    overwrite: bool,
    eval_only: bool = False,
) -> str:
    """Lock ``output_dir`` for this run (global rank 0), then apply ``--overwrite`` or refuse to
    mix runs (:func:`check_run_folder`). The lock is released at exit.

    An evaluation (``eval_only``) writes no checkpoint: it may share a training run's folder,
    and its config goes to ``config_eval.yaml`` there so that ``config.yaml`` stays the
    training's. Returns the name of the file to write this run's config to.

    Raises:
        RunLockedError, RunFolderError: see :class:`RunLock` and :func:`check_run_folder`.
    """
    lock = RunLock(output_dir)
    lock.acquire()
    try:
        if overwrite:
            clear_run_outputs(output_dir)
        if eval_only:
            return "config_eval.yaml" if _has_checkpoints(Path(output_dir)) else "config.yaml"
        check_run_folder(output_dir, config_yaml, resume=resume)
    except BaseException:
        lock.release()
        raise
    return "config.yaml"


def release_run_folder(output_dir: str | os.PathLike) -> None:
    """Remove ``output_dir``'s lock if this process holds it (at the end of a run started in a
    process that goes on, e.g. a test or a tool)."""
    lock = RunLock(output_dir)
    lock.held = True
    lock.release()
