"""LoRA on every VFM family: each branch takes part in the forward pass; merging keeps outputs.

MODEL.LORA.MODE "effective" adapts only what DGVFM's forward adapts; the fixture
tests/fixtures/dgvfm_weights/<family>_original.pt lists, for the original's own backbones
(rein/models/backbones/{dino_v2,eva_02,clip,sam_vit}.py wrapped by lora_backbone.py's peft
get_peft_model with its configs' target modules, tiny width 8, depth 4/8, seed-fixed random
weights and LoRA), the layers whose lora_B changes the output (each zeroed in turn); made by
gen_fixtures.py in the dgvfm-weights scratch folder.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from clouds.config import ConfigError
from clouds.modeling.backbone.vfm.clip_vit import ProjectedSelfAttention
from clouds.modeling.backbone.vfm.lora import lora_layers, lora_target_regex, merge_lora
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.vfm_test_utils import FAMILIES, tiny_vfm_cfg

# targets per MODEL.LORA.MODE: "all" = DGVFM's configured targets; "effective" = those its
# forward really adapts (measured on the original, see test_effective_targets_match_the_original)
TARGETS = {
    "all": {
        "DINOv2": {"attn.qkv"},
        "EVA02": {"attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.proj"},
        "CLIPViT": {"attn.out_proj", "mlp.c_fc", "mlp.c_proj"},
        "SAMViT": {"attn.qkv"},
    },
    "effective": {
        "DINOv2": {"attn.qkv"},
        "EVA02": {"attn.proj"},
        "CLIPViT": {"mlp.c_fc", "mlp.c_proj"},
        "SAMViT": {"attn.qkv"},
    },
}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dgvfm_weights"
FIXTURE_OF = {"DINOv2": "dinov2", "EVA02": "eva02", "CLIPViT": "clip", "SAMViT": "sam"}


def _build(name: str, mode: str = "effective") -> nn.Module:
    """A tiny backbone; layer-scale factors (random-init 1e-5 in DINOv2) set to 1 so that each
    block's contribution is well above float noise."""
    cfg = tiny_vfm_cfg(name, ["MODEL.LORA.MODE", mode])
    backbone = BACKBONE_REGISTRY.get(name).from_config(cfg).eval()
    with torch.no_grad():
        for param_name, param in backbone.named_parameters():
            if param_name.endswith(("ls1.gamma", "ls2.gamma")):
                param.fill_(1.0)
    return backbone


def _target(module_path: str) -> str:
    """``transformer.resblocks.3.mlp.c_fc`` -> ``mlp.c_fc`` (the path inside the block)."""
    return re.sub(r"^.*?\.\d+\.", "", module_path)


def _output(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([f.flatten() for f in backbone(images).values()])


@pytest.mark.parametrize("mode", list(TARGETS))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_default_targets_wrapped_in_every_block(name: str, mode: str) -> None:
    backbone = _build(name, mode)
    layers = lora_layers(backbone.vit)
    assert {_target(n) for n in layers} == TARGETS[mode][name]
    depth = tiny_vfm_cfg(name).MODEL.VFM.TINY_DEPTH
    assert len(layers) == depth * len(TARGETS[mode][name])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_effective_targets_match_the_original(name: str) -> None:
    """The original's LoRA layers whose B matrix changes its backbone's output (measured by
    zeroing each in turn, see tests/fixtures/dgvfm_weights) are exactly the ones adapted here."""
    measured = torch.load(FIXTURES / f"{FIXTURE_OF[name]}_original.pt")["effective"]
    assert {_target(path) for path in measured} == TARGETS["effective"][name]


def test_explicit_targets_lose_the_bypassed_ones_only_in_effective_mode() -> None:
    targets = ["MODEL.LORA.TARGET_MODULES", "['attn.q_proj', 'attn.proj']"]
    for mode, expected in [("effective", {"attn.proj"}), ("all", {"attn.q_proj", "attn.proj"})]:
        cfg = tiny_vfm_cfg("EVA02", [*targets, "MODEL.LORA.MODE", mode])
        backbone = BACKBONE_REGISTRY.get("EVA02").from_config(cfg)
        assert {_target(n) for n in lora_layers(backbone.vit)} == expected
    with pytest.raises(ConfigError, match="MODEL.LORA.MODE"):
        BACKBONE_REGISTRY.get("EVA02").from_config(
            tiny_vfm_cfg("EVA02", ["MODEL.LORA.MODE", "some"])
        )


@pytest.mark.parametrize("mode", list(TARGETS))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_lora_branch_changes_the_output(name: str, mode: str) -> None:
    backbone = _build(name, mode)
    images = torch.randn(1, 3, 48, 64)
    base = _output(backbone, images)
    layers = lora_layers(backbone.vit)
    for layer_name, layer in layers.items():
        lora_b = layer.lora_B["default"].weight
        with torch.no_grad():
            lora_b.normal_(std=2.0)
        changed = _output(backbone, images)
        with torch.no_grad():
            lora_b.zero_()
        assert (changed - base).abs().max() > 1e-5, f"LoRA of {layer_name} is bypassed"
    assert torch.equal(_output(backbone, images), base)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_merged_equals_unmerged(name: str) -> None:
    backbone = _build(name)
    for layer in lora_layers(backbone.vit).values():
        with torch.no_grad():
            layer.lora_B["default"].weight.normal_(std=0.2)
    images = torch.randn(2, 3, 32, 48)
    expected = _output(backbone, images)
    merged = copy.deepcopy(backbone)
    assert merge_lora(merged.vit) == len(lora_layers(backbone.vit))
    assert not lora_layers(merged.vit)
    assert not any("lora_" in k for k in merged.state_dict())
    torch.testing.assert_close(_output(merged, images), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(_output(_build(name), images), expected, atol=1e-4)


def test_projected_attention_equals_multihead_attention() -> None:
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    projected = ProjectedSelfAttention(attention=mha)
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(projected(x, x, x)[0], mha(x, x, x, need_weights=False)[0])
    assert set(projected.state_dict()) == set(mha.state_dict())


def test_multihead_attention_would_bypass_a_wrapped_out_proj() -> None:
    """Why ProjectedSelfAttention exists: nn.MultiheadAttention ignores a LoRA'd out_proj."""
    model = nn.Sequential(nn.MultiheadAttention(32, 4, batch_first=True))
    model = inject_adapter_in_model(LoraConfig(r=4, target_modules=["out_proj"]), model)
    layer = next(iter(lora_layers(model).values()))
    x = torch.randn(1, 5, 32)
    before = model[0](x, x, x, need_weights=False)[0]
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    after = model[0](x, x, x, need_weights=False)[0]
    torch.testing.assert_close(before, after)


def test_target_regex_stays_inside_blocks() -> None:
    pattern = re.compile(lora_target_regex(r"blocks\.\d+", ["attn.proj"]))
    assert pattern.fullmatch("blocks.3.attn.proj")
    assert pattern.fullmatch("base.blocks.12.attn.proj")
    assert not pattern.fullmatch("patch_embed.proj")
    assert not pattern.fullmatch("blocks.3.attn.proj_drop")
