"""Corruption tables and ACDC day / night groups scored pixel-wise (summed confusion matrices)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clouds.evaluation.metrics import metrics_from_confusion
from clouds.evaluation.robustness_report import (
    CLEAN,
    acdc_groups,
    corruption_tables,
    with_groups,
    write_robustness_report,
)

CLASSES = ["road", "sky"]


def _entry(conf: list[list[int]]) -> dict:
    return {
        "sem_seg": metrics_from_confusion(torch.tensor(conf), CLASSES, "gt"),
        "confusion": conf,
        "mean_over": "gt",
    }


def _cell(scale: int) -> dict:
    # fog: all right on few pixels; rain: half wrong on many; night: mixed
    return {
        "acdc_fog_val": _entry([[10 * scale, 0], [0, 10]]),
        "acdc_rain_val": _entry([[100, 100], [0, 100 * scale]]),
        "acdc_night_val": _entry([[50, 10], [10, 50 * scale]]),
        "cityscapes_val": _entry([[5, 1], [1, 5]]),
    }


def test_acdc_conditions_split_into_day_and_night() -> None:
    groups = acdc_groups(["cityscapes_val", "acdc_fog_val", "dg_acdc_night_val", "acdc_snow_val"])
    assert groups == {
        "ACDC day": ["acdc_fog_val", "acdc_snow_val"],
        "ACDC night": ["dg_acdc_night_val"],
        "ACDC all": ["acdc_fog_val", "acdc_snow_val", "dg_acdc_night_val"],
    }
    assert acdc_groups(["cityscapes_val"]) == {}


def test_groups_are_scored_on_summed_confusions_not_mean_miou() -> None:
    cell = _cell(1)
    groups = acdc_groups(list(cell))
    out = with_groups(cell, groups, CLASSES)
    day = out["ACDC day"]
    assert day["confusion"] == [[110, 100], [0, 110]]
    assert day["sem_seg"]["mIoU"] == pytest.approx(
        metrics_from_confusion(torch.tensor([[110, 100], [0, 110]]), CLASSES, "gt")["mIoU"]
    )
    mean_of_mious = (
        cell["acdc_fog_val"]["sem_seg"]["mIoU"] + cell["acdc_rain_val"]["sem_seg"]["mIoU"]
    ) / 2
    assert day["sem_seg"]["mIoU"] != pytest.approx(mean_of_mious)
    assert out["ACDC night"]["confusion"] == cell["acdc_night_val"]["confusion"]


def test_tables_and_report(tmp_path: Path) -> None:
    cells = {
        CLEAN: _cell(1),
        "fog_s1": _cell(2),
        "fog_s2": _cell(3),
        "snow_s1": _cell(1),
        "snow_s2": _cell(2),
    }
    datasets = list(_cell(1))
    groups = acdc_groups(datasets)
    grouped = {k: with_groups(v, groups, CLASSES) for k, v in cells.items()}
    tables = corruption_tables(grouped, datasets, ["fog", "snow"], [1, 2], groups)
    header, rows = tables["cityscapes_val: mIoU (%) per corruption and severity (clean 71.43)"]
    assert header == ["corruption", "severity 1", "severity 2", "mean", "% of clean"]
    assert [r[0] for r in rows] == ["fog", "snow", "mean"]
    assert rows[0][1:] == ["71.43", "71.43", "71.43", "100.00"]
    fog = next(t for h, t in tables.items() if h.startswith("acdc_fog_val:"))[1]
    fog_s1 = grouped["fog_s1"]["acdc_fog_val"]["sem_seg"]["mIoU"]
    fog_s2 = grouped["fog_s2"]["acdc_fog_val"]["sem_seg"]["mIoU"]
    assert fog[0][3] == f"{(fog_s1 + fog_s2) / 2:.2f}"
    acdc = next(t for h, t in tables.items() if h.startswith("ACDC per condition"))[1]
    assert [r[:2] for r in acdc] == [
        ["acdc_fog_val", "day"],
        ["acdc_rain_val", "day"],
        ["acdc_night_val", "night"],
        ["ACDC day", "pixel-wise over acdc_fog_val, acdc_rain_val"],
        ["ACDC night", "pixel-wise over acdc_night_val"],
        ["ACDC all", "pixel-wise over acdc_fog_val, acdc_rain_val, acdc_night_val"],
    ]
    md = write_robustness_report(
        tmp_path,
        cells,
        datasets=datasets,
        corruptions=["fog", "snow"],
        severities=[1, 2],
        class_names=CLASSES,
    )
    text = md.read_text()
    assert "## ACDC per condition and day / night" in text and "| ACDC night |" in text
    assert "![mIoU vs severity](report_files/corruptions.png)" in text
    assert (tmp_path / "report_files/corruptions.png").stat().st_size > 0
    assert "<table>" in (tmp_path / "report.html").read_text()
