"""Shared set-up of the joint-training step parity with the original CLOUDS (yasserben/CLOUDS at
bac4305): the config, the EMA teacher's starting weights and the fixture's location. Used by
tests/engine/test_joint_step_parity.py and by the script that ran the original to write the
fixture."""

from __future__ import annotations

from pathlib import Path

import torch

from clouds.config import CfgNode
from tests.modeling.original_parity import parity_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "clouds_joint" / "joint_step.pt"
VARIANT = "convnext_linear"  # the original model of tests/fixtures/clouds_model/
STEP = 2  # the training iteration of the step: an EMA update (ITERATION_UPDATE 2)
TORCH_SEED = 11  # seeds the criterion's point sampling on both sides
NUMPY_SEED = 0  # seeds the SAM point prompts (the original's global np.random)
JOINT_OVERRIDES = [
    "MODEL.CLOUDS.SAM.ENABLED", "True", "MODEL.CLOUDS.SAM.MINIBATCH", "True",
    "MODEL.CLOUDS.SAM.RANDOM_INIT", "True", "MODEL.CLOUDS.SAM.SIZE_THRESHOLD", "40",
    "MODEL.CLOUDS.SAM.NUM_POINTS", "5", "MODEL.CLOUDS.SAM.ALPHA_EMA", "0.9",
    "MODEL.CLOUDS.ITERATION_UPDATE", "2",
]  # fmt: skip


def joint_config(overrides: list[str] | None = None) -> CfgNode:
    """The tiny original model's config (``tests.modeling.original_parity``) with SAM-refined
    EMA-teacher pseudo-labels."""
    return parity_config(VARIANT, [*JOINT_OVERRIDES, *(overrides or [])])


def teacher_start(head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EMA teacher before the step: the student's head tensors (``sem_seg_head.*``) moved by
    0.05 N(0, 1) (a generator seeded 7, keys in sorted order), rounded to fp16."""
    generator = torch.Generator().manual_seed(7)
    teacher = {}
    for name in sorted(head):
        value = head[name]
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        teacher[name] = (value + 0.05 * noise).half().float()
    return teacher


def fingerprint(tensor: torch.Tensor) -> torch.Tensor:
    """(3,) float64 summary of a tensor (to keep the fixture small): its L2 norm and its dot
    products with two fixed random N(0, 1) vectors (a generator seeded 0)."""
    flat = tensor.detach().double().flatten()
    generator = torch.Generator().manual_seed(0)
    probes = torch.randn(2, flat.numel(), generator=generator, dtype=torch.float64)
    return torch.cat([flat.norm()[None], probes @ flat])
