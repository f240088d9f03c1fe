"""SegFormerHead: per-map embeddings resized to the first map, fused, classified at its stride."""

from __future__ import annotations

import pytest
import torch

from clouds.modeling import build_model
from clouds.modeling.heads.conv_norm_act import ConvNormAct
from clouds.modeling.heads.segformer_head import SegFormerHead
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def _head(**kwargs: object) -> SegFormerHead:
    args = {"in_features": ["a", "b"], "in_channels": [8, 16], "channels": 32, "num_classes": 5}
    return SegFormerHead(**{**args, **kwargs})


def test_logits_at_the_first_maps_size_from_maps_of_any_stride() -> None:
    head = _head().eval()
    features = {"a": torch.randn(2, 8, 8, 12), "b": torch.randn(2, 16, 4, 6)}
    assert head(features).shape == (2, 5, 8, 12)


def test_every_map_is_used_and_resized_bilinearly() -> None:
    head = _head().eval()
    torch.manual_seed(0)
    features = {"a": torch.randn(1, 8, 8, 8), "b": torch.randn(1, 16, 4, 4)}
    base = head(features)
    changed = dict(features, b=features["b"].flip(-1))
    assert not torch.allclose(head(changed), base)
    embedded_b = torch.nn.functional.interpolate(
        head.convs[1](features["b"]), size=(8, 8), mode="bilinear", align_corners=False
    )
    fused = head.fusion_conv(torch.cat([head.convs[0](features["a"]), embedded_b], dim=1))
    torch.testing.assert_close(base, head.conv_seg(fused))


def test_original_key_names() -> None:
    keys = set(_head().state_dict())
    assert {"convs.0.conv.weight", "convs.0.gn.weight", "fusion_conv.conv.weight"} <= keys
    assert {"fusion_conv.gn.bias", "conv_seg.weight", "conv_seg.bias"} <= keys
    assert "convs.0.conv.bias" not in keys  # no conv bias before a norm, as mmcv's ConvModule


def test_widths_need_groupnorm_groups_and_one_per_map() -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        _head(channels=48)
    with pytest.raises(ValueError, match="2 feature names for 1 widths"):
        _head(in_channels=[8])
    assert isinstance(_head().convs[0], ConvNormAct)


def test_built_by_name_as_the_light_head_and_trained() -> None:
    cfg = tiny_vfm_cfg(
        "DINOv2",
        [
            "MODEL.VFM_HEAD.TYPE", "light", "MODEL.VFM_HEAD.LIGHT_HEAD_NAME", "SegFormerHead",
            "MODEL.VFM_HEAD.HIDDEN_DIM", "32", "MODEL.LORA.ENABLED", "False",
        ],
    )  # fmt: skip
    model = build_model(cfg).train()
    assert isinstance(model.decode_head, SegFormerHead)
    batch = [{"image": torch.randint(0, 255, (3, 32, 48), dtype=torch.uint8),
              "sem_seg": torch.randint(0, 5, (32, 48))}]  # fmt: skip
    losses = model(batch)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.decode_head.parameters())
    model.eval()
    assert model(batch)[0]["sem_seg"].shape == (5, 32, 48)
