"""Smoke test of benchmarks/bench_generation.py at a tiny size (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import bench_generation


def test_tiny_run_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gen.json"
    result = bench_generation.main(
        [
            "--arch",
            "tiny",
            "--device",
            "cpu",
            "--height",
            "32",
            "--width",
            "32",
            "--steps",
            "2",
            "--num-images",
            "2",
            "--batch-size",
            "2",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["weights"] == "tiny architecture, random weights"
    assert (saved["original"]["batch_size"], saved["ours"]["batch_size"]) == (1, 2)
    assert saved["original"]["dtype"] == saved["ours"]["dtype"] == "fp32"
    assert saved["original"]["seconds_per_image"] > 0 and saved["ours"]["seconds_per_image"] > 0
    assert saved["speedup"] == pytest.approx(
        saved["original"]["seconds_per_image"] / saved["ours"]["seconds_per_image"]
    )
    table = capsys.readouterr().out
    assert "| original script | 1 | fp32 |" in table and "| ours (fast path) | 2 | fp32 |" in table


def test_sd2_architecture_matches_the_published_sizes() -> None:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**bench_generation.SD2_UNET)
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(865.9e6, rel=0.01)
