"""Smoke test of benchmarks/bench_sam_refinement.py with the tiny SAM (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_sam_refinement


def test_tiny_run_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sam.json"
    args = ["--model-type", "tiny", "--device", "cpu", "--num-images", "2", "--height", "48"]
    args += ["--width", "64", "--image-batch-size", "2", "--num-points", "2"]
    args += ["--size-threshold", "40000", "--json", str(out)]
    result = bench_sam_refinement.main(args)
    saved = json.loads(out.read_text())
    assert saved["num_prompts"] == result["num_prompts"] > 0
    assert saved["ours"]["images_per_s"] > 0 and saved["original"]["images_per_s"] > 0
    assert saved["pixel_agreement"] > 0.9  # same prompts, same SAM: (nearly) the same labels
    table = capsys.readouterr().out
    assert "| original (per image, per prompt) |" in table and "speed-up" in table
