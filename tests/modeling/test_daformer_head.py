"""DAFormerHead (context-aware ASPP fusion) and its HRDA scale-attention variant."""

from __future__ import annotations

import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling.heads.conv_norm_act import DepthwiseSeparableConv
from clouds.modeling.heads.daformer_head import DAFormerAttentionHead, DAFormerHead
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

SHAPE = {f"vfm{i}": ShapeSpec(channels=32, stride=16) for i in range(4)}


def _head(**kwargs: object) -> DAFormerHead:
    args = {"in_features": ["a", "b"], "in_channels": [8, 16], "embed_dim": 4, "channels": 32,
            "num_classes": 3}  # fmt: skip
    return DAFormerHead(**{**args, **kwargs})


def test_aspp_fusion_shapes_and_original_names() -> None:
    head = _head().eval()
    out = head({"a": torch.randn(2, 8, 6, 10), "b": torch.randn(2, 16, 3, 5)})
    assert out.shape == (2, 3, 6, 10)
    keys = set(head.state_dict())
    assert {"embed_layers.0.proj.weight", "embed_layers.1.proj.bias"} <= keys
    assert "fuse_layer.aspp_modules.0.bn.running_mean" in keys
    assert "fuse_layer.aspp_modules.3.depthwise_conv.conv.weight" in keys
    assert "fuse_layer.aspp_modules.3.pointwise_conv.bn.weight" in keys
    assert "fuse_layer.bottleneck.conv.weight" in keys
    assert isinstance(head.fuse_layer.aspp_modules[1], DepthwiseSeparableConv)
    depthwise = head.fuse_layer.aspp_modules[2].depthwise_conv.conv
    assert (depthwise.dilation, depthwise.groups, depthwise.kernel_size) == ((12, 12), 8, (3, 3))


def test_embedding_is_a_linear_layer_per_pixel() -> None:
    head = _head()
    x = torch.randn(1, 8, 3, 4)
    expected = torch.einsum("bchw,ec->behw", x, head.embed_layers["0"].proj.weight)
    expected = expected + head.embed_layers["0"].proj.bias[:, None, None]
    torch.testing.assert_close(head.embed_layers["0"](x), expected)


def test_conv_fusion_and_a_bad_fusion_or_norm() -> None:
    head = _head(fusion="conv").eval()
    assert {"fuse_layer.conv.weight", "fuse_layer.bn.weight"} <= set(head.state_dict())
    assert head({"a": torch.randn(1, 8, 4, 4), "b": torch.randn(1, 16, 4, 4)}).shape[1] == 3
    with pytest.raises(ConfigError, match="MODEL.DAFORMER.FUSION 'sum' is not one of aspp, conv"):
        _head(fusion="sum")
    with pytest.raises(ConfigError, match="MODEL.DAFORMER.NORM 'LN' is not one of GN, BN"):
        _head(norm="LN")


@pytest.mark.parametrize(("classwise", "outputs"), [(True, 5), (False, 1)])
def test_attention_variant_from_config(classwise: bool, outputs: int) -> None:
    cfg = tiny_vfm_cfg(
        "DINOv2",
        [
            "MODEL.DAFORMER.ATTENTION_EMBED_DIM",
            "32",
            "MODEL.HRDA.ATTENTION_CLASSWISE",
            str(classwise),
        ],
    )
    head = DAFormerAttentionHead.from_config(cfg, SHAPE).eval()
    assert head.fuse_layer.conv.kernel_size == (1, 1)
    assert head.embed_layers["0"].proj.out_features == 32
    assert head({k: torch.randn(1, 32, 2, 2) for k in SHAPE}).shape == (1, outputs, 2, 2)
