"""Conversions that recover: a conversion killed (SIGKILL) while writing, then run again, ends
complete with no temporary file left; an output cut short is converted again even though it is
newer than its label."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image

from clouds.data.conversion import GTA_CONVERSION
from clouds.data.conversion.cli import conversion_main


def _gta_tree(root: Path, n: int) -> None:
    for i in range(n):
        name = f"{i + 1:05d}.png"
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "images").mkdir(parents=True, exist_ok=True)
        label = Image.fromarray(np.full((4, 6), 7, dtype=np.uint8))
        label.putpalette(list(range(256)) * 3)
        label.save(root / "labels" / name)
        Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8)).save(root / "images" / name)


def _convert_and_die_on_second_write(root: str) -> None:
    real_save = Image.Image.save
    writes = []

    def save_and_die(self, fp, *args, **kwargs) -> None:
        writes.append(fp)
        real_save(self, fp, *args, **kwargs)
        if len(writes) == 2:
            os.truncate(fp, os.path.getsize(fp) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    Image.Image.save = save_and_die
    conversion_main(GTA_CONVERSION, [root, "--nproc", "1"])


def test_killed_conversion_restarts_and_completes(tmp_path: Path) -> None:
    _gta_tree(tmp_path, 3)
    child = multiprocessing.get_context("fork").Process(
        target=_convert_and_die_on_second_write, args=(str(tmp_path),)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    left = [p.name for p in (tmp_path / "labels").iterdir() if ".tmp" in p.name]
    assert len(left) == 1, "the killed run should leave its temporary file"
    assert conversion_main(GTA_CONVERSION, [str(tmp_path), "--nproc", "1"]) == 0
    names = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert not [n for n in names if ".tmp" in n], names
    for i in (1, 2, 3):
        out = np.asarray(Image.open(tmp_path / "labels" / f"{i:05d}_labelTrainIds.png"))
        assert (out == 0).all()  # GTA label id 7 (road) -> train id 0


def test_truncated_output_is_not_up_to_date(tmp_path: Path) -> None:
    _gta_tree(tmp_path, 2)
    assert GTA_CONVERSION.convert(tmp_path).converted == 2
    output = tmp_path / "labels" / "00001_labelTrainIds.png"
    os.truncate(output, output.stat().st_size // 2)  # newer than its label, but cut short
    again = GTA_CONVERSION.convert(tmp_path)
    assert (again.converted, again.skipped, again.failures) == (1, 1, [])
    assert (np.asarray(Image.open(output)) == 0).all()
