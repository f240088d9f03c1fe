"""VFMSegmentor: what trains, multi-scale losses, sub-crops and outputs (tiny DINOv2 + LoRA)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clouds.config import ConfigError
from clouds.modeling import build_model
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor, region_logits
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def _batch(n: int = 2, size: int = 64) -> list[dict]:
    return [
        {
            "image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8),
            "sem_seg": torch.randint(0, 5, (size, size)),
        }
        for _ in range(n)
    ]


def _is_lora_or_head(name: str) -> bool:
    return name.startswith(("light_head.", "refine_head.")) or (
        name.startswith("backbone.vit.") and (".lora_A." in name or ".lora_B." in name)
    )


@pytest.mark.parametrize("head_type", ["light", "ms", "ms_masked"])
def test_trainable_parameters_are_exactly_lora_and_heads(head_type: str) -> None:
    model = build_model(tiny_vfm_cfg("EVA02", ["MODEL.VFM_HEAD.TYPE", head_type]))
    assert isinstance(model, VFMSegmentor)
    names = dict(model.named_parameters())
    trainable = {n for n, p in names.items() if p.requires_grad}
    assert trainable == {n for n in names if _is_lora_or_head(n)}
    assert any(n.startswith("refine_head.") for n in trainable) == (head_type != "light")
    assert any(".lora_" in n for n in trainable)


def test_training_steps_change_only_lora_and_heads() -> None:
    model = build_model(tiny_vfm_cfg("DINOv2")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    for _ in range(2):
        losses = model(_batch())
        assert set(losses) == {"loss_coarse", "loss_refine"}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(_is_lora_or_head(k) for k in changed), sorted(changed)[:5]
    assert any(".lora_B." in k for k in changed)
    assert any(k.startswith("refine_head.") for k in changed)
    assert any(k.startswith("light_head.") for k in changed)


def test_multi_scale_loss_gradients_reach_both_heads_and_lora() -> None:
    model = build_model(tiny_vfm_cfg("DINOv2")).train()
    losses = model(_batch())
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    losses["loss_refine"].backward()
    light = [p.grad for p in model.light_head.parameters()]
    assert all(g is None for g in light), "coarse logits must reach the refiner detached"
    assert all(p.grad is not None for p in model.refine_head.parameters())
    lora = [p for n, p in model.named_parameters() if ".lora_A." in n]
    assert all(p.grad is not None for p in lora)


def test_light_head_training_loss() -> None:
    model = build_model(tiny_vfm_cfg("SAMViT", ["MODEL.VFM_HEAD.TYPE", "light"])).train()
    losses = model(_batch(size=32))
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])


def test_sub_crops_lie_on_the_grid_inside_the_crop() -> None:
    model = build_model(tiny_vfm_cfg("DINOv2"))
    boxes = model.sample_sub_crops(64, 96, 200)
    x0, y0, x1, y1 = boxes.unbind(1)
    assert ((x0 % 16) == 0).all() and ((y0 % 16) == 0).all()
    assert (x1 - x0 == 32).all() and (y1 - y0 == 32).all()
    assert (x1 <= 96).all() and (y1 <= 64).all()
    assert set(x0.tolist()) == {0, 16, 32, 48, 64} and set(y0.tolist()) == {0, 16, 32}
    with pytest.raises(ConfigError, match="SUB_CROP"):
        model.sample_sub_crops(16, 96, 1)


def test_region_logits_resample_like_interpolate() -> None:
    logits = torch.randn(2, 3, 8, 12)  # stride 8 of a 64 x 96 image
    boxes = torch.tensor([[16.0, 32.0, 48.0, 64.0], [0.0, 0.0, 32.0, 32.0]])
    regions = region_logits(logits, (64, 96), boxes, (8, 8))  # stride 4 of the regions
    upsampled = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(regions[0], upsampled[0, :, 8:16, 4:12])
    torch.testing.assert_close(regions[1], upsampled[1, :, 0:8, 0:8])


def test_eval_outputs_class_probabilities_at_requested_size() -> None:
    model = build_model(tiny_vfm_cfg("CLIPViT", ["MODEL.VFM_HEAD.TYPE", "light"])).eval()
    inputs = [
        {
            "image": torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8),
            "height": 80,
            "width": 112,
        },
        {"image": torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)},
    ]
    outputs = model(inputs)
    assert outputs[0]["sem_seg"].shape == (5, 80, 112)
    assert outputs[1]["sem_seg"].shape == (5, 32, 32)
    torch.testing.assert_close(outputs[0]["sem_seg"].sum(0), torch.ones(80, 112))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="VFM_HEAD.TYPE"):
        build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "heavy"]))
    with pytest.raises(ConfigError, match="coarse_to_fine"):
        build_model(
            tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light", "TEST.MODE", "coarse_to_fine"])
        )
    with pytest.raises(ConfigError, match="not a VFM backbone"):
        build_model(tiny_vfm_cfg("DINOv2", ["MODEL.BACKBONE.NAME", "CLIP"]))
