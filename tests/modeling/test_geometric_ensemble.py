"""Geometric ensemble and mask pooling, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from clouds.modeling.geometric_ensemble import GeometricEnsemble, geometric_ensemble_probs
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import mask_pool


def _logits(probs: list[float]) -> torch.Tensor:
    return torch.tensor(probs).log()[None, None]


def test_hand_computed_example() -> None:
    # Decoder: car 0.6, bicycle 0.2, void 0.2 -> without void: car 0.75, bicycle 0.25.
    # CLIP: car 0.5, bicycle 0.5. "car" is seen (alpha 0.5), "bicycle" unseen (beta 1.0).
    probs = geometric_ensemble_probs(
        _logits([0.6, 0.2, 0.2]),
        _logits([0.5, 0.5]),
        torch.tensor([True, False]),
        alpha=0.5,
        beta=1.0,
    )[0, 0]
    car = math.sqrt(0.75) * math.sqrt(0.5)  # 0.75^(1-0.5) * 0.5^0.5
    bicycle = 0.25**0.0 * 0.5**1.0  # 0.25^(1-1) * 0.5^1
    total = car + bicycle
    expected = torch.tensor([0.8 * car / total, 0.8 * bicycle / total, 0.2])
    torch.testing.assert_close(probs, expected)
    assert probs.sum().item() == pytest.approx(1.0)


def test_zero_weights_keep_the_decoder_probabilities() -> None:
    logits = torch.randn(2, 5, 4)
    probs = geometric_ensemble_probs(
        logits, torch.randn(2, 5, 3), torch.tensor([True, False, True]), alpha=0.0, beta=0.0
    )
    torch.testing.assert_close(probs, logits.softmax(dim=-1))


def test_full_weights_take_clip_probabilities_scaled_by_non_void() -> None:
    logits, clip_logits = torch.randn(1, 3, 4), torch.randn(1, 3, 3)
    probs = geometric_ensemble_probs(
        logits, clip_logits, torch.tensor([True, True, False]), alpha=1.0, beta=1.0
    )
    void = logits.softmax(dim=-1)[..., -1:]
    torch.testing.assert_close(probs[..., :-1], clip_logits.softmax(dim=-1) * (1 - void))
    torch.testing.assert_close(probs[..., -1:], void)


def test_alpha_zero_beta_one_takes_seen_columns_from_decoder_and_unseen_from_clip() -> None:
    # alpha 0: a seen class keeps the decoder's probability; beta 1: an unseen one takes CLIP's.
    # The mixed row is then renormalised and scaled by the decoder's non-void probability.
    torch.manual_seed(0)
    logits, clip_logits = torch.randn(2, 3, 5), torch.randn(2, 3, 4)
    seen = torch.tensor([True, False, False, True])
    probs = geometric_ensemble_probs(logits, clip_logits, seen, alpha=0.0, beta=1.0)
    p_in = logits[..., :-1].softmax(dim=-1)
    p_out = clip_logits.softmax(dim=-1)
    mixed = torch.stack([p_in[..., 0], p_out[..., 1], p_out[..., 2], p_in[..., 3]], dim=-1)
    void = logits.softmax(dim=-1)[..., -1:]
    torch.testing.assert_close(probs[..., :-1], mixed / mixed.sum(-1, keepdim=True) * (1 - void))
    torch.testing.assert_close(probs[..., -1:], void)


def test_invalid_queries_keep_the_decoder_probabilities() -> None:
    logits, clip_logits = torch.randn(1, 2, 3), torch.randn(1, 2, 2)
    valid = torch.tensor([[True, False]])
    seen = torch.tensor([True, False])
    probs = geometric_ensemble_probs(logits, clip_logits, seen, alpha=0.4, beta=0.8, valid=valid)
    torch.testing.assert_close(probs[0, 1], logits.softmax(dim=-1)[0, 1])
    assert not torch.allclose(probs[0, 0], logits.softmax(dim=-1)[0, 0])


def test_mask_pool_by_hand() -> None:
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])[None]
    masks = torch.full((1, 3, 2, 2), -5.0)
    masks[0, 0, :, 0] = 5.0  # left column: (1 + 3) / 2, (10 + 30) / 2
    masks[0, 1, 1, 1] = 5.0  # one pixel: 4, 40
    pooled = mask_pool(features, masks)  # third mask is empty -> zeros
    torch.testing.assert_close(pooled, torch.tensor([[[2.0, 20.0], [4.0, 40.0], [0.0, 0.0]]]))


def test_mask_pool_resizes_masks_to_the_features() -> None:
    features = torch.arange(4.0).reshape(1, 1, 2, 2)
    masks = torch.full((1, 1, 8, 8), -1.0)
    masks[..., :4, :] = 1.0  # top half -> top row of the 2x2 map
    torch.testing.assert_close(mask_pool(features, masks), torch.tensor([[[0.5]]]))


class IdentityCLIP:
    logit_scale = torch.tensor(10.0)

    def mask_embeddings(self, dense: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        return mask_pool(dense, mask_logits)


def test_ensemble_classifies_pooled_features_with_clip_scale() -> None:
    features = torch.zeros(1, 2, 2, 2)
    features[0, 0, :, 0] = 1.0  # left column points along class 0
    features[0, 1, :, 1] = 1.0  # right column points along class 1
    masks = torch.full((1, 2, 2, 2), -5.0)
    masks[0, 0, :, 0] = 5.0
    masks[0, 1, :, 1] = 5.0
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.6, -0.8]])  # class 0, class 1, void
    class_logits = torch.zeros(1, 2, 3)
    ensemble = GeometricEnsemble(alpha=1.0, beta=1.0, ensemble_on_valid_mask=False)
    probs = ensemble(
        class_logits=class_logits,
        mask_logits=masks,
        dense_features=features,
        text_classifier=text,
        num_templates=[1, 1],
        seen=torch.tensor([True, True]),
        clip=IdentityCLIP(),
    )
    high = math.exp(10.0) / (math.exp(10.0) + 1.0)  # softmax of logits (10, 0)
    expected = torch.tensor([[high, 1 - high], [1 - high, high]]) * (2 / 3)
    torch.testing.assert_close(probs[0, :, :-1], expected)
    torch.testing.assert_close(probs[0, :, -1], torch.full((2,), 1 / 3))


def test_weights_outside_unit_interval_are_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        GeometricEnsemble(alpha=1.5, beta=0.8, ensemble_on_valid_mask=False)
