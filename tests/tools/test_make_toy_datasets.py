"""The toy-data script: writes and converts every dataset in one call."""

import subprocess
import sys
from pathlib import Path

from clouds.data.catalog import DatasetCatalog
from clouds.data.datasets import DATASET_NAMES, register_all_datasets

REPO = Path(__file__).resolve().parents[2]


def test_script_writes_a_loadable_tree(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "make_toy_datasets.py"),
            "--root",
            str(tmp_path),
            "--seed",
            "1",
            "--num-images",
            "2",
            "--size",
            "32",
            "64",
            "--convert",
            "--dgvfm-layout",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert str(tmp_path) in done.stdout
    register_all_datasets(tmp_path)
    for name in (*DATASET_NAMES, "sd_toy"):
        dicts = DatasetCatalog.get(name)
        assert len(dicts) == 2, name
        assert (dicts[0]["height"], dicts[0]["width"]) == (32, 64)
