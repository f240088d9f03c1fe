"""Smoke tests of the benchmark scripts at tiny sizes: each main() prints a Markdown table and
writes a JSON file with one row per compared implementation. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_inference, bench_ms_deform_attn, bench_train_step


def _check_payload(payload: dict, json_path: Path, names: list[str], key: str) -> None:
    on_disk = json.loads(json_path.read_text())
    assert on_disk["table"] == payload["table"]
    assert [row[key] for row in on_disk["rows"]] == names
    header = payload["table"].splitlines()[0]
    assert header.startswith(f"| {key} |")
    assert len(payload["table"].splitlines()) == 2 + len(names)
    for row in on_disk["rows"]:
        assert len(row["seconds"]) == on_disk["settings"]["repeats"]
        assert all(s > 0 for s in row["seconds"])
    assert on_disk["machine"]["cpu_cores"] >= 1
    assert on_disk["command"].startswith("python ")


def test_bench_inference_toy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inference.json"
    payload = bench_inference.main(
        [
            "--model",
            "toy",
            "--device",
            "cpu",
            "--height",
            "64",
            "--width",
            "64",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--channels-last",
            "--json",
            str(out),
        ]
    )
    _check_payload(payload, out, ["peer", "ours", "ours (fast)"], "model")
    assert payload["rows"][2]["fast_paths"] == "channels-last"
    assert payload["rows"][0]["vs_peer"] == pytest.approx(1.0)
    assert "| ours (fast) |" in capsys.readouterr().out


def test_bench_train_step_toy(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    payload = bench_train_step.main(
        [
            "--model",
            "toy",
            "--device",
            "cpu",
            "--height",
            "64",
            "--width",
            "64",
            "--batch",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    _check_payload(payload, out, ["peer", "ours"], "model")
    assert payload["settings"]["frozen_backbones"] is True


def test_bench_ms_deform_attn_tiny(tmp_path: Path) -> None:
    out = tmp_path / "msda.json"
    payload = bench_ms_deform_attn.main(
        [
            "--device",
            "cpu",
            "--height",
            "64",
            "--width",
            "64",
            "--heads",
            "2",
            "--head-dim",
            "4",
            "--implementations",
            "ours",
            "peer",
            "--warmup",
            "0",
            "--repeats",
            "2",
            "--json",
            str(out),
        ]
    )
    _check_payload(payload, out, ["ours", "ours", "peer", "peer"], "implementation")
    assert payload["settings"]["levels"] == [(2, 2), (4, 4), (8, 8)]
    # Both implementations compute the same op: their outputs agree.
    assert all(row["max_abs_diff"] < 1e-4 for row in payload["rows"])


def test_bench_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        bench_ms_deform_attn.main(
            ["--device", "cpu", "--height", "50", "--json", str(tmp_path / "x.json")]
        )
