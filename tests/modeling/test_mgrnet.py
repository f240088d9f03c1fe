"""MGRNet refinement head: shapes, use of the coarse logits, token masking, detached context."""

from __future__ import annotations

import torch

from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

SHAPE = {f"vfm{i}": ShapeSpec(channels=16, stride=16) for i in range(4)}


def _head(masked: bool = True) -> MGRNet:
    cfg = tiny_vfm_cfg(overrides=["MODEL.VFM_HEAD.REFINE_LAYERS", "2"])
    return MGRNet.from_config(cfg, SHAPE, masked=masked)


def _features(h: int = 4, w: int = 6) -> list[torch.Tensor]:
    return [torch.randn(2, 16, h, w) for _ in range(4)]


def test_logits_at_stride_4_for_any_context_size() -> None:
    head = _head().eval()
    for context_size in [(16, 24), (7, 9), (64, 96)]:
        out = head(_features(), torch.randn(2, 5, *context_size))
        assert out.shape == (2, 5, 16, 24)


def test_config_values() -> None:
    head = _head()
    assert len(head.blocks) == 2
    assert head.blocks[0].self_attn.num_heads == 4
    assert head.mask_ratio == 0.2
    assert _head(masked=False).mask_ratio == 0.0
    convs = [m for m in head.logit_embed if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (2, 2), (1, 1)]
    assert convs[-1].kernel_size == (1, 1)


def test_coarse_logits_change_the_output() -> None:
    head = _head().eval()
    features = _features()
    with torch.no_grad():
        a = head(features, torch.randn(2, 5, 16, 24))
        b = head(features, torch.randn(2, 5, 16, 24))
    assert not torch.allclose(a, b, atol=1e-5)


def test_context_is_detached_and_parameters_get_gradients() -> None:
    head = _head().train()
    context = torch.randn(2, 5, 16, 24, requires_grad=True)
    head(_features(), context).square().mean().backward()
    assert context.grad is None
    missing = [n for n, p in head.named_parameters() if p.grad is None]
    assert not missing, missing


def test_masks_a_fifth_of_the_tokens_in_training_only() -> None:
    head = _head()
    tokens = torch.randn(3, 40, 32)
    masked = head._mask_tokens(tokens)
    is_mask = (masked == head.mask_token).all(dim=-1)
    assert is_mask.sum(dim=1).tolist() == [8, 8, 8]
    torch.testing.assert_close(masked[~is_mask], tokens[~is_mask])

    # in eval no token is masked: the masked head equals its unmasked twin; in training
    # (dropout off) it differs
    features, context = _features(), torch.randn(2, 5, 16, 24)
    unmasked = _head(masked=False)
    unmasked.load_state_dict(head.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            head.eval()(features, context), unmasked.eval()(features, context)
        )
        _without_dropout(head.train())
        _without_dropout(unmasked.train())
        assert not torch.allclose(head(features, context), unmasked(features, context), atol=1e-5)
        torch.testing.assert_close(unmasked(features, context), unmasked.eval()(features, context))


def _without_dropout(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
