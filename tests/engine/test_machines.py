"""Two "machines" on this host (CPU, gloo): torchrun --nnodes 2 trains the tiny model to the
same weights on both; when one machine started by hand (--machine-rank) is killed, the other
stops within a bounded time with a message saying so (SOLVER.DIST_TIMEOUT_S)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.engine._tiny import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "tests" / "engine" / "_machines_entry.py")


def _opts(out: Path) -> list[str]:
    extra = {"SOLVER.MAX_ITER": 4, "SOLVER.CHECKPOINT_PERIOD": 2, "SOLVER.DIST_TIMEOUT_S": 30}
    return ["--num-gpus", "1", "--num-machines", "2", *tiny_overrides(str(out), **extra)]


_LAUNCHER_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
)


def _start(command: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARIABLES} | env
    env.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_torchrun_two_nodes_end_with_identical_weights(tmp_path) -> None:
    out, port = tmp_path / "out", str(random.randint(20000, 40000))
    procs = [
        _start(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(r),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                ENTRY,
                str(tmp_path / "data"),
                *_opts(out),
            ],
            tmp_path,
        )  # fmt: skip
        for r in (0, 1)
    ]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["image_ids"] != ranks[1]["image_ids"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    assert (out / "log.txt").is_file() and (out / "log.txt.rank1").is_file()


def test_a_killed_machine_stops_the_other_with_a_clear_message(tmp_path) -> None:
    out, url = tmp_path / "out", f"tcp://127.0.0.1:{random.randint(20000, 40000)}"
    command = [sys.executable, ENTRY, str(tmp_path / "data"), "--dist-url", url]
    start = time.monotonic()
    machine0 = _start([*command, "--machine-rank", "0", *_opts(out)], tmp_path)
    machine1 = _start(
        [*command, "--machine-rank", "1", *_opts(out)], tmp_path, CLOUDS_TEST_DIE_AT="2"
    )
    log1 = machine1.communicate(timeout=180)[0]
    assert machine1.returncode == -9, log1[-3000:]
    log0 = machine0.communicate(timeout=120)[0]
    assert machine0.returncode != 0
    assert "Another of the 2 processes of this run died" in log0, log0[-3000:]
    assert time.monotonic() - start < 120
    assert "Run stopped by PeerLostError" in (out / "log.txt").read_text()
