"""Which checkpoint ``--resume`` continues from, and cleaning what a killed run left behind.

A checkpoint is *complete* when its zip container reads back whole (every member's CRC
matches): a file cut short by a full disk or a crash of the filesystem is not. ``last.ckpt``
is the newest state of the run; when it is not complete, the newest complete
``model_final.ckpt`` / ``model_<iteration>.ckpt`` is used instead, with a warning.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path

from clouds.utils.io import remove_temp_files as remove_temp_files_in

__all__ = ["checkpoint_is_complete", "find_resume_checkpoint", "remove_temp_files"]

logger = logging.getLogger(__name__)

_PERIODIC = re.compile(r"^model_(\d+)\.ckpt$")


def remove_temp_files(output_dir: str | os.PathLike) -> None:
    """Delete the temporary files that a run killed while writing left in ``output_dir``
    (call while holding the folder's lock, :mod:`clouds.engine.run_lock`)."""
    for path in remove_temp_files_in(output_dir):
        logger.info("Removed %s, left by an interrupted write", path)


def checkpoint_is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole ``torch.save`` zip file (all members present, CRCs match)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            return any(n.endswith("data.pkl") for n in names) and archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _older_candidates(folder: Path) -> list[Path]:
    """``model_final.ckpt`` then ``model_<iteration>.ckpt`` from the newest iteration down."""
    periodic = sorted(
        (int(m.group(1)), p)
        for p in folder.glob("model_*.ckpt")
        if (m := _PERIODIC.match(p.name)) is not None
    )
    final = [folder / "model_final.ckpt"] if (folder / "model_final.ckpt").is_file() else []
    return final + [p for _, p in reversed(periodic)]


def find_resume_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The checkpoint to resume the run in ``output_dir`` from: ``last.ckpt`` when complete,
    else the newest complete other checkpoint (with a warning); None when there is none."""
    folder = Path(output_dir)
    last = folder / "last.ckpt"
    if last.is_file():
        if checkpoint_is_complete(last):
            return str(last)
        logger.warning("%s is corrupt or truncated; looking for an older checkpoint", last)
    for path in _older_candidates(folder):
        if checkpoint_is_complete(path):
            if last.is_file():
                logger.warning("Resuming from %s instead of the unreadable %s", path, last)
            return str(path)
        logger.warning("%s is corrupt or truncated; skipping it", path)
    return None
