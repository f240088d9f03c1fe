"""Smoke test of benchmarks/bench_startup.py: one run of each command, table and JSON written,
the error command really fails on the unknown key. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_startup


def test_one_repeat_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("SOLVER:\n  MAX_ITER: 10\n")
    out = tmp_path / "startup.json"
    payload = bench_startup.main(
        ["--config-file", str(cfg), "--warmup", "0", "--repeats", "1", "--json", str(out)]
    )
    saved = json.loads(out.read_text())
    rows = {row["command"]: row for row in saved["rows"]}
    assert list(rows) == list(bench_startup.commands(str(cfg)))
    assert rows["import torch"]["vs_import_torch"] == pytest.approx(1.0)
    assert rows["train_net.py unknown key"]["exit_code"] == 2
    assert all(row["exit_code"] == 0 for name, row in rows.items() if "unknown" not in name)
    assert all(len(row["seconds"]) == 1 and row["seconds"][0] > 0 for row in rows.values())
    assert (
        payload["table"] == saved["table"] and "| train_net.py --help |" in capsys.readouterr().out
    )
