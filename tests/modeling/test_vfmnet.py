"""VFMNet light head: stride-16 maps in, stride-4 logits out; every feature map is used."""

from __future__ import annotations

import pytest
import torch

from clouds.modeling.heads.vfmnet import VFMNet
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

SHAPE = {f"vfm{i}": ShapeSpec(channels=16, stride=16) for i in range(4)}


def _features(batch: int = 2, h: int = 3, w: int = 5) -> list[torch.Tensor]:
    return [torch.randn(batch, 16, h, w, requires_grad=True) for _ in range(4)]


def test_logits_at_stride_4() -> None:
    head = VFMNet.from_config(tiny_vfm_cfg(), SHAPE)
    logits = head(_features())
    assert logits.shape == (2, 5, 12, 20)


def test_every_map_and_parameter_gets_gradients() -> None:
    head = VFMNet.from_config(tiny_vfm_cfg(), SHAPE)
    features = _features()
    head(features).square().mean().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features)
    assert all(p.grad is not None for p in head.parameters())


def test_structure() -> None:
    head = VFMNet(in_channels=16, num_features=4, hidden_dim=32, num_classes=7)
    assert head.fuse[0].in_channels == 64 and head.fuse[0].kernel_size == (1, 1)
    assert isinstance(head.fuse[1], torch.nn.GroupNorm)
    transposed = [m for m in head.upsample if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.stride for m in transposed] == [(2, 2), (2, 2)]
    assert head.classifier.out_channels == 7 and head.classifier.kernel_size == (1, 1)


def test_rejects_features_not_at_stride_16() -> None:
    shape = dict(SHAPE, vfm3=ShapeSpec(channels=16, stride=32))
    with pytest.raises(ValueError, match="stride-16"):
        VFMNet.from_config(tiny_vfm_cfg(), shape)
