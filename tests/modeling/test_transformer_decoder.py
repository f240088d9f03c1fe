"""Both original decoders: shapes, class heads, and parity with the original CLOUDS.

The parity tests read tests/fixtures/clouds_model/ (see tests/modeling/original_parity.py for how
the original code produced them): the decoders' outputs for the same backbone features and
weights must equal the original's.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from clouds.modeling import build_model
from clouds.modeling.checkpoint import load_complete_state_dict
from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    OriginalMultiScaleMaskedTransformerDecoder,
    grouped_classification_logits,
    mask_pool,
    masked_attention_mask,
)
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine
from tests.modeling.head_utils import tiny_head_cfg
from tests.modeling.original_parity import (
    CITYSCAPES_CLASSES,
    VARIANTS,
    load_fixture,
    original_state_dict,
    parity_config,
)

TEXT = "MultiScaleMaskedTransformerDecoder"
LINEAR = "OriginalMultiScaleMaskedTransformerDecoder"


def _decoder(name: str = TEXT):
    cfg = tiny_head_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 5
    return TRANSFORMER_DECODER_REGISTRY.get(name).from_config(cfg, in_channels=24)


def _inputs(batch: int = 2):
    scales = [
        torch.randn(batch, 24, 2, 3),
        torch.randn(batch, 24, 4, 6),
        torch.randn(batch, 24, 8, 12),
    ]
    return scales, torch.randn(batch, 32, 16, 24)


def _classifier(num_templates: list[int], embed_dim: int = 16) -> torch.Tensor:
    """(sum + 1, E) random normalised synonym rows then void."""
    return F.normalize(torch.randn(sum(num_templates) + 1, embed_dim), dim=-1)


@pytest.mark.parametrize("name", [TEXT, LINEAR])
def test_output_shapes_and_deep_supervision_count(name):
    decoder = _decoder(name)
    assert decoder.num_layers == 3  # DEC_LAYERS 4 -> 3 layers (Mask2Former convention)
    scales, mask_features = _inputs()
    num_templates = [2, 1, 1, 3, 1]
    out = decoder(scales, mask_features, _classifier(num_templates), num_templates)
    assert out["pred_logits"].shape == (2, 6, 6)
    assert out["pred_masks"].shape == (2, 6, 16, 24)
    assert len(out["aux_outputs"]) == decoder.num_layers
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 6, 6)
        assert aux["pred_masks"].shape == (2, 6, 16, 24)


def test_linear_head_needs_no_text_and_predicts_k_plus_one():
    decoder = _decoder(LINEAR)
    assert not decoder.uses_text_classifier
    assert decoder.class_embed.out_features == 6
    scales, mask_features = _inputs(batch=1)
    assert decoder(scales, mask_features)["pred_logits"].shape == (1, 6, 6)


def test_text_head_needs_its_classifier():
    scales, mask_features = _inputs(batch=1)
    with pytest.raises(ValueError, match="text_classifier"):
        _decoder(TEXT)(scales, mask_features)


def test_class_scores_are_the_best_synonym():
    embeddings = torch.randn(1, 4, 8)
    classifier = F.normalize(torch.randn(6, 8), dim=-1)  # classes of 3, 1, 1 synonyms + void
    logits = grouped_classification_logits(embeddings, classifier, torch.tensor(10.0), [3, 1, 1])
    cosines = 10.0 * F.normalize(embeddings, dim=-1) @ classifier.T
    assert logits.shape == (1, 4, 4)
    torch.testing.assert_close(logits[..., 0], cosines[..., :3].max(-1).values)
    torch.testing.assert_close(logits[..., 1:], cosines[..., 3:])
    with pytest.raises(ValueError, match="sum\\(group_sizes\\) \\+ 1"):
        grouped_classification_logits(embeddings, classifier, torch.tensor(1.0), [3, 1])


def test_text_head_logit_scale_is_clamped_at_100():
    decoder = _decoder(TEXT)
    assert decoder.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    scales, mask_features = _inputs()
    with torch.no_grad():
        decoder.logit_scale.fill_(10.0)  # exp(10) is clamped to 100
        logits = decoder(scales, mask_features, _classifier([1] * 5), [1] * 5)["pred_logits"]
    assert 1 / 0.07 < logits.abs().max() <= 100.0 + 1e-3


def test_mask_pool_averages_inside_binarised_masks():
    features = torch.arange(8.0).view(1, 2, 2, 2)
    masks = torch.tensor([[[[1.0, -1.0], [1.0, -1.0]], [[-1.0] * 2] * 2]])
    pooled = mask_pool(features, masks)  # second mask is empty -> zeros
    torch.testing.assert_close(pooled, torch.tensor([[[1.0, 5.0], [0.0, 0.0]]]))


def test_gradients_reach_queries_pooling_projection_and_scale():
    decoder = _decoder(TEXT)
    scales, mask_features = _inputs()
    out = decoder(scales, mask_features, _classifier([1, 2, 1, 1, 1]), [1, 2, 1, 1, 1])
    loss = out["pred_logits"].logsumexp(-1).mean() + out["pred_masks"].sigmoid().mean()
    loss.backward()
    names = ["query_feat.weight", "_mask_pooling_proj.1.weight", "logit_scale"]
    for name in names:
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


@pytest.mark.parametrize(
    "cls", [MultiScaleMaskedTransformerDecoder, OriginalMultiScaleMaskedTransformerDecoder]
)
def test_too_few_decoder_layers_is_a_config_error(cls):
    cfg = tiny_head_cfg()
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = 1
    with pytest.raises(ValueError, match="DEC_LAYERS"):
        cls.from_config(cfg, in_channels=24)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_head_outputs_equal_the_originals(variant):
    """Pixel decoder + decoder on the padded fixture image's backbone features, with the
    original's weights: logits and masks as the original computed them."""
    fixture = load_fixture(variant)
    model = build_model(parity_config(variant)).eval()
    load_complete_state_dict(model, original_state_dict(variant))
    padded = torch.zeros(1, 3, 32, 64)
    padded[0, :, :30, :40] = model.normalize(fixture["image"])
    with torch.no_grad():
        features = model.backbone(padded)
        for name, means in fixture["feature_means"].items():
            torch.testing.assert_close(features[name].mean(dim=(0, 2, 3)), means)
        text = ()
        if model.uses_text:
            classifier, num_templates = model.classifier(CITYSCAPES_CLASSES)
            assert num_templates == fixture["num_templates"].tolist()
            text = (classifier, num_templates)
        out = model.sem_seg_head(features, *text)
    torch.testing.assert_close(out["pred_logits"], fixture["pred_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["pred_masks"], fixture["pred_masks"], atol=1e-5, rtol=0)
    aux = out["aux_outputs"][0]["pred_logits"]
    torch.testing.assert_close(aux, fixture["aux_pred_logits_0"], atol=1e-5, rtol=0)
