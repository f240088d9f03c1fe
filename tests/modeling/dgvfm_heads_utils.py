"""Shared by the DGVFM head tests: fixture paths, the deterministic weight fill, the tiny MGRNet.

The fixtures under tests/fixtures/dgvfm_heads/ were made by /work/scratch/dgvfm-heads/
gen_fixtures.py, which runs the ORIGINAL DGVFM code (tpy001/VFMSeg: rein/models/heads/
linear_head.py, VFMHead.py, Transformer.py, rein/models/segmentors/Ms_VFM_encoder_decoder.py)
on real mmsegmentation 1.2.2 / mmengine 0.10.7 / mmcv-lite 2.1.0, after filling its modules'
state dicts with :func:`fill_state` (the same values reach ours because the key names match).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from clouds.modeling.heads.mgrnet import MGRNet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dgvfm_heads"


def fill_state(module: nn.Module, seed: int, scale: float = 0.2) -> None:
    """Deterministic values by sorted state_dict key: randn * scale (running variances
    |randn| + 0.5), batch counters kept."""
    generator = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    new = {}
    for key in sorted(state):
        value = state[key]
        if key.endswith("num_batches_tracked"):
            new[key] = value
            continue
        r = torch.randn(value.shape, generator=generator)
        new[key] = r.abs() + 0.5 if key.endswith("running_var") else r * scale
    module.load_state_dict(new)


def load_fixture(name: str) -> dict:
    return torch.load(FIXTURES / name, map_location="cpu", weights_only=True)


FEATURE_NAMES = [f"vfm{i}" for i in range(4)]


def tiny_mgrnet(*, num_layers: int, mask_ratio: float | None = 0.2) -> MGRNet:
    """The fixtures' refinement head: maps 4 x 32 channels, 128 wide, 2 heads x 16, 19 classes."""
    return MGRNet(
        in_features=FEATURE_NAMES,
        in_channels=32,
        num_classes=19,
        channels=128,
        num_layers=num_layers,
        num_heads=2,
        head_dim=16,
        mask_ratio=mask_ratio,
    )
