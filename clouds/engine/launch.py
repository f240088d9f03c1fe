"""Command line, config setup, Trainer construction and the train / evaluate entry point.

Distributed runs go through Lightning's DDP strategy: with ``--num-gpus N`` Lightning starts the
other N-1 local processes itself (re-running the same command with ``LOCAL_RANK`` set); under
torchrun or SLURM it detects the environment and starts nothing. ``--dist-url tcp://host:port``
sets ``MASTER_ADDR``/``MASTER_PORT`` and ``--machine-rank`` sets ``NODE_RANK`` for multi-node
runs started by hand (one command per machine).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlparse

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.fabric.utilities.rank_zero import _get_rank
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from clouds.config import CfgNode, ConfigError, load_config
from clouds.engine.arguments import default_argument_parser
from clouds.engine.callbacks import (
    EvaluationInCheckpoint,
    FinalCheckpoint,
    IterationProgressBar,
    ReportWriter,
    build_checkpoint_callback,
)
from clouds.engine.checkpointing import AtomicCheckpointIO
from clouds.engine.data_module import CloudsDataModule
from clouds.engine.distributed_errors import peer_lost_errors
from clouds.engine.eval_iteration import checkpoint_iteration, set_trainer_iteration
from clouds.engine.fatal_errors import log_fatal_errors
from clouds.engine.joint_training import build_joint_training
from clouds.engine.lightning_module import CloudsLightningModule
from clouds.engine.resume import find_resume_checkpoint, remove_temp_files
from clouds.engine.rng_state import IterationSeeder
from clouds.engine.run_lock import claim_run_folder, release_run_folder, saved_seed
from clouds.engine.writers import JsonLinesLogger, setup_logging
from clouds.modeling.checkpoint import foundation_weights_context, load_model_weights
from clouds.utils.io import atomic_path

__all__ = [
    "build_trainer",
    "configure_distributed_env",
    "default_argument_parser",
    "launch_from_args",
    "resolve_accelerator",
    "resolve_precision",
    "resolve_topology",
    "run",
    "setup",
]

logger = logging.getLogger(__name__)


def configure_distributed_env(args: argparse.Namespace) -> None:
    """Export ``MASTER_ADDR``/``MASTER_PORT``/``NODE_RANK`` from the flags, unless a launcher
    (torchrun, SLURM) already set them."""
    if args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise ConfigError(
            f"--machine-rank {args.machine_rank} must be in [0, --num-machines={args.num_machines})"
        )
    if args.dist_url != "auto":
        url = urlparse(args.dist_url)
        if url.scheme != "tcp" or not url.hostname or not url.port:
            raise ConfigError(f"--dist-url must look like tcp://host:port, got {args.dist_url!r}")
        os.environ.setdefault("MASTER_ADDR", url.hostname)
        os.environ.setdefault("MASTER_PORT", str(url.port))
    launched = "RANK" in os.environ or "SLURM_PROCID" in os.environ  # torchrun / srun
    if args.dist_url == "auto" and args.num_machines > 1 and not launched:
        raise ConfigError("--num-machines > 1 needs --dist-url tcp://<machine 0>:<port>")
    if args.num_machines > 1 and not launched:
        os.environ.setdefault("NODE_RANK", str(args.machine_rank))


def resolve_topology(args: argparse.Namespace) -> tuple[int, int]:
    """(processes per machine, machines): from the launcher when torchrun
    (``LOCAL_WORLD_SIZE``/``WORLD_SIZE``) or SLURM's srun (``SLURM_NTASKS_PER_NODE``/
    ``SLURM_NNODES``) started this process, else from ``--num-gpus``/``--num-machines``."""
    env = os.environ
    topology = None
    if TorchElasticEnvironment.detect():
        local, world = int(env["LOCAL_WORLD_SIZE"]), int(env["WORLD_SIZE"])
        topology = (local, world // local)
    elif SLURMEnvironment.detect() and "SLURM_NTASKS_PER_NODE" in env:
        per_node = int(env["SLURM_NTASKS_PER_NODE"].split("(")[0])  # e.g. "8" or "8(x2)"
        topology = (per_node, int(env.get("SLURM_NNODES", "1")))
    if topology is None:
        return args.num_gpus, args.num_machines
    if topology != (args.num_gpus, args.num_machines):
        logger.info(
            "Launcher runs %d processes per machine on %d machine(s); using that instead of "
            "--num-gpus %d --num-machines %d",
            *topology,
            args.num_gpus,
            args.num_machines,
        )
    return topology


def setup(args: argparse.Namespace) -> CfgNode:
    """Load the config, draw a seed if negative, claim ``OUTPUT_DIR`` (rank 0: lock, refuse to
    mix runs, :mod:`clouds.engine.run_lock`), write ``OUTPUT_DIR/config.yaml`` (rank 0) and
    start logging to ``OUTPUT_DIR/log.txt``."""
    cfg = load_config(args.config_file or None, args.opts or [])
    resume = getattr(args, "resume", False)
    if cfg.SEED < 0:  # a resumed run keeps the seed it drew
        seed = saved_seed(cfg.OUTPUT_DIR) if resume else None
        cfg.SEED = seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
    cfg.freeze()
    rank = _get_rank() or 0  # the local rank until a launcher sets RANK
    if "RANK" not in os.environ and "SLURM_PROCID" not in os.environ:  # --machine-rank by hand
        rank += int(os.environ.get("NODE_RANK", "0")) * getattr(args, "num_gpus", 1)
    config_name = "config.yaml"
    if rank == 0:  # one run per OUTPUT_DIR; released at exit
        config_name = claim_run_folder(
            cfg.OUTPUT_DIR,
            cfg.dump(),
            resume=resume,
            overwrite=getattr(args, "overwrite", False),
            eval_only=getattr(args, "eval_only", False),
        )
        remove_temp_files(cfg.OUTPUT_DIR)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    log = setup_logging(cfg.OUTPUT_DIR, rank)
    if rank == 0:
        config_path = os.path.join(cfg.OUTPUT_DIR, config_name)
        with atomic_path(config_path) as tmp, open(tmp, "w") as f:
            f.write(cfg.dump())
        log.info("Command line arguments: %s", args)
        log.info("Full config saved to %s", config_path)
    return cfg


def resolve_accelerator(cfg: CfgNode) -> str:
    """ "gpu" for ``MODEL.DEVICE`` cuda, "cpu" for cpu.

    Raises:
        ConfigError: another MODEL.DEVICE, or cuda on a machine without a GPU (asking for a GPU
            the machine lacks is an error, as in :func:`clouds.engine.preflight.check_processes`).
    """
    if cfg.MODEL.DEVICE not in ("cuda", "cpu"):
        raise ConfigError(f"MODEL.DEVICE must be 'cuda' or 'cpu', got {cfg.MODEL.DEVICE!r}")
    if cfg.MODEL.DEVICE == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(
            "MODEL.DEVICE is cuda but this machine has no GPU. To run on the CPU, add "
            "MODEL.DEVICE cpu."
        )
    return "gpu"


def resolve_precision(cfg: CfgNode, accelerator: str) -> str:
    """Lightning precision from ``SOLVER.AMP``: "32-true", "bf16-mixed" or "16-mixed"."""
    if not cfg.SOLVER.AMP.ENABLED:
        return "32-true"
    kind = cfg.SOLVER.AMP.PRECISION
    if kind not in ("bf16", "fp16"):
        raise ConfigError(f"SOLVER.AMP.PRECISION must be bf16 or fp16, got {kind!r}")
    if kind == "fp16" and accelerator == "cpu":
        raise ConfigError("SOLVER.AMP.PRECISION fp16 needs a GPU; use bf16 on the CPU")
    return "bf16-mixed" if kind == "bf16" else "16-mixed"


def build_trainer(
    cfg: CfgNode,
    *,
    num_gpus: int = 1,
    num_machines: int = 1,
    callbacks: Sequence[pl.Callback] = (),
) -> pl.Trainer:
    """A Lightning Trainer for iteration-based training (``max_steps=SOLVER.MAX_ITER``) that
    evaluates every ``TEST.EVAL_PERIOD`` iterations (or at the end when 0), checkpoints every
    ``SOLVER.CHECKPOINT_PERIOD`` and logs to TensorBoard and ``metrics.json``."""
    if num_gpus < 1:
        raise ConfigError(f"--num-gpus must be >= 1, got {num_gpus}")
    accelerator = resolve_accelerator(cfg)
    distributed = num_gpus * num_machines > 1
    strategy: str | DDPStrategy = "auto"
    if distributed:
        strategy = DDPStrategy(
            process_group_backend="nccl" if accelerator == "gpu" else "gloo",
            find_unused_parameters=cfg.SOLVER.FIND_UNUSED_PARAMETERS,
            broadcast_buffers=False,
            timeout=timedelta(seconds=cfg.SOLVER.DIST_TIMEOUT_S),  # a dead process ends the run
        )
    max_iter = cfg.SOLVER.MAX_ITER
    eval_period = cfg.TEST.EVAL_PERIOD if cfg.TEST.EVAL_PERIOD > 0 else max_iter
    out = cfg.OUTPUT_DIR
    return pl.Trainer(
        accelerator=accelerator,
        devices=num_gpus,
        num_nodes=num_machines,
        strategy=strategy,
        precision=resolve_precision(cfg, accelerator),
        max_steps=max_iter,
        max_epochs=-1,
        val_check_interval=min(eval_period, max_iter),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.SOLVER.LOG_PERIOD,
        logger=[
            TensorBoardLogger(save_dir=out, name="", version="", default_hp_metric=False),
            JsonLinesLogger(os.path.join(out, "metrics.json")),
        ],
        callbacks=[
            IterationProgressBar(),
            IterationSeeder(cfg.SEED),
            build_checkpoint_callback(cfg),
            FinalCheckpoint(out),
            EvaluationInCheckpoint(),
            ReportWriter(out, cfg.TEST.REPORT_BASELINES, cfg.TEST.REPORT_RUN_NAME),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        limit_val_batches=1.0 if cfg.DATASETS.TEST else 0,
        benchmark=cfg.CUDNN_BENCHMARK,
        default_root_dir=out,
        enable_model_summary=False,
    )


def run(
    cfg: CfgNode,
    *,
    num_gpus: int = 1,
    num_machines: int = 1,
    resume: bool = False,
    eval_only: bool = False,
    callbacks: Sequence[pl.Callback] = (),
) -> dict[str, dict[str, dict[str, float]]]:
    """Train (or only evaluate) as the config says; returns the last evaluation results
    ``{dataset: {"sem_seg": metrics}}``.

    Training starts from the newest complete checkpoint in ``OUTPUT_DIR`` when ``resume``
    (:func:`clouds.engine.resume.find_resume_checkpoint`; model, optimizer, scheduler, sampler,
    EMA teacher and iteration restored), else from ``MODEL.WEIGHTS`` if set;
    a fresh run is evaluated first when ``TEST.EVAL_AT_START`` (as the original CLOUDS).
    """
    pl.seed_everything(cfg.SEED, workers=True, verbose=False)
    last = find_resume_checkpoint(cfg.OUTPUT_DIR) if resume and not eval_only else None
    resuming = last is not None
    # A MODEL.WEIGHTS file holding the frozen CLIP (original CLOUDS) spares its download.
    with foundation_weights_context(None if resuming else cfg.MODEL.WEIGHTS):
        module = CloudsLightningModule.from_config(cfg)
    datamodule = CloudsDataModule(cfg=cfg)
    if not eval_only:  # EMA teacher + SAM pseudo-labels (MODEL.CLOUDS.SAM.ENABLED/MINIBATCH)
        callbacks = [*callbacks, *build_joint_training(cfg)]
    trainer = build_trainer(cfg, num_gpus=num_gpus, num_machines=num_machines, callbacks=callbacks)
    if eval_only:
        if not cfg.DATASETS.TEST:
            raise ConfigError("--eval-only needs at least one dataset in DATASETS.TEST")
        if cfg.MODEL.WEIGHTS:
            load_model_weights(
                module.model, cfg.MODEL.WEIGHTS, trust_pickle=cfg.MODEL.WEIGHTS_TRUST_PICKLE
            )
            iteration = checkpoint_iteration(cfg.MODEL.WEIGHTS)
            if iteration is not None:  # curves and log show the checkpoint's iteration
                set_trainer_iteration(trainer, iteration)
        else:
            logger.warning("--eval-only without MODEL.WEIGHTS evaluates an untrained model")
        trainer.validate(module, datamodule=datamodule, verbose=False)
        return module.eval_results

    ckpt_path = last if resuming else None
    if ckpt_path:
        logger.info("Resuming from %s", ckpt_path)
    elif cfg.MODEL.WEIGHTS:
        load_model_weights(
            module.model, cfg.MODEL.WEIGHTS, trust_pickle=cfg.MODEL.WEIGHTS_TRUST_PICKLE
        )
    if cfg.TEST.EVAL_AT_START and cfg.DATASETS.TEST and not ckpt_path:
        trainer.validate(module, datamodule=datamodule, verbose=False)  # iteration 0
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if cfg.DATASETS.TEST and module.eval_iteration != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return module.eval_results


def launch_from_args(
    args: argparse.Namespace, callbacks: Sequence[pl.Callback] = ()
) -> dict[str, dict[str, dict[str, float]]]:
    """What ``train_net.py`` does with its parsed command line: distributed environment, config
    and logging setup, dataset registration, then :func:`run`."""
    from clouds.data.datasets import register_all_datasets

    configure_distributed_env(args)
    cfg = setup(args)
    try:
        with log_fatal_errors():  # to OUTPUT_DIR/log.txt as well
            register_all_datasets()
            num_gpus, num_machines = resolve_topology(args)
            world = num_gpus * num_machines
            with peer_lost_errors(world, cfg.SOLVER.DIST_TIMEOUT_S):
                return run(
                    cfg,
                    num_gpus=num_gpus,
                    num_machines=num_machines,
                    resume=args.resume,
                    eval_only=args.eval_only,
                    callbacks=callbacks,
                )
    finally:
        release_run_folder(cfg.OUTPUT_DIR)
