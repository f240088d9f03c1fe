"""Checkpoints: what counts as trainable, round trip with the config, mismatch errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from clouds.config import get_cfg
from clouds.modeling import build_model
from clouds.modeling.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint,
    load_trainable_state_dict,
    save_checkpoint,
    trainable_state_dict,
)
from tests.modeling.model_utils import toy_config


class Student(nn.Module):
    """A frozen "backbone" (conv + BN), a trained "head" (linear + BN) and an EMA teacher copy."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.head.register_buffer("cache", torch.zeros(2), persistent=False)
        self.scale = nn.Parameter(torch.ones(()))
        self.fixed = nn.Parameter(torch.ones(()), requires_grad=False)
        self.teacher = copy.deepcopy(self.head).requires_grad_(False)


def test_rule_keeps_trained_parameters_and_their_buffers_only() -> None:
    keys = set(trainable_state_dict(Student()))
    assert keys == {
        "head.0.weight",
        "head.0.bias",
        "head.1.weight",
        "head.1.bias",
        "head.1.running_mean",
        "head.1.running_var",
        "head.1.num_batches_tracked",
        "scale",
    }


def test_clouds_checkpoint_leaves_out_the_frozen_clip_model() -> None:
    model = build_model(toy_config())
    state = trainable_state_dict(model)
    assert state and not any(key.startswith("backbone.") for key in state)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained <= set(state)
    assert all(key.startswith("sem_seg_head.") for key in state)


def test_round_trip_with_config(tmp_path: Path) -> None:
    cfg = toy_config()
    source = build_model(cfg)
    path = tmp_path / "ckpt" / "model_final.pth"
    save_checkpoint(path, source, cfg, extra={"iteration": 7})
    target = build_model(cfg)
    assert not all(
        torch.equal(v, trainable_state_dict(target)[k])
        for k, v in trainable_state_dict(source).items()
    )
    payload = load_checkpoint(path, target)
    assert payload["iteration"] == 7
    for key, value in trainable_state_dict(source).items():
        torch.testing.assert_close(trainable_state_dict(target)[key], value)
    saved_cfg = get_cfg()
    saved_cfg.merge_from_other_cfg(saved_cfg.load_cfg(payload["config"]))
    assert saved_cfg.MODEL.CLOUDS.CLIP_MODEL_NAME == "clouds_tiny_convnext"
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path]


def test_mismatched_architecture_lists_keys_and_shapes() -> None:
    state = trainable_state_dict(build_model(toy_config()))
    other = build_model(
        toy_config(
            ["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "12", "MODEL.MASK_FORMER.DEC_LAYERS", "4"]
        )
    )
    before = {k: v.clone() for k, v in trainable_state_dict(other).items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_trainable_state_dict(other, state)
    error = info.value
    assert any(".2." in key for key in error.missing), error.missing
    assert not error.unexpected
    shapes = {key: (got, want) for key, got, want in error.shape_mismatches}
    assert shapes["sem_seg_head.predictor.query_feat.weight"] == ((10, 32), (12, 32))
    assert "sem_seg_head.predictor.query_feat.weight" in str(error)
    assert "missing in the checkpoint" in str(error)
    for key, value in trainable_state_dict(other).items():
        assert torch.equal(value, before[key]), "nothing may be loaded on a mismatch"


def test_unexpected_keys_are_reported() -> None:
    model = Student()
    state = trainable_state_dict(model)
    state["head.2.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected.*head\.2\.weight"):
        load_trainable_state_dict(model, state)


def test_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(tmp_path / "nothing.pth", Student())
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="foreign.pth"):
        load_checkpoint(foreign, Student())
