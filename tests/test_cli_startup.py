"""The command-line tools answer ``--help`` and config mistakes before the heavy imports.

Each command runs in a fresh interpreter under ``python -X importtime``; the modules it imported
are read from that report. No timing is asserted (benchmarks/bench_startup.py measures it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "open_clip", "diffusers", "timm", "transformers", "torchmetrics", "peft")


def _run(*argv: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, set[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return proc, modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("script", ["train_net.py", "generate_txt_im.py", "demo/demo.py"])
def test_help_imports_nothing_heavy(script: str) -> None:
    proc, modules = _run(str(ROOT / script), "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout
    assert _heavy(modules) == []


def test_unknown_key_suggests_the_closest_before_heavy_imports(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("SOLVER:\n  MAX_ITERS: 10\n")
    proc, modules = _run(str(ROOT / "train_net.py"), "--config-file", str(cfg))
    assert proc.returncode == 2
    assert "Non-existent config key: SOLVER.MAX_ITERS (did you mean SOLVER.MAX_ITER?)" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr and _heavy(modules) == []
    proc, _ = _run(str(ROOT / "train_net.py"), "--config-file", str(cfg), "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    proc, modules = _run(str(ROOT / "train_net.py"), "--config-file", str(tmp_path / "no.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"train_net.py: error: Config file not found: {tmp_path / 'no.yaml'}" in proc.stderr
    assert _heavy(modules) == []
