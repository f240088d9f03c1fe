"""AttentionHead: concatenated maps, 1x1 conv + GroupNorm + ReLU, one logit per class."""

from __future__ import annotations

import pytest
import torch

from clouds.modeling.heads.attention_head import AttentionHead
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def test_shapes_names_and_config() -> None:
    cfg = tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.HIDDEN_DIM", "32"])
    shape = {f"vfm{i}": ShapeSpec(channels=16, stride=16) for i in range(4)}
    head = AttentionHead.from_config(cfg, shape).eval()
    assert head.fusion_conv.conv.in_channels == 64
    assert {"fusion_conv.conv.weight", "fusion_conv.gn.weight", "conv_seg.bias"} <= set(
        head.state_dict()
    )
    assert head({k: torch.randn(2, 16, 3, 4) for k in shape}).shape == (2, 5, 3, 4)
    with pytest.raises(ValueError, match="one width"):
        AttentionHead.from_config(cfg, {"a": ShapeSpec(16, 16), "b": ShapeSpec(32, 16)})
