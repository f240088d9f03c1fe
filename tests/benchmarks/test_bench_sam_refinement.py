"""Smoke test of benchmarks/bench_sam_refinement.py with the tiny SAM (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sam_refinement.py"


def _load_script():  # noqa: ANN202 - a module object
    spec = importlib.util.spec_from_file_location("bench_sam_refinement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load_script()
    out = tmp_path / "sam.json"
    args = ["--model-type", "tiny", "--device", "cpu", "--num-images", "2", "--height", "48"]
    args += ["--width", "64", "--image-batch-size", "2", "--num-points", "2"]
    args += ["--size-threshold", "40000", "--json", str(out)]
    result = bench.main(args)
    saved = json.loads(out.read_text())
    assert saved["num_prompts"] == result["num_prompts"] > 0
    assert saved["ours"]["images_per_s"] > 0 and saved["original"]["images_per_s"] > 0
    assert saved["pixel_agreement"] > 0.9  # same prompts, same SAM: (nearly) the same labels
    table = capsys.readouterr().out
    assert "| original (per image, per prompt) |" in table and "speed-up" in table
