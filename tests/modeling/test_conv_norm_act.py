"""ConvNormAct / DepthwiseSeparableConv: mmcv ConvModule's layout, names and init."""

from __future__ import annotations

import pytest
import torch

from clouds.modeling.heads.conv_norm_act import ConvNormAct, DepthwiseSeparableConv, classifier


def test_norm_names_bias_and_padding() -> None:
    gn = ConvNormAct(4, 32, 3, norm="GN", dilation=2)
    assert gn.conv.bias is None and isinstance(gn.gn, torch.nn.GroupNorm)
    assert gn(torch.randn(1, 4, 7, 9)).shape == (1, 32, 7, 9)
    bn = ConvNormAct(4, 8, norm="BN", activation=False)
    assert isinstance(bn.bn, torch.nn.BatchNorm2d)
    assert (bn.eval()(-torch.ones(1, 4, 2, 2)) < 0).any()  # no ReLU
    plain = ConvNormAct(4, 8, norm=None)
    assert plain.conv.bias is not None and set(plain.state_dict()) == {"conv.weight", "conv.bias"}
    with pytest.raises(ValueError, match="'LN' is not one of GN, BN"):
        ConvNormAct(4, 8, norm="LN")


def test_depthwise_separable_and_classifier() -> None:
    block = DepthwiseSeparableConv(8, 16, 3, dilation=6, norm="BN")
    assert block.depthwise_conv.conv.groups == 8 and block.depthwise_conv.conv.padding == (6, 6)
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    conv = classifier(16, 3)
    assert float(conv.bias.detach().abs().sum()) == 0.0 and float(conv.weight.detach().std()) < 0.05
