"""The data check: every image and label decoded once, every bad file one line with its dataset,
results cached per file (reused, refreshed when a file changes, resumable)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clouds.config import get_cfg
from clouds.data import data_check
from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.data.data_check import DataCheckError, LabelRule, check_config_data, check_dataset

RULE = LabelRule(num_classes=3, ignore_label=255)
HW = (8, 12)


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CLOUDS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _register(name: str, folder: Path, count: int) -> list[dict]:
    """``count`` good image / label pairs under ``folder``, registered as ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        image, label = folder / f"{i}.png", folder / f"{i}_label.png"
        Image.fromarray(np.full((*HW, 3), 40 * i, np.uint8)).save(image)
        Image.fromarray(np.full(HW, i % 3, np.uint8)).save(label)
        records.append({"file_name": str(image), "sem_seg_file_name": str(label)})
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [dict(r) for r in records])
    MetadataCatalog.get(name).set(ignore_label=255)
    return records


def test_every_bad_file_is_one_line_with_its_dataset(tmp_path: Path) -> None:
    records = _register("check_set", tmp_path / "set", 6)
    Path(records[0]["file_name"]).write_bytes(b"\x89PNG cut short")  # undecodable image
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(records[1]["sem_seg_file_name"])  # size
    Image.fromarray(np.full(HW, 7, np.uint8)).save(records[2]["sem_seg_file_name"])  # value 7
    Image.fromarray(np.zeros((*HW, 3), np.uint8)).save(records[3]["sem_seg_file_name"])  # colour
    os.remove(records[4]["sem_seg_file_name"])  # missing
    count, bad = check_dataset("check_set", RULE, workers=2, progress=False)
    lines = [b.line() for b in bad]
    assert count == 6 and len(lines) == 5 and all(line.startswith("check_set: ") for line in lines)
    expected = [
        f"Cannot decode image {records[0]['file_name']}",
        f"Label map {records[1]['sem_seg_file_name']} has size 4x4 (HxW)",
        f"Label map {records[2]['sem_seg_file_name']} holds values [7] outside the class ids 0..2",
        f"Label map {records[3]['sem_seg_file_name']} has 3 channels",
        f"Label file not found: {records[4]['sem_seg_file_name']}",
    ]
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(f"check_set: {start}") and "\n" not in line


def test_results_are_cached_per_file_and_refreshed_when_a_file_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Path
) -> None:
    records = _register("check_set", tmp_path / "set", 4)
    assert check_dataset("check_set", RULE, progress=False) == (4, [])
    assert len(list(cache.glob("data_check/check_set-*.json"))) == 1
    checked: list[str] = []
    real = data_check._check_record

    def counting(record: dict, rule: LabelRule) -> str | None:
        checked.append(record["file_name"])
        return real(record, rule)

    monkeypatch.setattr(data_check, "_check_record", counting)
    assert check_dataset("check_set", RULE, progress=False) == (4, [])
    assert checked == []  # every result from the cache
    Image.fromarray(np.full(HW, 9, np.uint8)).save(records[2]["sem_seg_file_name"])
    _, bad = check_dataset("check_set", RULE, progress=False)
    assert checked == [records[2]["file_name"]] and len(bad) == 1
    _, bad = check_dataset("check_set", LabelRule(num_classes=10, ignore_label=255), progress=False)
    assert bad == [] and len(checked) == 5  # another label rule: a cache of its own


def test_an_interrupted_scan_resumes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _register("check_set", tmp_path / "set", 6)
    monkeypatch.setattr(data_check, "_CHUNK", 2)
    monkeypatch.setattr(data_check, "_SAVE_EVERY", 2)
    real, checked = data_check._check_record, []

    def interrupted(record: dict, rule: LabelRule) -> str | None:
        if len(checked) == 4:
            raise KeyboardInterrupt
        checked.append(record["file_name"])
        return real(record, rule)

    monkeypatch.setattr(data_check, "_check_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        check_dataset("check_set", RULE, workers=1, progress=False)
    checked.clear()
    monkeypatch.setattr(data_check, "_check_record", lambda r, rule: checked.append(r) or None)
    assert check_dataset("check_set", RULE, workers=1, progress=False) == (6, [])
    assert len(checked) == 2  # only the files the interrupted scan did not reach


def test_config_check_lists_train_and_test_sets(tmp_path: Path) -> None:
    _register("check_train", tmp_path / "train", 2)
    bad = _register("check_val", tmp_path / "val", 2)
    Path(bad[1]["file_name"]).write_bytes(b"")
    cfg = get_cfg()
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = ("check_train",), ("check_val",)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    with pytest.raises(DataCheckError) as info:
        check_config_data(cfg, progress=False)
    assert str(info.value).splitlines()[1:] == [
        f"check_val: Cannot decode image {bad[1]['file_name']}: cannot identify image file "
        f"'{bad[1]['file_name']}'"
    ]
    cfg.DATASETS.TEST = ()
    assert check_config_data(cfg, progress=False) == 2
    assert data_check.data_check_wanted(cfg) == (cfg.SOLVER.MAX_ITER >= 5000)
    cfg.SOLVER.MAX_ITER, cfg.DATALOADER.CHECK_DATA_MIN_ITER = 10, 10
    assert data_check.data_check_wanted(cfg)
    cfg.DATALOADER.CHECK_DATA = False
    assert not data_check.data_check_wanted(cfg)
