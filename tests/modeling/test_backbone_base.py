"""Every registered backbone meets the Backbone contract (clouds.modeling.backbone.base) that
the meta-architectures rely on: output shapes, size divisibility, frozen, text encoder."""

from __future__ import annotations

import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling import build_model  # noqa: F401  (imports register every backbone)
from clouds.modeling.backbone import CLIP
from clouds.modeling.backbone.base import Backbone
from clouds.modeling.meta_arch.base import build_backbone
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def test_every_registered_backbone_is_a_backbone() -> None:
    registered = dict(BACKBONE_REGISTRY)
    assert {"CLIP", "DINOv2", "EVA02", "CLIPViT", "SAMViT"} <= set(registered)
    for name, cls in registered.items():
        if name.endswith("TestBackbone"):  # test doubles of the refusal below
            continue
        assert issubclass(cls, Backbone), name


def test_clip_embeds_text_and_vfms_do_not() -> None:
    assert CLIP.has_text_encoder and CLIP.size_divisibility == 32
    backbone = build_backbone(tiny_vfm_cfg("DINOv2"))
    assert not backbone.has_text_encoder and backbone.frozen
    assert backbone.size_divisibility == 16
    with pytest.raises(NotImplementedError, match="DINOv2 has no text encoder"):
        backbone.encode_text(["road"])
    features = backbone(torch.zeros(1, 3, 32, 48))
    assert {name: (f.shape[1], 32 // f.shape[2]) for name, f in features.items()} == {
        name: (s.channels, s.stride) for name, s in backbone.output_shape().items()
    }


def test_unfrozen_config_reaches_the_contract() -> None:
    backbone = build_backbone(tiny_vfm_cfg("DINOv2", ["MODEL.BACKBONE.FREEZE", "False"]))
    assert not backbone.frozen


def test_a_class_outside_the_contract_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class PlainTestBackbone(torch.nn.Module):
        @classmethod
        def from_config(cls, cfg):
            return cls()

    monkeypatch.setitem(BACKBONE_REGISTRY._obj_map, "PlainTestBackbone", PlainTestBackbone)
    cfg = tiny_vfm_cfg("DINOv2", ["MODEL.BACKBONE.NAME", "PlainTestBackbone"])
    with pytest.raises(ConfigError, match="PlainTestBackbone.*backbone contract"):
        build_backbone(cfg)
