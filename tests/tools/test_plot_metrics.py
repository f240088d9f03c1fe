"""tools/plot_metrics.py: tolerant metrics.json reading and valid PNGs of the expected size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clouds.evaluation.metrics_plot import load_run, read_metrics

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("plot_metrics", ROOT / "tools/plot_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(folder: Path, scale: float) -> Path:
    folder.mkdir(parents=True)
    lines = []
    for it in range(0, 100, 10):
        record = {
            "iteration": it,
            "total_loss": scale * (5.0 - it / 25),
            "loss_ce": scale * (1.0 - it / 200),
            "loss_mask": scale * 0.5,
            "loss_ce_0": 9.0,  # deep-supervision copy: not plotted
            "lr": 1e-4 * (1 - it / 100) ** 0.9,
            "data_time": 0.01,
        }
        lines.append(json.dumps(record))
        if it in (40, 90):
            lines.append(json.dumps({"iteration": it, "cityscapes_val/sem_seg/mIoU": it / 2}))
            lines.append(json.dumps({"iteration": it, "bdd_val/sem_seg/mIoU": it / 3}))
    lines.append("")
    lines.append('{"iteration": 100, "total_lo')  # line still being written
    (folder / "metrics.json").write_text("\n".join(lines))
    return folder


def test_reader_is_tolerant_and_groups_keys(tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path / "run_a", 1.0)
    assert len(read_metrics(run_dir / "metrics.json")) == 14
    run = load_run(run_dir)
    assert run.name == "run_a"
    assert list(run.total_loss) == ["total_loss"]
    assert sorted(run.loss_terms) == ["loss_ce", "loss_mask"]
    assert list(run.lr) == ["lr"]
    assert sorted(run.miou) == ["bdd_val", "cityscapes_val"]
    assert run.miou["cityscapes_val"] == [(40.0, 20.0), (90.0, 45.0)]
    assert run.total_loss["total_loss"][0] == (0.0, 5.0)
    # a JSON list file and Lightning-style keys work as well
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([{"step": 3, "train/loss": 1.5, "lr-AdamW": 0.1}]))
    other = load_run(listed, "listed")
    assert other.total_loss == {"train/loss": [(3.0, 1.5)]}
    assert other.lr == {"lr-AdamW": [(3.0, 0.1)]}


def test_cli_writes_png_of_expected_size(tmp_path: Path) -> None:
    tool = _tool()
    run_a = _fake_run(tmp_path / "run_a", 1.0)
    run_b = _fake_run(tmp_path / "run_b", 0.5)
    assert tool.main([str(run_a)]) == 0
    single = run_a / "metrics.png"
    out = tmp_path / "plots" / "compare.png"
    assert tool.main([str(run_a), str(run_b), "--output", str(out), "--size", "900", "600"]) == 0
    with Image.open(single) as img:
        assert img.format == "PNG" and img.size == (1200, 800)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (900, 600)
        pixels = np.asarray(img.convert("RGB"))
    # curves were drawn: the chart is not a blank canvas of one colour
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_cli_missing_run_is_an_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        _tool().main([str(tmp_path / "nope")])
    assert "metrics file not found" in capsys.readouterr().err
