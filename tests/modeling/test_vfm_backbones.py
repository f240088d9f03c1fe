"""Every VFM backbone family (tiny, random, LoRA): the shared backbone tests plus VFM specifics,
and parity of the features with the original's backbones (fixtures: tests/modeling/dgvfm_fixtures.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clouds.modeling.backbone.vfm import EVA02, CLIPViT, DINOv2, SAMViT, VFMBackbone
from clouds.modeling.backbone.vfm.lora import lora_layers
from clouds.modeling.checkpoint import map_original_state_dict
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.backbone_test_base import BackboneTestBase
from tests.modeling.dgvfm_fixtures import CASES, fixture_cfg, fixture_image, original_record
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


class _VFMBackboneTests(BackboneTestBase):
    input_size = (48, 80)
    expects_trainable_parameters = True
    name: str = "DINOv2"

    def build_backbone(self) -> VFMBackbone:
        from clouds.modeling.registry import BACKBONE_REGISTRY

        return BACKBONE_REGISTRY.get(self.name).from_config(tiny_vfm_cfg(self.name))

    def frozen_modules(self, backbone: nn.Module) -> list[nn.Module]:
        return [m for n, m in backbone.vit.named_modules() if "lora_" not in n]

    def test_all_features_at_stride_16(self, backbone: VFMBackbone) -> None:
        shapes = backbone.output_shape()
        assert len(shapes) == 4
        assert {s.stride for s in shapes.values()} == {16}
        assert backbone.size_divisibility == 16

    def test_any_input_size(self, backbone: VFMBackbone) -> None:
        for size in [(32, 32), (64, 112)]:
            with torch.no_grad():
                features = backbone(torch.randn(1, 3, *size))
            assert all(f.shape[-2:] == (size[0] // 16, size[1] // 16) for f in features.values())

    def test_only_lora_trainable(self, backbone: VFMBackbone) -> None:
        trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
        assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
        expected = {f"vit.{name}" for name in lora_layers(backbone.vit)}
        assert {n.rsplit(".lora_", 1)[0] for n in trainable} == expected

    def test_lora_dropout_follows_train_mode(self, backbone: VFMBackbone) -> None:
        dropouts = [m for n, m in backbone.vit.named_modules() if n.endswith("lora_dropout")]
        assert dropouts
        backbone.train()
        try:
            assert all(m.training for m in dropouts)
            assert not backbone.vit.training
        finally:
            backbone.eval()
        assert not any(m.training for m in dropouts)

    def test_patch_kernel_runs_at_16(self, backbone: VFMBackbone) -> None:
        convs = [m for m in backbone.vit.modules() if isinstance(m, nn.Conv2d)]
        assert convs[0].kernel_size == (16, 16) and convs[0].stride == (16, 16)


class TestDINOv2(_VFMBackboneTests):
    name = "DINOv2"


class TestEVA02(_VFMBackboneTests):
    name = "EVA02"


class TestCLIPViT(_VFMBackboneTests):
    name = "CLIPViT"


class TestSAMViT(_VFMBackboneTests):
    name = "SAMViT"


def test_registered_classes() -> None:
    from clouds.modeling.registry import BACKBONE_REGISTRY

    for cls in (DINOv2, EVA02, CLIPViT, SAMViT):
        assert BACKBONE_REGISTRY.get(cls.__name__) is cls


def test_out_indices_validated() -> None:
    from clouds.config import ConfigError

    with pytest.raises(ConfigError, match="OUT_INDICES"):
        DINOv2.from_config(tiny_vfm_cfg("DINOv2", ["MODEL.VFM.OUT_INDICES", "[0, 1, 2, 9]"]))
    with pytest.raises(ConfigError, match="global-attention"):
        SAMViT.from_config(
            tiny_vfm_cfg(
                "SAMViT", ["MODEL.VFM.TINY", "False", "MODEL.VFM.OUT_INDICES", "[0, 1, 2, 3]"]
            )
        )


def test_sam_needs_a_checkpoint() -> None:
    from clouds.config import ConfigError

    cfg = tiny_vfm_cfg(
        "SAMViT", ["MODEL.VFM.TINY", "False", "MODEL.VFM.OUT_INDICES", "[7, 15, 23, 31]"]
    )
    with pytest.raises(ConfigError, match="MODEL.VFM.WEIGHTS"):
        SAMViT.from_config(cfg)


def test_unknown_lora_target_is_named() -> None:
    cfg = tiny_vfm_cfg("DINOv2", ["MODEL.LORA.TARGET_MODULES", "['attn.nope']"])
    with pytest.raises(ValueError, match="attn.nope"):
        DINOv2.from_config(cfg)


def test_without_lora_nothing_trains() -> None:
    backbone = DINOv2.from_config(tiny_vfm_cfg("DINOv2", ["MODEL.LORA.ENABLED", "False"]))
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not lora_layers(backbone)


def _with_original_lora(name: str, overrides: tuple[str, ...] = ()) -> VFMBackbone:
    """The fixture-shaped backbone with the original LoRABackbone's LoRA weights, mapped from
    its checkpoint names (``backbone.model.base_model.model.<path>``) as for an mmengine file."""
    backbone = BACKBONE_REGISTRY.get(name).from_config(fixture_cfg(name, overrides)).eval()
    original = {f"backbone.{k}": v for k, v in original_record(name)["lora"].items()}
    own = {f"backbone.{k}" for k in backbone.state_dict()}
    mapped, left_out = map_original_state_dict(original, own)
    assert set(mapped) <= own
    assert all(".lora_" in k for k in left_out)
    backbone.load_state_dict({k[len("backbone.") :]: v for k, v in mapped.items()}, strict=False)
    return backbone


def _features(backbone: VFMBackbone, size: tuple[int, int], summarised: bool) -> list[torch.Tensor]:
    with torch.no_grad():
        features = list(backbone(fixture_image(*size)).values())
    if summarised:  # the EVA02 record: top-left 4x4 of each map, then its channel means
        return [torch.cat([f[..., :4, :4].flatten(), f.mean((2, 3)).flatten()]) for f in features]
    return features


@pytest.mark.parametrize("name", list(CASES))
def test_features_with_lora_equal_the_originals(name: str) -> None:
    """Official-format file -> in-memory conversion -> our backbone + the original's LoRA weights
    gives the original's backbone outputs (square and non-square inputs; DINOv2's
    ``(tokens + 0.1) / grid`` resampling and CLIP's bilinear one are exercised by the latter)."""
    record = original_record(name)
    backbone = _with_original_lora(name)
    for size, expected in zip(record["sizes"], record["features"]):
        got = _features(backbone, size, summarised=expected[0].dim() == 1)
        for ours, theirs in zip(got, expected, strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "override"),
    [
        ("CLIPViT", ("MODEL.VFM.CLIP_DOUBLE_CLASS_TOKEN", "False")),
        ("DINOv2", ("MODEL.VFM.POS_INTERP_OFFSET", "0.0")),
        ("DINOv2", ("MODEL.VFM.PATCH_RESAMPLE", "flexivit")),
        ("EVA02", ("MODEL.VFM.EVA02_LN_EPS", "1e-6")),
    ],
)
def test_quirk_keys_change_the_features(name: str, override: tuple[str, str]) -> None:
    record = original_record(name)
    backbone = _with_original_lora(name, override)
    size, expected = record["sizes"][-1], record["features"][-1]
    got = _features(backbone, size, summarised=expected[0].dim() == 1)
    assert max((a - b).abs().max().item() for a, b in zip(got, expected)) > 1e-3


def test_backbones_declare_imagenet_normalisation() -> None:
    for cls in (DINOv2, EVA02, CLIPViT, SAMViT):
        assert cls.pixel_mean == (123.675, 116.28, 103.53)
        assert cls.pixel_std == (58.395, 57.12, 57.375)
