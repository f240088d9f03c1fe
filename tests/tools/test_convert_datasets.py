"""The conversion scripts, run as a user runs them, on a raw toy tree."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clouds.data.toy import make_toy_datasets

REPO = Path(__file__).resolve().parents[2]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    script = REPO / "tools" / "convert_datasets" / f"{tool}.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )


def test_scripts_convert_toy_tree_and_report_bad_files(tmp_path: Path) -> None:
    root = make_toy_datasets(tmp_path, num_images=2, size=(32, 64))
    for tool in ("cityscapes", "synthia", "mapillary"):
        done = _run(tool, str(root), "--nproc", "2")
        assert done.returncode == 0, done.stderr
    assert len(list(root.glob("mapillary_vistas/*/labels/*_labelTrainIds.png"))) == 4
    assert len(list(root.glob("cityscapes/gtFine/*/*/*_gtFine_labelTrainIds.png"))) == 4
    assert len(list(root.glob("synthia/GT/LABELS/*_labelTrainIds.png"))) == 2

    # A corrupt GTA5 image and a mis-sized label: both named, the rest converted, exit 1.
    (root / "gta" / "images" / "00001.png").write_bytes(b"garbage")
    Image.fromarray(np.zeros((31, 64), dtype=np.uint8)).save(root / "gta" / "labels" / "00002.png")
    Image.fromarray(np.zeros((32, 64, 3), dtype=np.uint8)).save(
        root / "gta" / "images" / "00003.png"
    )
    Image.fromarray(np.full((32, 64), 26, dtype=np.uint8)).save(
        root / "gta" / "labels" / "00003.png"
    )
    done = _run("gta", str(root / "gta"), "--nproc", "1")
    assert done.returncode == 1
    assert "images/00001.png" in done.stderr and "labels/00002.png" in done.stderr
    assert "1 converted" in done.stdout and "2 failed" in done.stdout
    out = np.asarray(Image.open(root / "gta" / "labels" / "00003_labelTrainIds.png"))
    assert (out == 13).all()  # label ID 26 (car) -> train ID 13

    again = _run("gta", str(root / "gta"))
    assert again.returncode == 1 and "1 up to date" in again.stdout

    missing = _run("gta", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "datasets/README.md" in missing.stderr
