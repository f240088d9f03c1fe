"""OUTPUT_DIR problems answered in one line, nothing created or left behind."""

from __future__ import annotations

import errno
import os
from collections import namedtuple
from pathlib import Path

import pytest

from clouds.cli_errors import user_error_code
from clouds.utils import output_dir
from clouds.utils.output_dir import OutputDirError, check_output_dir


def _refuse(code: int):
    def mkstemp(**_: object) -> tuple[int, str]:
        raise OSError(code, os.strerror(code))

    return mkstemp


def test_a_writable_folder_passes_and_stays_as_it_was(tmp_path: Path) -> None:
    check_output_dir(str(tmp_path / "new" / "run"))
    check_output_dir(str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # no folder created, no probe left


@pytest.mark.parametrize(
    "code,reason",
    [
        (errno.EROFS, "is on a read-only filesystem"),
        (errno.EACCES, "is not writable by"),
        (errno.ENOSPC, "no space left in"),  # the folder follows the reason
    ],
    ids=["read-only-fs", "permission", "full"],
)
def test_unwritable_folders_say_why(monkeypatch, tmp_path: Path, code: int, reason: str) -> None:
    monkeypatch.setattr(output_dir.tempfile, "mkstemp", _refuse(code))
    with pytest.raises(OutputDirError) as info:
        check_output_dir(str(tmp_path / "run"))
    message = str(info.value)
    assert message.startswith(f"OUTPUT_DIR {tmp_path / 'run'} cannot be written: ")
    assert (
        f"{reason} {tmp_path}" in message
        or f"{tmp_path} {reason}" in message
        and "\n" not in message
        and user_error_code(info.value) == 1
    )


def test_a_file_in_the_way_and_low_space(monkeypatch, tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("x")
    with pytest.raises(OutputDirError, match=f"^OUTPUT_DIR {blocker} is a file, not a folder"):
        check_output_dir(str(blocker))
    with pytest.raises(OutputDirError, match=f"cannot be created: {blocker} is a file"):
        check_output_dir(str(blocker / "run"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(output_dir.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 5 * 10**6))
    with pytest.raises(OutputDirError, match=r"only 5\.0 MB free on its filesystem"):
        check_output_dir(str(tmp_path / "run"))
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
