"""CLIP backbone: shared backbone tests, weight loading from a path, config folders, errors."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from torch import nn

from clouds.config import ConfigError, load_config
from clouds.modeling.backbone.clip import CLIP, PACKAGE_MODEL_CONFIG_DIR
from tests.modeling.backbone_test_base import BackboneTestBase
from tests.modeling.model_utils import REPO, toy_config

RESNET = ["MODEL.CLOUDS.CLIP_MODEL_NAME", "clouds_tiny_resnet", "MODEL.CLOUDS.EMBED_DIM", "32"]


@pytest.fixture(scope="module")
def tiny_convnext() -> CLIP:
    return CLIP.from_config(toy_config())


@pytest.fixture(scope="module")
def tiny_resnet() -> CLIP:
    return CLIP.from_config(toy_config(RESNET))


class TestTinyConvNeXtCLIP(BackboneTestBase):
    def build_backbone(self) -> nn.Module:
        return CLIP.from_config(toy_config())

    def frozen_modules(self, backbone: nn.Module) -> list[nn.Module]:
        return list(backbone.clip_model.modules())


class TestTinyResNetCLIP(BackboneTestBase):
    def build_backbone(self) -> nn.Module:
        return CLIP.from_config(toy_config(RESNET))

    def frozen_modules(self, backbone: nn.Module) -> list[nn.Module]:
        return list(backbone.clip_model.modules())


def test_loading_weights_from_a_local_checkpoint(tiny_convnext: CLIP, tmp_path: Path) -> None:
    source = tiny_convnext
    path = tmp_path / "tiny_clip.pt"
    torch.save(source.clip_model.state_dict(), path)
    # Built after the source, random init would give other weights: equal outputs mean loaded.
    loaded = CLIP.from_config(toy_config(["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", str(path)]))
    images = torch.randn(1, 3, 64, 64)
    want, got = source(images), loaded(images)
    for name in want:
        torch.testing.assert_close(got[name], want[name])
    texts = ["a photo of a car.", "a photo of the sky."]
    torch.testing.assert_close(loaded.encode_text(texts), source.encode_text(texts))


def test_model_config_folder_is_added(tmp_path: Path) -> None:
    config = json.loads((PACKAGE_MODEL_CONFIG_DIR / "clouds_tiny_convnext.json").read_text())
    config["embed_dim"] = 48
    (tmp_path / "my_tiny_clip.json").write_text(json.dumps(config))
    cfg = toy_config(
        [
            "MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR",
            str(tmp_path),
            "MODEL.CLOUDS.CLIP_MODEL_NAME",
            "my_tiny_clip",
            "MODEL.CLOUDS.EMBED_DIM",
            "48",
        ]
    )
    backbone = CLIP.from_config(cfg)
    assert backbone.embed_dim == 48
    assert backbone.encode_text(["a photo of a road."]).shape == (1, 48)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["MODEL.CLOUDS.CLIP_MODEL_NAME", "no_such_clip"], "CLIP_MODEL_NAME"),
        (["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "/no/such/file.pt"], "CLIP_PRETRAINED_WEIGHTS"),
        (["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "no_such_tag"], "CLIP_PRETRAINED_WEIGHTS"),
        (["MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR", "/no/such/folder"], "CLIP_MODEL_CONFIG_DIR"),
        (["MODEL.CLOUDS.EMBED_DIM", "768"], "EMBED_DIM"),
    ],
)
def test_bad_settings_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        CLIP.from_config(toy_config(overrides))


def test_convnext_whole_image_mask_embedding_reproduces_encode_image(tiny_convnext: CLIP) -> None:
    backbone = tiny_convnext
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        dense = backbone(images)["clip_vis_dense"]
        embedding = backbone.mask_embeddings(dense, torch.ones(2, 1, 64, 96))[:, 0]
        reference = backbone.clip_model.encode_image(images)
    torch.testing.assert_close(embedding, reference, rtol=1e-4, atol=1e-5)


def test_resnet_mask_embedding_attends_inside_the_mask_only(tiny_resnet: CLIP) -> None:
    """The original's masked attention pool: the query (global mean + class position) attends
    to the mask's pixels only. Exact numbers: tests/utils/test_predictor_original_parity.py."""
    backbone = tiny_resnet
    with torch.no_grad():
        dense = backbone(torch.randn(1, 3, 64, 96))["clip_vis_dense"]  # (1, C, 2, 3)
        masks = torch.full((1, 2, 2, 3), -1.0)
        masks[0, 0, :, 0] = 1.0  # left column
        masks[0, 1, :, 0] = 2.0  # the same pixels
        embeddings = backbone.mask_embeddings(dense, masks)
        changed = dense.clone()
        changed[..., 1], changed[..., 2] = dense[..., 2], dense[..., 1]  # same mean, other keys
        moved = backbone.mask_embeddings(changed, masks)
    assert embeddings.shape == (1, 2, backbone.embed_dim)
    torch.testing.assert_close(embeddings[:, 0], embeddings[:, 1])
    torch.testing.assert_close(moved[:, 0], embeddings[:, 0])


def test_unfrozen_backbone_trains_the_image_tower_only() -> None:
    backbone = CLIP.from_config(toy_config(["MODEL.BACKBONE.FREEZE", "False"]))
    for name, parameter in backbone.clip_model.named_parameters():
        assert parameter.requires_grad == name.startswith("visual."), name
    backbone.train()
    assert backbone.clip_model.visual.training
    assert not backbone.clip_model.transformer.training
    assert backbone(torch.randn(1, 3, 64, 64))["res5"].requires_grad


def test_text_embeddings_are_normalised(tiny_convnext: CLIP) -> None:
    embeddings = tiny_convnext.encode_text(["a photo of a car.", "a photo of a road.", "sky"])
    assert embeddings.shape == (3, 64)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "warmup").glob("*/*.yaml")))
def test_warmup_configs_match_their_clip_models(config: Path) -> None:
    cfg = load_config(str(config))
    model_config = open_clip.get_model_config(cfg.MODEL.CLOUDS.CLIP_MODEL_NAME)
    assert model_config is not None, cfg.MODEL.CLOUDS.CLIP_MODEL_NAME
    assert model_config["embed_dim"] == cfg.MODEL.CLOUDS.EMBED_DIM
    assert cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS in open_clip.list_pretrained_tags_by_model(
        cfg.MODEL.CLOUDS.CLIP_MODEL_NAME
    )


def test_unsupported_image_tower_is_rejected() -> None:
    clip_model = nn.Module()
    clip_model.visual = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="Linear"):
        CLIP(clip_model=clip_model, tokenizer=lambda texts: torch.zeros(len(texts), 4))
