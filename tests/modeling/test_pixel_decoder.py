import pytest
import torch

from clouds.modeling.pixel_decoder.msdeformattn import (
    MSDeformAttnEncoder,
    MSDeformAttnPixelDecoder,
    group_norm,
)
from clouds.modeling.registry import PIXEL_DECODER_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.head_utils import TINY_SHAPES, fake_features, tiny_head_cfg


def _decoder() -> MSDeformAttnPixelDecoder:
    cfg = tiny_head_cfg()
    return PIXEL_DECODER_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME).from_config(
        cfg, TINY_SHAPES
    )


def test_output_shapes_for_a_non_square_input():
    decoder = _decoder()
    features = fake_features(batch=2, height=64, width=96)
    mask_features, encoder_out, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (2, 32, 16, 24)
    assert encoder_out.shape == (2, 32, 2, 3)
    assert [tuple(f.shape) for f in multi_scale] == [(2, 32, 2, 3), (2, 32, 4, 6), (2, 32, 8, 12)]
    assert decoder.transformer_in_features == ["res5", "res4", "res3"]
    assert decoder.fpn_features == ["res2"]


def test_gradients_reach_every_level_and_parameter():
    decoder = _decoder()
    features = {k: v.requires_grad_() for k, v in fake_features(1, 32, 64).items()}
    mask_features, _, multi_scale = decoder.forward_features(features)
    (mask_features.square().mean() + sum(f.square().mean() for f in multi_scale)).backward()
    for name, feat in features.items():
        assert feat.grad is not None and feat.grad.abs().sum() > 0, name
    for name, param in decoder.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_group_norm_uses_fewer_groups_for_small_channel_counts():
    assert group_norm(256).num_groups == 32
    assert group_norm(24).num_groups == 8
    assert group_norm(6).num_groups == 2


def test_reference_points_are_pixel_centres_of_each_level():
    ref = MSDeformAttnEncoder.reference_points([(2, 4), (1, 2)], torch.device("cpu"))
    assert ref.shape == (1, 8 + 2, 2, 2)
    torch.testing.assert_close(ref[0, 0, 0], torch.tensor([0.125, 0.25]))
    torch.testing.assert_close(ref[0, 8 + 1, 1], torch.tensor([0.75, 0.5]))


def test_missing_backbone_feature_is_an_error_naming_it():
    cfg = tiny_head_cfg()
    shapes = {k: v for k, v in TINY_SHAPES.items() if k != "res4"}
    with pytest.raises(ValueError, match="res4"):
        MSDeformAttnPixelDecoder.from_config(cfg, shapes)
    decoder = _decoder()
    features = fake_features(1, 32, 32)
    del features["res2"]
    with pytest.raises(KeyError, match="res2"):
        decoder.forward_features(features)


def test_bad_norm_is_rejected():
    cfg = tiny_head_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    with pytest.raises(ValueError, match="NORM"):
        MSDeformAttnPixelDecoder.from_config(cfg, {**TINY_SHAPES, "res2": ShapeSpec(8, 4)})
