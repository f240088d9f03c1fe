"""Disk full, temporary files of killed writers and label maps that are not class-id maps: each
error names the file. A patched write stands in for a full disk (``ENOSPC`` from the OS, or the
RuntimeError that torch.save's zip writer raises)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clouds.cli_errors import user_error_code
from clouds.data.conversion import GTA_CONVERSION
from clouds.data.conversion.cli import conversion_main
from clouds.engine.checkpointing import AtomicCheckpointIO
from clouds.utils.io import (
    DiskFullError,
    ImageReadError,
    is_temp_file,
    read_label,
    remove_temp_files,
    write_png_atomic,
)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_png_write_on_a_full_disk_names_the_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "images" / "00001.png"
    write_png_atomic(np.zeros((2, 2), np.uint8), target)
    monkeypatch.setattr(Image.Image, "save", _no_space)  # what generation and conversion call
    with pytest.raises(DiskFullError, match=rf"Disk full: could not write {target}") as e:
        write_png_atomic(np.ones((2, 2), np.uint8), target)
    assert user_error_code(e.value) == 1
    assert (np.asarray(Image.open(target)) == 0).all()  # the old file is unchanged
    assert [p.name for p in target.parent.iterdir()] == ["00001.png"]  # no temp file left


def test_checkpoint_write_on_a_full_disk_names_the_file(tmp_path: Path, monkeypatch) -> None:
    def zip_writer_fails(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK")
        raise RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")

    monkeypatch.setattr(torch, "save", zip_writer_fails)
    target = tmp_path / "last.ckpt"
    with pytest.raises(DiskFullError, match=rf"Disk full: could not write {target}"):
        AtomicCheckpointIO().save_checkpoint({"a": 1}, target)
    assert list(tmp_path.iterdir()) == []


def test_conversion_stops_on_a_full_disk_naming_the_file(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((4, 6), 7, np.uint8)).save(tmp_path / "labels" / "00001.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "images" / "00001.png")
    monkeypatch.setattr(Image.Image, "save", _no_space)
    assert conversion_main(GTA_CONVERSION, [str(tmp_path), "--nproc", "1"]) == 1
    err = capsys.readouterr().err
    assert "Disk full" in err and "00001_labelTrainIds.png" in err


def test_temp_files_are_recognised_and_removed(tmp_path: Path) -> None:
    temp = tmp_path / ".last.ckpt.0123456789ab.tmp.ckpt"
    temp.write_bytes(b"half")
    kept = tmp_path / "model_0000002.ckpt"
    kept.write_bytes(b"x")
    assert is_temp_file(temp) and not is_temp_file(kept)
    assert remove_temp_files(tmp_path) == [temp]
    assert [p.name for p in tmp_path.iterdir()] == [kept.name]


def test_rgb_and_out_of_range_label_maps_are_errors_naming_the_file(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    with pytest.raises(ImageReadError, match=rf"{rgb} has 3 channels"):
        read_label(rgb)
    ids = tmp_path / "ids.png"
    Image.fromarray(np.array([[0, 18], [19, 255]], np.uint8)).save(ids)
    assert read_label(ids, num_classes=20).shape == (2, 2)
    with pytest.raises(ImageReadError, match=rf"{ids} holds values \[19\] outside .*0\.\.18"):
        read_label(ids, num_classes=19)
