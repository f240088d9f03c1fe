"""Loading SAM through the config path: tiny checkpoint round trip and clear errors."""

import sys
from pathlib import Path

import pytest
import torch

from clouds.config import get_cfg
from clouds.sam import SamCheckpointError, SamRefiner, build_sam, build_tiny_sam
from clouds.utils.weights_file import WeightsFileError


def test_tiny_checkpoint_loads_back_frozen(tiny_sam_checkpoint: Path) -> None:
    model = build_sam("tiny", str(tiny_sam_checkpoint))
    saved = torch.load(tiny_sam_checkpoint, weights_only=True)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name])
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_refiner_from_config_loads_the_checkpoint(tiny_sam_checkpoint: Path) -> None:
    cfg = get_cfg()
    cfg.MODEL.CLOUDS.SAM.MODEL_TYPE = "tiny"
    cfg.MODEL.CLOUDS.SAM.CHECKPOINT = str(tiny_sam_checkpoint)
    cfg.MODEL.CLOUDS.SAM.NUM_POINTS = 3
    cfg.MODEL.CLOUDS.SAM.PROMPT_BATCH_SIZE = 7
    refiner = SamRefiner.from_config(cfg)
    assert refiner.num_points == 3 and refiner.predictor.prompt_batch_size == 7
    saved = torch.load(tiny_sam_checkpoint, weights_only=True)
    key = "mask_decoder.iou_token.weight"
    torch.testing.assert_close(refiner.predictor.model.state_dict()[key], saved[key])


@pytest.mark.parametrize("eval_mode", [False, True])
def test_sam_mode_follows_the_eval_mode_key(tiny_sam_checkpoint: Path, eval_mode: bool) -> None:
    """SAM in training mode by default (the original's, a part of its model), eval mode with
    MODEL.CLOUDS.SAM.EVAL_MODE; never trainable either way."""
    cfg = get_cfg()
    cfg.MODEL.CLOUDS.SAM.MODEL_TYPE = "tiny"
    cfg.MODEL.CLOUDS.SAM.CHECKPOINT = str(tiny_sam_checkpoint)
    cfg.MODEL.CLOUDS.SAM.EVAL_MODE = eval_mode
    model = SamRefiner.from_config(cfg).predictor.model
    assert all(m.training is not eval_mode for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_missing_and_mismatched_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(SamCheckpointError, match="not found"):
        build_sam("tiny", str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    state = build_tiny_sam().state_dict()
    state.pop("mask_decoder.iou_token.weight")
    torch.save(state, bad)
    with pytest.raises(SamCheckpointError, match="MODEL_TYPE"):
        build_sam("tiny", str(bad))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFileError, match="MODEL.CLOUDS.SAM.CHECKPOINT .*garbage.pth") as info:
        build_sam("tiny", str(garbage))
    assert "weights_only" not in str(info.value)


def test_unknown_model_type_is_named() -> None:
    with pytest.raises(ValueError, match="vit_x"):
        build_sam("vit_x")


def test_vit_t_without_mobile_sam_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mobile_sam", None)  # import fails
    with pytest.raises(ImportError, match="mobilesam-mirror"):
        build_sam("vit_t")
