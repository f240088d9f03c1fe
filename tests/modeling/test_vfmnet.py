"""VFMNet light head = the original's LinearHead (+ Dropout2d and 1x1 classifier).

Parity: ``heads.pt`` holds the original LinearHead's output (in_channels 4 x 32, channels 8,
19 classes, GN(32), eval mode, weights from ``fill_state(seed 1)``) for fixed features (2, 32,
4, 6) x 4, and its state_dict key names/shapes; see tests/modeling/dgvfm_heads_utils.py.
"""

from __future__ import annotations

import pytest
import torch

from clouds.modeling.heads.vfmnet import VFMNet
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.dgvfm_heads_utils import fill_state, load_fixture
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

NAMES = [f"vfm{i}" for i in range(4)]
SHAPE = {n: ShapeSpec(channels=32, stride=16) for n in NAMES}


def _head() -> VFMNet:
    return VFMNet(in_features=NAMES, in_channels=32, num_classes=19)


def test_keys_and_output_equal_the_originals_linear_head() -> None:
    fixture = load_fixture("heads.pt")
    head = _head()
    assert {k: list(v.shape) for k, v in head.state_dict().items()} == fixture["linear_keys"]
    fill_state(head, 1)
    out = head.eval()(dict(zip(NAMES, fixture["features"])))
    torch.testing.assert_close(out, fixture["linear_out"], rtol=1e-5, atol=1e-5)


def test_features_are_taken_by_name_not_order() -> None:
    fixture = load_fixture("heads.pt")
    head = _head()
    fill_state(head, 1)
    shuffled = {n: f for n, f in reversed(list(zip(NAMES, fixture["features"])))}
    torch.testing.assert_close(head.eval()(shuffled), fixture["linear_out"], rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="vfm3"):
        head({n: f for n, f in zip(NAMES[:3], fixture["features"])})


def test_built_from_the_registry_at_stride_4() -> None:
    head = VFM_HEAD_REGISTRY.get("VFMNet").from_config(tiny_vfm_cfg(), SHAPE)
    features = {n: torch.randn(2, 32, 3, 5, requires_grad=True) for n in NAMES}
    logits = head(features)
    assert logits.shape == (2, 5, 12, 20)
    logits.square().mean().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features.values())


def test_rejects_features_not_at_stride_16() -> None:
    shape = dict(SHAPE, vfm3=ShapeSpec(channels=32, stride=32))
    with pytest.raises(ValueError, match="stride-16"):
        VFMNet.from_config(tiny_vfm_cfg(), shape)
