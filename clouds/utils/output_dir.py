"""Whether a run can write its OUTPUT_DIR, checked before any work starts.

A folder that is a file, read-only, on a read-only or full filesystem, or not ours to write
is answered in one line naming OUTPUT_DIR, before ``config.yaml`` / ``log.txt`` are written and
before the model is built. The check creates no folder and leaves nothing behind: it writes one
probe file in the deepest folder of the path that exists and removes it at once.
"""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import tempfile
from pathlib import Path

from clouds.cli_errors import UserFileError
from clouds.utils.weights_file import human_size

__all__ = ["MIN_FREE_BYTES", "OutputDirError", "check_output_dir"]

# Less free space than this cannot hold a run's log, config and one checkpoint.
MIN_FREE_BYTES = 64 * 10**6
_TODO = "Set OUTPUT_DIR to a folder this user can write (e.g. OUTPUT_DIR /scratch/$USER/run)."


class OutputDirError(UserFileError):
    """OUTPUT_DIR cannot be written; the message (one line) says why and what to do."""


def _deepest_existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _write_problem(error: OSError, folder: Path) -> str:
    """Why writing into ``folder`` failed, in words."""
    if error.errno == errno.EROFS:
        return f"{folder} is on a read-only filesystem"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"{folder} is not writable by {_user()} (permission denied)"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left in {folder} (disk full or quota reached)"
    return f"writing into {folder} fails ({error.strerror or type(error).__name__})"


def _probe(folder: Path) -> None:
    """Create, write and remove one file in ``folder``; raises the OSError of any step."""
    fd, name = tempfile.mkstemp(prefix=".clouds-write-test-", dir=folder)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
        os.unlink(name)


def check_output_dir(output_dir: str, *, key: str = "OUTPUT_DIR") -> None:
    """Check that ``output_dir`` is (or can be created as) a folder this process can write,
    on a filesystem with at least :data:`MIN_FREE_BYTES` free. Nothing is created.

    Raises:
        OutputDirError: naming ``key``, the folder and the reason.
    """
    if not output_dir:
        raise OutputDirError(f"{key} is empty. {_TODO}")
    path = Path(output_dir).expanduser()
    existing = _deepest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise OutputDirError(f"{key} {output_dir} {where}, not a folder. {_TODO}")
    try:
        _probe(existing)
    except OSError as e:
        raise OutputDirError(
            f"{key} {output_dir} cannot be written: {_write_problem(e, existing)}. {_TODO}"
        ) from e
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise OutputDirError(
            f"{key} {output_dir} cannot be written: only {human_size(free)} free on its "
            f"filesystem (a run needs at least {human_size(MIN_FREE_BYTES)} for its log and "
            f"checkpoints). Free some space or {_TODO[0].lower()}{_TODO[1:]}"
        )
