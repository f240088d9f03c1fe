"""Two-process DDP training on CPU (gloo) through train_net.py's command line: the tiny test
model, and the toy DGVFM config with its per-process batch and synchronised light head."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.engine._tiny import NUM_CLASSES, SIZE, tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def _run_two_processes(tmp_path: Path, overrides: list[str]) -> list[dict]:
    """train_net.py --num-gpus 2 through the entry script; each rank's record."""
    command = [
        sys.executable,
        str(REPO / "tests" / "engine" / "_ddp_entry.py"),
        str(tmp_path / "data"),
        "--num-gpus",
        "2",
        *overrides,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_process_ddp_on_cpu_ends_with_identical_weights(tmp_path) -> None:
    out = tmp_path / "out"
    overrides = tiny_overrides(str(out), **{"SOLVER.MAX_ITER": 4, "SOLVER.CHECKPOINT_PERIOD": 2})
    ranks = _run_two_processes(tmp_path, overrides)
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


def test_dgvfm_trains_its_per_gpu_batch_on_each_process_with_one_light_head_norm(tmp_path) -> None:
    """configs/toy/dg_dinov2_ms_masked.yaml (SOLVER.IMS_PER_GPU 2, as the original's per-GPU
    batch_size) on 2 processes: 2 images per process per iteration, 4 in all; the light head's
    BatchNorm normalises over both, so its running statistics (which DDP does not broadcast)
    end equal on both ranks, as every other trained tensor."""
    overrides = {
        "DATASETS.TRAIN": "('tiny_train',)",
        "DATASETS.TEST": "()",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": NUM_CLASSES,
        "INPUT.CROP.SIZE": f"({SIZE[0]}, {SIZE[1]})",
        "INPUT.VFM_PIPELINE.TRAIN_SCALE": f"({SIZE[1]}, {SIZE[0]})",
        "SOLVER.MAX_ITER": 2,
        "SOLVER.CHECKPOINT_PERIOD": 2,
        "OUTPUT_DIR": str(tmp_path / "out"),
    }
    config = ["--config-file", str(REPO / "configs/toy/dg_dinov2_ms_masked.yaml")]
    ranks = _run_two_processes(
        tmp_path, [*config, *(str(x) for kv in overrides.items() for x in kv)]
    )
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [len(r["image_ids"]) for r in ranks] == [4, 4]  # 2 iterations x 2 images
    assert ranks[0]["norm_types"] == ranks[1]["norm_types"] == ["CPUSyncBatchNorm"]
    assert any("running_var" in key for key in ranks[0]["weights"])
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
