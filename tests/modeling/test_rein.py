"""Rein on the VFM backbones (clouds.modeling.backbone.vfm.rein): what trains, what stays frozen,
the token-to-query link, the multi-stride maps, and the mistakes refused by name."""

from __future__ import annotations

import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.vfm_test_utils import FAMILIES, tiny_vfm_cfg

REIN = ("MODEL.LORA.ENABLED", "False", "MODEL.REIN.ENABLED", "True",
        "MODEL.REIN.TOKEN_LENGTH", "5", "MODEL.REIN.QUERY_DIMS", "8")  # fmt: skip


def _backbone(family: str = "DINOv2", *extra: str) -> VFMBackbone:
    cfg = tiny_vfm_cfg(family, [*REIN, *extra])
    return BACKBONE_REGISTRY.get(family).from_config(cfg)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_only_rein_trains_and_the_vit_stays_in_eval_mode(family: str) -> None:
    backbone = _backbone(family, "MODEL.REIN.TYPE", "LoRAReins")
    trainable = {k for k, p in backbone.named_parameters() if p.requires_grad}
    pyramid = {k for k in trainable if k.startswith("fpn")}
    assert trainable - pyramid == {
        f"reins.{name}"
        for name in (
            "scale", "learnable_tokens_a", "learnable_tokens_b", "mlp_token2feat.weight",
            "mlp_token2feat.bias", "mlp_delta_f.weight", "mlp_delta_f.bias",
            "transform.weight", "transform.bias", "merge.weight", "merge.bias",
        )
    }  # fmt: skip
    assert bool(pyramid) == (family == "CLIPViT")  # the original's Rein CLIP trains its pyramid
    backbone.train()
    assert not backbone.vit.training and backbone.reins.training
    images = torch.randn(1, 3, 64, 64)
    features = backbone(images)
    loss = sum(f.sum() for f in features.values()) + backbone.link_queries().sum()
    loss.backward()
    assert all(p.grad is None for p in backbone.vit.parameters())
    assert backbone.reins.learnable_tokens_a.grad is not None


def test_rein_changes_the_features_of_its_blocks_only() -> None:
    """Scale 0 leaves the frozen ViT's maps; the SAM backbone refines its global blocks."""
    backbone = _backbone("SAMViT")
    assert backbone.rein_layers == {1: 0, 2: 1, 3: 2, 5: 3}
    assert backbone.reins.learnable_tokens.shape[0] == 4
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        refined = backbone(images)
        backbone.reins.scale.zero_()
        plain = backbone(images)
    for name in refined:
        assert not torch.allclose(refined[name], plain[name])
    backbone.rein_layers = {}
    with torch.no_grad():
        frozen = backbone(images)
    for name in plain:
        torch.testing.assert_close(plain[name], frozen[name])


def test_link_queries_follow_the_tokens() -> None:
    backbone = _backbone()
    queries = backbone.link_queries()
    assert queries.shape == (5, 8)
    with torch.no_grad():
        backbone.reins.learnable_tokens[-1] += 1.0
    assert not torch.allclose(backbone.link_queries(), queries)
    assert _backbone("DINOv2", "MODEL.REIN.LINK_TOKEN_TO_QUERY", "False").link_queries() is None
    plain = BACKBONE_REGISTRY.get("DINOv2").from_config(tiny_vfm_cfg("DINOv2"))
    assert plain.link_queries() is None


def test_zero_mlp_delta_f_starts_as_the_frozen_vit() -> None:
    backbone = _backbone("DINOv2", "MODEL.REIN.ZERO_MLP_DELTA_F", "True")
    assert backbone.reins.scale == 1.0
    images = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        refined = backbone(images)
        backbone.rein_layers = {}
        frozen = backbone(images)
    for name in refined:
        torch.testing.assert_close(refined[name], frozen[name])


def test_resized_features_have_strides_4_to_32() -> None:
    backbone = _backbone("EVA02", "MODEL.VFM.RESIZE_FEATURES", "True")
    strides = [s.stride for s in backbone.output_shape().values()]
    assert strides == [4, 8, 16, 32]
    features = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in features.values()] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_rein_and_lora_train_together() -> None:
    backbone = _backbone("DINOv2", "MODEL.LORA.ENABLED", "True")
    trainable = {k for k, p in backbone.named_parameters() if p.requires_grad}
    assert any(".lora_A." in k for k in trainable) and "reins.scale" in trainable


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("MODEL.REIN.TYPE", "Adapter"), "MODEL.REIN.TYPE"),
        (("MODEL.REIN.TOKEN_LENGTH", "1"), "MODEL.REIN.TOKEN_LENGTH"),
        (("MODEL.REIN.LAYERS", "[0, 9]"), "MODEL.REIN.LAYERS"),
        (("MODEL.BACKBONE.FREEZE", "False"), "MODEL.BACKBONE.FREEZE"),
    ],
)
def test_bad_rein_settings_are_refused_by_name(extra: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _backbone("DINOv2", *extra)
