"""One training step of a tiny DGVFM segmentor, on one process or as one of several (gloo, CPU).

Shared by tests/engine/test_sync_batchnorm.py: the parent runs the step on the pooled batch, the
spawned processes (:func:`ddp_worker`) each on their share, under DDP as the engine wraps the
model. Every dropout is 0 and the refinement sub-crop is the whole crop, so the step holds no
random draw and the pooled step is the reference.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clouds.config import CfgNode, load_config
from clouds.engine.sync_batchnorm import sync_light_head_batchnorm
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor

REPO = Path(__file__).resolve().parents[2]
CROP = 64
NUM_CLASSES = 5


def tiny_cfg() -> CfgNode:
    """The toy DGVFM config with the light and (unmasked) refinement heads, no dropout."""
    return load_config(
        str(REPO / "configs/toy/dg_dinov2_ms_masked.yaml"),
        [
            "MODEL.VFM_HEAD.TYPE", "ms",
            "MODEL.VFM_HEAD.SUB_CROP", CROP,
            "MODEL.VFM_HEAD.DROPOUT", 0.0,
            "MODEL.VFM_HEAD.REFINE_DROPOUT", 0.0,
            "MODEL.LORA.DROPOUT", 0.0,
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", NUM_CLASSES,
            "INPUT.CROP.SIZE", f"({CROP}, {CROP})",
        ],
    )  # fmt: skip


def build_model(device: str = "cpu") -> VFMSegmentor:
    """The same randomly initialised model on every process (seeded), in training mode."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = VFMSegmentor.from_config(tiny_cfg())
    return model.train().to(device)


def pooled_batch(size: int = 4) -> list[dict]:
    """``size`` random images (3, CROP, CROP) uint8 with labels (CROP, CROP), some ignored."""
    g = torch.Generator().manual_seed(1)
    batch = []
    for _ in range(size):
        label = torch.randint(NUM_CLASSES, (CROP, CROP), generator=g)
        label[torch.rand(CROP, CROP, generator=g) < 0.1] = 255
        image = torch.randint(256, (3, CROP, CROP), generator=g, dtype=torch.uint8)
        batch.append({"image": image, "sem_seg": label})
    return batch


def step_record(model: nn.Module, ddp_model: nn.Module, batch: list[dict]) -> dict:
    """Run forward + backward on ``batch``; gradients of the trainable tensors, the light-head
    BatchNorm statistics after the step and the losses."""
    losses = ddp_model(batch)
    sum(losses.values()).backward()
    norms = [
        m for m in model.decode_head.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    return {
        "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad},
        "running_mean": [m.running_mean.clone() for m in norms],
        "running_var": [m.running_var.clone() for m in norms],
        "norm_types": [type(m).__name__ for m in norms],
        "losses": {k: v.detach() for k, v in losses.items()},
    }


def ddp_worker(rank: int, world_size: int, port: int, out_dir: str, device: str = "cpu") -> None:
    """Process ``rank``: its contiguous share of :func:`pooled_batch` (the images a per-GPU
    batch of ``4 / world_size`` gives it), one step under DDP with the light head synchronised
    (``rank<r>_sync.pt``) and one without (``rank<r>_local.pt``). On "cuda" every process uses
    GPU 0 (gloo carries CUDA tensors; NCCL wants one GPU per process)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        share = len(pooled_batch()) // world_size
        batch = pooled_batch()[rank * share : (rank + 1) * share]
        device_ids = [0] if device == "cuda" else None
        for name in ("sync", "local"):
            model = build_model()
            if name == "sync":
                sync_light_head_batchnorm(model, device_type=device)
            model = model.to(device)
            ddp_model = DistributedDataParallel(
                model, device_ids=device_ids, broadcast_buffers=False
            )  # as the engine
            record = step_record(model, ddp_model, batch)
            record = {k: to_cpu(v) for k, v in record.items()}
            torch.save(record, os.path.join(out_dir, f"rank{rank}_{name}.pt"))
    finally:
        dist.destroy_process_group()


def to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cpu(v) for v in value]
    return value
