"""MGRNet refinement head = the original's VFMHead with its (Mask)TransformerDecoder.

Parity: ``heads.pt`` holds the original VFMHead's output (in_channels 4 x 32, channels /
query_dim 128, 2 heads x 16, depth 2, dropout 0.1, mask_ratio 0.2, 19 classes, eval mode,
weights from ``fill_state(seed 2)``) for fixed features (2, 32, 4, 6) x 4 and a (2, 19, 10, 13)
context: once with masking disabled (``mask_enable False``, as its ms_inference) and once with
masking on after ``torch.manual_seed(123)``; see tests/modeling/dgvfm_heads_utils.py.
"""

from __future__ import annotations

import pytest
import torch

from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.registry import VFM_HEAD_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.dgvfm_heads_utils import fill_state, load_fixture, tiny_mgrnet
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

NAMES = [f"vfm{i}" for i in range(4)]


def _head(mask_ratio: float | None = 0.2) -> MGRNet:
    return tiny_mgrnet(num_layers=2, mask_ratio=mask_ratio)


def test_keys_and_outputs_equal_the_originals_vfm_head() -> None:
    fixture = load_fixture("heads.pt")
    head = _head()
    assert {k: list(v.shape) for k, v in head.state_dict().items()} == fixture["vfmhead_keys"]
    fill_state(head, 2)
    head.eval()
    features = dict(zip(NAMES, fixture["features"]))
    with torch.no_grad():
        out = head(features, fixture["context"])
        torch.manual_seed(fixture["mask_seed"])
        masked = head(features, fixture["context"], mask=True)
    torch.testing.assert_close(out, fixture["vfmhead_out"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked, fixture["vfmhead_masked_out"], rtol=1e-5, atol=1e-5)


def test_unmasked_variant_has_no_mask_token_and_ignores_mask() -> None:
    head = _head(mask_ratio=None).eval()
    assert not any("mask_token" in k for k in head.state_dict())
    features = {n: torch.randn(1, 32, 2, 2) for n in NAMES}
    context = torch.randn(1, 19, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(head(features, context, mask=True), head(features, context))


def test_mask_keeps_tokens_with_probability_one_minus_ratio() -> None:
    decoder = _head().transformer_decoder
    x = torch.randn(4, 128, 32, 32)
    masked = decoder.mask_tokens(x)
    is_mask = (masked == decoder.mask_token).all(dim=1)
    assert 0.17 < is_mask.float().mean().item() < 0.23
    torch.testing.assert_close(
        masked.permute(0, 2, 3, 1)[~is_mask], x.permute(0, 2, 3, 1)[~is_mask]
    )


def test_built_from_the_registry_with_config_values() -> None:
    shape = {n: ShapeSpec(channels=32, stride=16) for n in NAMES}
    head = VFM_HEAD_REGISTRY.get("MGRNet").from_config(tiny_vfm_cfg(), shape, masked=True)
    assert head.transformer_decoder.mask_ratio == 0.2
    assert len(head.transformer_decoder.transformer_blocks) == 1
    features = {n: torch.randn(2, 32, 3, 5, requires_grad=True) for n in NAMES}
    out = head(features, torch.randn(2, 5, 7, 9), mask=True)
    assert out.shape == (2, 5, 3, 5)
    out.square().mean().backward()
    assert all(p.grad is not None for p in head.parameters())
    with pytest.raises(ValueError, match="multiple of 128"):
        MGRNet(in_features=NAMES, in_channels=32, num_classes=5, channels=96)
