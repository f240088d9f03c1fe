"""HRDASegmentor: multi-resolution training (crop draw, losses and their weights), frozen
backbones, slide inference with detail windows or the context head alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling import build_model
from clouds.modeling.meta_arch.hrda_segmentor import HRDASegmentor, random_crop_box
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def _model(*overrides: str) -> HRDASegmentor:
    cfg = tiny_vfm_cfg(
        "DINOv2",
        [
            "MODEL.META_ARCHITECTURE", "HRDASegmentor", "MODEL.VFM_HEAD.HIDDEN_DIM", "32",
            "MODEL.HRDA.HR_CROP_SIZE", "(32, 32)", "TEST.MODE", "slide",
            "TEST.SLIDE.WINDOW", "(64, 64)", "TEST.SLIDE.STRIDE", "(32, 32)", *overrides,
        ],
    )  # fmt: skip
    return build_model(cfg)


def _batch(h: int = 64, w: int = 64) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8),
         "sem_seg": torch.randint(0, 5, (h, w), generator=g)}
        for _ in range(2)
    ]  # fmt: skip


def test_crop_box_draws_from_numpy_on_the_grid() -> None:
    np.random.seed(3)
    expected = [int(np.random.randint(0, 8)) * 8 for _ in range(2)]  # (96 - 32 + 1) // 8
    np.random.seed(3)
    y1, y2, x1, x2 = random_crop_box(96, 96, (32, 32), 8)
    assert [y1, x1] == expected and (y2 - y1, x2 - x1) == (32, 32)
    assert random_crop_box(32, 32, (32, 32), 8) == (0, 32, 0, 32)
    with pytest.raises(ConfigError, match="MODEL.HRDA.HR_CROP_SIZE"):
        random_crop_box(16, 64, (32, 32), 8)


def test_losses_and_their_weights() -> None:
    model = _model("MODEL.HRDA.LR_LOSS_WEIGHT", "0.2", "MODEL.HRDA.HR_LOSS_WEIGHT", "0.3").train()
    losses = model(_batch())
    assert set(losses) == {"loss_seg", "loss_lr_seg", "loss_hr_seg"}
    images, labels = model._training_batch(_batch())
    np.random.seed(0)
    torch.manual_seed(0)
    first = model.losses(images, labels)
    model.lr_loss_weight, model.hr_loss_weight = 0.1, 0.2
    np.random.seed(0)
    torch.manual_seed(0)
    second = model.losses(images, labels)
    for key, (a, b) in {
        "loss_seg": (0.5, 0.7),
        "loss_lr_seg": (0.2, 0.1),
        "loss_hr_seg": (0.3, 0.2),
    }.items():
        assert float(first[key].detach()) / a == pytest.approx(float(second[key]) / b, rel=1e-5), (
            key
        )
    sum(first.values()).backward()
    assert model.decode_head.scale_attention.conv_seg.weight.grad is not None


def test_frozen_backbone_eval_mode_without_gradients() -> None:
    model = _model("MODEL.LORA.ENABLED", "False").train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(m.training for m in model.backbone.modules() if m is not model.backbone)
    sum(model(_batch()).values()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.decode_head.parameters() if p.requires_grad)


def test_slide_inference_modes() -> None:
    model = _model().eval()
    image = [{"image": _batch(64, 96)[0]["image"], "height": 32, "width": 48}]
    with torch.no_grad():
        fused = model(image)[0]["sem_seg"]
        model.hr_slide_inference = False
        whole_detail = model(image)[0]["sem_seg"]
        model.context_only_slide = True
        context_only = model(image)[0]["sem_seg"]
    assert fused.shape == whole_detail.shape == context_only.shape == (5, 32, 48)
    torch.testing.assert_close(fused.sum(0), torch.ones(32, 48))
    assert not torch.allclose(fused, context_only)


def test_bad_settings_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="TEST.MODE='coarse_to_fine'"):
        _model("TEST.MODE", "coarse_to_fine")
    with pytest.raises(ConfigError, match="MODEL.HRDA.SCALES"):
        _model("MODEL.HRDA.SCALES", "[1.0]")
    with pytest.raises(ConfigError, match="MODEL.HRDA.HR_CROP_SIZE=\\(24, 32\\)"):
        _model("MODEL.HRDA.HR_CROP_SIZE", "(24, 32)")
    with pytest.raises(ConfigError, match="MODEL.HRDA.HEAD_NAME='Nope'"):
        _model("MODEL.HRDA.HEAD_NAME", "Nope")
