"""Parameter groups, schedules and gradient clipping.

``test_lr_equals_detectron2_for_every_original_config`` reads the "lr" part of
``tests/fixtures/clouds_recipe/original_configs.json`` (made outside this project by
/work/scratch/clouds-recipe/gen_fixtures.py): for every original CLOUDS config (bac4305,
resolved with detectron2's defaults, see tests/test_config.py), the LR that detectron2's own
scheduler code gives at sample iterations: ``detectron2.projects.deeplab.build_lr_scheduler``
(DeepLab's WarmupPolyLR, else ``detectron2.solver.build_lr_scheduler`` with fvcore's
MultiStep + Warmup param schedulers) on an AdamW with lr BASE_LR, stepped once per iteration.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from clouds.config import ConfigError, get_cfg, load_config
from clouds.engine import solver
from clouds.engine.solver import (
    build_lr_lambda,
    build_lr_scheduler,
    build_optimizer,
    clip_gradients,
    get_param_groups,
)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1))
        self.backbone[0].requires_grad_(False)  # frozen part
        self.teacher = nn.Linear(4, 4).requires_grad_(False)  # EMA-teacher-like copy
        self.head = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.query_embed = nn.Embedding(5, 4)
        self.void_embedding = nn.Parameter(torch.zeros(4))
        self.level_embed = nn.Parameter(torch.zeros(3, 4))
        self.absolute_pos_embed = nn.Parameter(torch.zeros(4))


REPO = Path(__file__).resolve().parents[2]
ORIGINAL = json.loads((REPO / "tests/fixtures/clouds_recipe/original_configs.json").read_text())


def _groups_by_name(model: nn.Module, embed_by_name: bool = False) -> dict[str, dict]:
    groups = get_param_groups(
        model,
        base_lr=1.0,
        weight_decay=0.05,
        weight_decay_norm=0.0,
        weight_decay_embed=0.01,
        backbone_multiplier=0.1,
        embed_by_name=embed_by_name,
    )
    return {name: g for g in groups for name in g["param_names"]}


def test_param_groups_multipliers_decay_and_frozen() -> None:
    """The original's rule: only norm layers, nn.Embedding and two position tables differ."""
    model = _Model()
    by_name = _groups_by_name(model)
    assert "backbone.0.weight" not in by_name and "teacher.weight" not in by_name
    assert by_name["backbone.1.weight"]["lr"] == pytest.approx(0.1)
    assert by_name["head.weight"]["lr"] == 1.0 and by_name["head.weight"]["weight_decay"] == 0.05
    assert by_name["norm.weight"]["weight_decay"] == 0.0
    assert by_name["query_embed.weight"]["weight_decay"] == 0.01
    assert by_name["level_embed"]["weight_decay"] == 0.05
    assert by_name["void_embedding"]["weight_decay"] == 0.05
    assert by_name["absolute_pos_embed"]["weight_decay"] == 0.0


def test_param_groups_embeddings_by_name() -> None:
    by_name = _groups_by_name(_Model(), embed_by_name=True)
    for name in ("query_embed.weight", "level_embed", "void_embedding", "absolute_pos_embed"):
        assert by_name[name]["weight_decay"] == 0.01
    assert by_name["head.weight"]["weight_decay"] == 0.05


def test_reproduction_pixel_decoder_level_embed_is_decayed() -> None:
    cfg = load_config(str(REPO / "configs/warmup/gta/train_gta.yaml"))
    model = _Model()
    optimizer = build_optimizer(cfg, model)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(model.level_embed)] == 0.05


def test_optimizer_never_holds_frozen_parameters() -> None:
    model = _Model()
    cfg = get_cfg()
    optimizer = build_optimizer(cfg, model)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert held == trainable and not held & frozen
    assert isinstance(optimizer, torch.optim.AdamW)
    cfg.SOLVER.OPTIMIZER = "SGD"
    assert isinstance(build_optimizer(cfg, model), torch.optim.SGD)
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ConfigError, match="LAMB"):
        build_optimizer(cfg, model)


def test_schedules() -> None:
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.WARMUP_ITERS = 10
    cfg.SOLVER.WARMUP_FACTOR = 0.1
    poly = build_lr_lambda(cfg)
    assert poly(0) == pytest.approx(0.1 * 1.0)
    assert poly(5) == pytest.approx((0.1 * 0.5 + 0.5) * 0.95**0.9)
    assert poly(50) == pytest.approx(0.5**0.9)
    assert poly(100) == 0.0
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.STEPS = (30, 60)
    step = build_lr_lambda(cfg)
    assert [step(20), step(30), step(70)] == pytest.approx([1.0, 0.1, 0.01])
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    assert build_lr_lambda(cfg)(50) == pytest.approx(0.5)
    cfg.SOLVER.LR_SCHEDULER_NAME = "Nope"
    with pytest.raises(ConfigError, match="Nope"):
        build_lr_lambda(cfg)


def test_steps_beyond_max_iter_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.STEPS = (50, 1000)
    warnings: list[str] = []
    monkeypatch.setattr(solver.logger, "warning", lambda msg, *args: warnings.append(msg % args))
    step = build_lr_lambda(cfg)
    assert len(warnings) == 1 and "SOLVER.STEPS (50, 1000)" in warnings[0]
    assert [step(49), step(50), step(99)] == pytest.approx([1.0, 0.1, 0.1])


@pytest.mark.parametrize("path", sorted(ORIGINAL["lr"]))
def test_lr_equals_detectron2_for_every_original_config(path: str) -> None:
    cfg = load_config(str(REPO / path))
    lr_lambda = build_lr_lambda(cfg)
    for iteration, expected in ORIGINAL["lr"][path].items():
        ours = cfg.SOLVER.BASE_LR * lr_lambda(int(iteration))
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15), (path, iteration)


def test_scheduler_is_stepped_per_iteration() -> None:
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER = 4
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.BACKBONE_MULTIPLIER = 1.0
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([(1 - i / 4) ** 0.9 for i in range(4)])


def test_full_model_and_value_clipping() -> None:
    cfg = get_cfg()
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(4))
    a.grad, b.grad = torch.full((3,), 3.0), torch.full((4,), 4.0)
    total = clip_gradients(cfg, [a, b])
    assert total.item() == pytest.approx(math.sqrt(9 * 3 + 16 * 4))
    clipped = torch.cat([a.grad, b.grad]).norm()
    assert clipped.item() == pytest.approx(cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE, rel=1e-4)
    # one norm over all parameters: the ratio between them is kept
    assert (a.grad[0] / b.grad[0]).item() == pytest.approx(0.75)
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    a.grad = torch.tensor([-2.0, 0.1, 3.0])
    clip_gradients(cfg, [a])
    assert a.grad.tolist() == pytest.approx([-0.5, 0.1, 0.5])
