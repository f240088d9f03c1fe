"""The CLOUDS mask-classification head on VFM features (MODEL.VFM_HEAD.TYPE mask_former)."""

from __future__ import annotations

from pathlib import Path

import torch

from clouds.config import load_config
from clouds.modeling import build_model
from clouds.modeling.backbone.vfm.pyramid import SimpleFeaturePyramid
from clouds.modeling.heads.vfm_mask_head import VFMMaskHead

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toy" / "dg_dinov2_mask_former.yaml"


def test_pyramid_levels_and_strides() -> None:
    pyramid = SimpleFeaturePyramid(in_channels=16, out_channels=8)
    out = pyramid([torch.randn(2, 16, 4, 6) for _ in range(4)])
    shapes = pyramid.output_shape()
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for name, x in out.items():
        stride = shapes[name].stride
        assert x.shape == (2, 8, 64 // stride, 96 // stride), name


def test_trains_lora_and_head_and_predicts() -> None:
    cfg = load_config(str(CONFIG), ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", "5"])
    model = build_model(cfg)
    assert isinstance(model.decode_head, VFMMaskHead) and model.aux_decoder is None
    assert model.size_divisibility == 32
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("decode_head.") or ".lora_" in n for n in trainable)
    assert "decode_head.class_embed" in trainable

    model.train()
    batch = [
        {
            "image": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8),
            "sem_seg": torch.randint(0, 5, (64, 64)),
        }
        for _ in range(2)
    ]
    losses = model(batch)
    assert {"loss_ce", "loss_mask", "loss_dice"} <= set(losses)
    sum(losses.values()).backward()
    assert model.decode_head.class_embed.grad is not None
    assert all(p.grad is not None for n, p in model.named_parameters() if ".lora_A." in n)

    model.eval()
    out = model([{"image": torch.randint(0, 256, (3, 48, 80), dtype=torch.uint8)}])
    assert out[0]["sem_seg"].shape == (5, 48, 80)
    torch.testing.assert_close(out[0]["sem_seg"].sum(0), torch.ones(48, 80))
