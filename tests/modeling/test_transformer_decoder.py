import math

import pytest
import torch

from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    masked_attention_mask,
)
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine
from tests.modeling.head_utils import text_classifier, tiny_head_cfg


def _decoder(**overrides) -> MultiScaleMaskedTransformerDecoder:
    cfg = tiny_head_cfg()
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    return TRANSFORMER_DECODER_REGISTRY.get(name).from_config(cfg, in_channels=24, **overrides)


def _inputs(batch: int = 2):
    scales = [
        torch.randn(batch, 24, 2, 3),
        torch.randn(batch, 24, 4, 6),
        torch.randn(batch, 24, 8, 12),
    ]
    return scales, torch.randn(batch, 32, 16, 24)


def test_output_shapes_and_deep_supervision_count():
    decoder = _decoder()
    assert decoder.num_layers == 3  # DEC_LAYERS 4 -> 3 layers (Mask2Former convention)
    scales, mask_features = _inputs()
    out = decoder(scales, mask_features, text_classifier(5))
    assert out["pred_logits"].shape == (2, 6, 6)
    assert out["pred_masks"].shape == (2, 6, 16, 24)
    assert len(out["aux_outputs"]) == decoder.num_layers
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 6, 6)
        assert aux["pred_masks"].shape == (2, 6, 16, 24)


def test_class_set_can_change_at_test_time():
    decoder = _decoder().eval()
    scales, mask_features = _inputs()
    classes = text_classifier(7)
    with torch.no_grad():
        full = decoder(scales, mask_features, classes)
        subset = decoder(scales, mask_features, classes[[4, 1]])
    assert subset["pred_logits"].shape == (2, 6, 3)
    # Each class column depends only on its own embedding; the void column stays the same.
    torch.testing.assert_close(subset["pred_logits"], full["pred_logits"][..., [4, 1, 7]])
    torch.testing.assert_close(subset["pred_masks"], full["pred_masks"])


def test_logits_are_scaled_cosine_similarities():
    decoder = _decoder()
    assert decoder.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    scales, mask_features = _inputs()
    logits = decoder(scales, mask_features, text_classifier(5))["pred_logits"]
    assert logits.abs().max() <= 1 / 0.07 + 1e-4
    with torch.no_grad():
        decoder.logit_scale.fill_(10.0)  # exp(10) is clamped to 100
    logits = decoder(scales, mask_features, text_classifier(5))["pred_logits"]
    assert logits.abs().max() <= 100.0 + 1e-3
    assert logits.abs().max() > 1 / 0.07


def test_gradients_reach_queries_void_and_scale():
    decoder = _decoder()
    scales, mask_features = _inputs()
    out = decoder(scales, mask_features, text_classifier(3))
    loss = out["pred_logits"].logsumexp(-1).mean() + out["pred_masks"].sigmoid().mean()
    loss = loss + sum(a["pred_masks"].sigmoid().mean() for a in out["aux_outputs"])
    loss.backward()
    for name in ["query_feat.weight", "query_embed.weight", "void_embedding", "logit_scale"]:
        grad = dict(decoder.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_attention_mask_blocks_background_and_unblocks_empty_queries():
    logits = torch.full((1, 3, 4, 4), -5.0)
    logits[0, 0, :2, :2] = 5.0  # query 0: top-left quarter
    logits[0, 1] = 5.0  # query 1: everything; query 2: nothing
    mask = masked_attention_mask(logits, (2, 2), num_heads=2)
    assert mask.shape == (2, 3, 4) and mask.dtype == torch.bool
    expected = torch.tensor([[False, True, True, True], [False] * 4, [False] * 4])
    assert torch.equal(mask[0], expected)
    assert torch.equal(mask[1], expected)


def test_without_mask_classification_only_masks_are_predicted():
    decoder = _decoder(mask_classification=False)
    scales, mask_features = _inputs(batch=1)
    out = decoder(scales, mask_features)
    assert "pred_logits" not in out and out["pred_masks"].shape == (1, 6, 16, 24)
    with pytest.raises(ValueError, match="text_classifier"):
        _decoder()(scales, mask_features)


def test_position_embedding_layout():
    pe = PositionEmbeddingSine(num_pos_feats=4, normalize=True)
    pos = pe(torch.zeros(2, 1, 3, 5))
    assert pos.shape == (2, 8, 3, 5)
    # Channels 0..3 vary along y only, 4..7 along x only; channel 0 is sin(2 pi (y+1) / H).
    assert torch.allclose(pos[:, :4], pos[:, :4, :, :1].expand(-1, -1, -1, 5))
    assert torch.allclose(pos[:, 4:], pos[:, 4:, :1, :].expand(-1, -1, 3, -1))
    y = torch.arange(1, 4, dtype=torch.float32) / 3 * 2 * math.pi
    torch.testing.assert_close(pos[0, 0, :, 0], y.sin(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pos[0, 1, :, 0], y.cos(), atol=1e-5, rtol=1e-5)


def test_too_few_decoder_layers_is_a_config_error():
    cfg = tiny_head_cfg()
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = 1
    with pytest.raises(ValueError, match="DEC_LAYERS"):
        MultiScaleMaskedTransformerDecoder.from_config(cfg, in_channels=24)
