"""Loading the official VFM weight files, converted in memory as DGVFM's converters do.

The official-format inputs and the original converters' results are the fixtures described in
tests/modeling/dgvfm_fixtures.py (made by running DGVFM's tools/convert_models/convert_*.py).
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling.backbone.vfm import EVA02, CLIPViT, SAMViT
from clouds.modeling.backbone.vfm.convert import convert_official_state, read_official_file
from clouds.modeling.backbone.vfm.weights import hub_weights_file, resolve_weights_path
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.dgvfm_fixtures import CASES, FIXTURES, fixture_cfg, original_record
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

REPO = Path(__file__).resolve().parents[2]


def _ours(name: str, **kwargs) -> dict[str, torch.Tensor]:
    family, file, size, _, _ = CASES[name]
    state = read_official_file(str(FIXTURES / file), family)
    return convert_official_state(state, family, grid=(size // 16, size // 16), **kwargs)


@pytest.mark.parametrize("name", list(CASES))
def test_conversion_equals_the_original_converter(name: str) -> None:
    family, file, _, _, _ = CASES[name]
    record = original_record(name)
    ours = _ours(name)
    assert sorted(ours) == record["converted_keys"]
    assert record["converted"], "the converter changed nothing"
    for key, expected in record["converted"].items():
        torch.testing.assert_close(ours[key], expected, atol=1e-6, rtol=0, msg=key)
    official = read_official_file(str(FIXTURES / file), family)
    for key, value in ours.items():
        if key not in record["converted"]:
            assert torch.equal(value, official[key]), key


@pytest.mark.parametrize("name", list(CASES))
def test_converting_a_converted_file_changes_nothing(name: str) -> None:
    family, _, size, _, _ = CASES[name]
    once = _ours(name)
    twice = convert_official_state(once, family, grid=(size // 16, size // 16))
    for key, value in once.items():
        torch.testing.assert_close(twice[key], value, atol=1e-6, rtol=0, msg=key)


def test_flexivit_kernel_is_an_option() -> None:
    bicubic, flexivit = _ours("DINOv2"), _ours("DINOv2", patch_resample="flexivit")
    key = "patch_embed.proj.weight"
    assert flexivit[key].shape == bicubic[key].shape == (8, 3, 16, 16)
    assert not torch.allclose(flexivit[key], bicubic[key], atol=1e-3)
    assert torch.equal(flexivit["pos_embed"], bicubic["pos_embed"])


def test_convert_tool_writes_what_the_original_converter_writes(tmp_path: Path) -> None:
    out = tmp_path / "clip_converted.pth"
    argv = [str(FIXTURES / "clip_official.pt"), str(out), "--height", "64", "--width", "64"]
    tool = runpy.run_path(str(REPO / "tools" / "convert_vfm_weights.py"), run_name="tool")
    assert tool["main"](["clip", *argv]) == 0
    written, record = torch.load(out), original_record("CLIPViT")
    assert sorted(written) == record["converted_keys"]
    for key, expected in record["converted"].items():
        torch.testing.assert_close(written[key], expected, atol=1e-6, rtol=0, msg=key)


@pytest.mark.parametrize("name", list(CASES))
def test_backbone_loads_the_official_file(name: str) -> None:
    backbone = BACKBONE_REGISTRY.get(name).from_config(
        fixture_cfg(name, ["MODEL.LORA.ENABLED", "False"])
    )
    state = backbone.vit.state_dict()
    converted = _ours(name)
    shared = set(state) & set(converted)
    assert shared == set(state), f"not loaded: {sorted(set(state) - shared)[:4]}"
    for key in shared:
        assert torch.equal(state[key], converted[key].to(state[key].dtype)), key


def test_file_of_another_family_is_named() -> None:
    cfg = fixture_cfg("SAMViT", ["MODEL.VFM.WEIGHTS", str(FIXTURES / "clip_official.pt")])
    with pytest.raises(ValueError, match="clip_official.pt.*lacks"):
        SAMViT.from_config(cfg)
    cfg = fixture_cfg("CLIPViT", ["MODEL.VFM.WEIGHTS", str(FIXTURES / "dinov2_official.pth")])
    with pytest.raises(ValueError, match="dinov2_official.pth.*conv1.weight"):
        CLIPViT.from_config(cfg)


def test_weights_of_another_width_are_reported() -> None:
    cfg = fixture_cfg("DINOv2", ["MODEL.VFM.TINY_WIDTH", "16", "MODEL.LORA.ENABLED", "False"])
    with pytest.raises(ValueError, match="shape"):
        BACKBONE_REGISTRY.get("DINOv2").from_config(cfg)


def test_eva02_needs_a_weight_file() -> None:
    with pytest.raises(ConfigError, match="eva02_L_pt_m38m_p14to16"):
        EVA02.from_config(tiny_vfm_cfg("EVA02", ["MODEL.VFM.TINY", "False"]))


def test_convert_size_must_fit_the_patch() -> None:
    with pytest.raises(ConfigError, match="CONVERT_SIZE"):
        EVA02.from_config(tiny_vfm_cfg("EVA02", ["MODEL.VFM.CONVERT_SIZE", "[500, 512]"]))


def test_missing_weights_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        resolve_weights_path(str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match="holds none"):
        resolve_weights_path(str(tmp_path))


def test_local_files_only_never_downloads() -> None:
    with pytest.raises(FileNotFoundError, match="local cache"):
        hub_weights_file("clouds-tests/not-a-cached-repo", local_files_only=True)


def test_unknown_model_ids_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="open_clip"):
        CLIPViT.from_config(tiny_vfm_cfg("CLIPViT", ["MODEL.VFM.MODEL_ID", "ViT-X-99"]))
    for tag in ["", "not-a-tag"]:
        overrides = ["MODEL.VFM.TINY", "False", "MODEL.VFM.PRETRAINED_TAG", tag]
        with pytest.raises(ConfigError, match="PRETRAINED_TAG"):
            CLIPViT.from_config(tiny_vfm_cfg("CLIPViT", overrides))
    cfg = tiny_vfm_cfg("SAMViT", ["MODEL.VFM.TINY", "False", "MODEL.VFM.MODEL_ID", "vit_x"])
    with pytest.raises(ConfigError, match="vit_x"):
        SAMViT.from_config(cfg)
