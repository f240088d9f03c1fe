import json
from pathlib import Path

import numpy as np

from clouds.generation.manifest import Manifest, is_valid_image, manifest_name, read_manifests
from clouds.utils.io import write_png_atomic


def test_append_then_compact_dedups_and_sorts(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / manifest_name(0))
    manifest.append({"file": "im_2_p0.png", "seed": 1})
    manifest.append({"file": "im_0_p0.png", "seed": 2})
    manifest.append({"file": "im_2_p0.png", "seed": 3})
    manifest.compact()
    lines = manifest.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"file": "im_0_p0.png", "seed": 2},
        {"file": "im_2_p0.png", "seed": 3},
    ]
    assert not list(tmp_path.glob("*.tmp*"))


def test_broken_last_line_of_a_killed_run_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / manifest_name(1)
    path.write_text('{"file": "im_1_p001.png", "seed": 5}\n{"file": "im_3_p0', encoding="utf-8")
    Manifest(tmp_path / manifest_name(0)).append({"file": "im_0_p0.png", "seed": 4})
    records = read_manifests(tmp_path)
    assert set(records) == {"im_0_p0.png", "im_1_p001.png"}
    assert records["im_1_p001.png"]["seed"] == 5


def test_truncated_or_wrong_size_png_is_invalid(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    write_png_atomic(image, path)
    assert is_valid_image(path, (24, 16))
    assert not is_valid_image(path, (16, 16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not is_valid_image(path, (24, 16))
    assert not is_valid_image(tmp_path / "missing.png", (24, 16))
