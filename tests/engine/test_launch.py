"""Command line, distributed environment, accelerator and precision resolution."""

from __future__ import annotations

import os

import pytest

from clouds.config import ConfigError, get_cfg
from clouds.engine.launch import (
    build_trainer,
    configure_distributed_env,
    default_argument_parser,
    resolve_accelerator,
    resolve_precision,
    resolve_topology,
)


def test_detectron2_flags_and_overrides() -> None:
    args = default_argument_parser().parse_args(
        ["--config-file", "a.yaml", "--num-gpus", "2", "--resume", "SOLVER.MAX_ITER", "5"]
    )
    assert args.config_file == "a.yaml" and args.num_gpus == 2 and args.resume
    assert not args.eval_only and args.opts == ["SOLVER.MAX_ITER", "5"]
    assert (args.num_machines, args.machine_rank, args.dist_url) == (1, 0, "auto")


def test_dist_url_sets_master_and_node_rank(monkeypatch) -> None:
    for key in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        monkeypatch.setenv(key, "")  # recorded, so that what the test sets is undone after it
        monkeypatch.delenv(key)
    parser = default_argument_parser()
    args = parser.parse_args(
        ["--num-machines", "2", "--machine-rank", "1", "--dist-url", "tcp://10.1.2.3:29501"]
    )
    configure_distributed_env(args)
    assert os.environ["MASTER_ADDR"] == "10.1.2.3" and os.environ["MASTER_PORT"] == "29501"
    assert os.environ["NODE_RANK"] == "1"
    with pytest.raises(ConfigError, match="dist-url"):
        configure_distributed_env(parser.parse_args(["--num-machines", "2"]))
    with pytest.raises(ConfigError, match="tcp://host:port"):
        configure_distributed_env(parser.parse_args(["--dist-url", "10.1.2.3"]))
    with pytest.raises(ConfigError, match="machine-rank"):
        configure_distributed_env(parser.parse_args(["--machine-rank", "3"]))


def test_accelerator_and_precision(monkeypatch) -> None:
    cfg = get_cfg()
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match="no GPU.*MODEL.DEVICE cpu"):
        resolve_accelerator(cfg)  # cuda asked, none available: an error, no silent CPU run
    cfg.MODEL.DEVICE = "cpu"
    assert resolve_accelerator(cfg) == "cpu"
    cfg.MODEL.DEVICE = "cuda"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert resolve_accelerator(cfg) == "gpu"
    cfg.MODEL.DEVICE = "tpu"
    with pytest.raises(ConfigError, match="MODEL.DEVICE"):
        resolve_accelerator(cfg)
    assert resolve_precision(cfg, "gpu") == "32-true"
    cfg.SOLVER.AMP.ENABLED = True
    assert resolve_precision(cfg, "cpu") == "bf16-mixed"
    cfg.SOLVER.AMP.PRECISION = "fp16"
    assert resolve_precision(cfg, "gpu") == "16-mixed"
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision(cfg, "cpu")


def test_trainer_is_iteration_based(tmp_path) -> None:
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.SOLVER.MAX_ITER = 50
    cfg.TEST.EVAL_PERIOD = 20
    trainer = build_trainer(cfg)
    assert trainer.max_steps == 50 and trainer.val_check_interval == 20
    assert trainer.check_val_every_n_epoch is None
    cfg.TEST.EVAL_PERIOD = 0  # evaluate at the end only
    assert build_trainer(cfg).val_check_interval == 50


def test_topology_from_torchrun_and_slurm(monkeypatch) -> None:
    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
            monkeypatch.delenv(key)
    args = default_argument_parser().parse_args(["--num-gpus", "4"])
    assert resolve_topology(args) == (4, 1)
    monkeypatch.setattr("torch.distributed.is_torchelastic_launched", lambda: True)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setenv("WORLD_SIZE", "16")
    assert resolve_topology(args) == (8, 2)
    monkeypatch.setattr("torch.distributed.is_torchelastic_launched", lambda: False)
    monkeypatch.setenv("SLURM_NTASKS", "16")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "8(x2)")
    monkeypatch.setenv("SLURM_NNODES", "2")
    assert resolve_topology(args) == (8, 2)
