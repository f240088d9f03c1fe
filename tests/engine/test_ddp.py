"""Two-process DDP training on CPU (gloo) through train_net.py's command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.engine._tiny import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def test_two_process_ddp_on_cpu_ends_with_identical_weights(tmp_path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "tests" / "engine" / "_ddp_entry.py"),
        str(tmp_path / "data"),
        "--num-gpus",
        "2",
        *tiny_overrides(str(out), **{"SOLVER.MAX_ITER": 4, "SOLVER.CHECKPOINT_PERIOD": 2}),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    # each rank trained on its own seeded stream (1 image per rank per iteration)
    assert len(ranks[0]["image_ids"]) == len(ranks[1]["image_ids"]) == 4
    assert ranks[0]["image_ids"] != ranks[1]["image_ids"]
    # DDP synchronises the 5 trainable tensors only, not the frozen backbone's 2
    assert ranks[0]["ddp_num_parameter_tensors"] == 5
    # the checkpoint written by rank 0 matches both ranks' weights
    final = torch.load(out / "model_final.ckpt", weights_only=True)["state_dict"]
    for key, value in final.items():
        assert torch.equal(value, ranks[0]["weights"][key]), key
    assert (out / "config.yaml").is_file() and (out / "log.txt").is_file()
    assert "Command line arguments" in (out / "log.txt").read_text()
