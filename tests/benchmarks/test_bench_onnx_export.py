"""benchmarks/bench_onnx_export.py at toy size: one row per backend with size and speed ratios.

It also exports the toy CLOUDS with its linear class head (Base-Toy-CLOUDS.yaml) and runs it at
64 x 96, not the export's example size: the test checks the scores against PyTorch (the
text-classifier head and the VFM segmentors: tests/export/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_onnx_export


def test_bench_onnx_export_toy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "onnx.json"
    argv = ["--model", "toy", "--height", "64", "--width", "96"]
    payload = bench_onnx_export.main([*argv, "--warmup", "0", "--repeats", "1", "--json", str(out)])
    on_disk = json.loads(out.read_text())
    assert on_disk["table"] == payload["table"]
    assert [row["backend"] for row in on_disk["rows"]] == ["pytorch", "onnxruntime"]
    pytorch, onnxruntime = on_disk["rows"]
    assert pytorch["vs_pytorch"] == pytest.approx(1.0)
    assert pytorch["size_vs_pytorch"] == pytest.approx(1.0)
    assert onnxruntime["size_MB"] > 0 and onnxruntime["export_s"] > 0
    assert onnxruntime["max_abs_diff"] < 1e-5  # measured 4.2e-7
    assert "| onnxruntime |" in capsys.readouterr().out
