"""Fast paths: channels-last keeps outputs, compile marks the named parts, autocast contexts."""

from __future__ import annotations

import copy

import pytest
import torch

from clouds.config import ConfigError, load_config
from clouds.data.datasets import register_all_datasets
from clouds.modeling import build_model
from clouds.modeling.acceleration import (
    AccelerationSettings,
    apply_acceleration,
    autocast,
    compile_parts,
    parse_precision,
)
from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn

TOY = "configs/toy/Base-Toy-CLOUDS.yaml"


@pytest.fixture(scope="module")
def toy_model() -> torch.nn.Module:
    register_all_datasets()
    torch.manual_seed(0)
    return build_model(load_config(TOY)).eval()


def _predict(model: torch.nn.Module) -> torch.Tensor:
    image = torch.randint(
        0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        return model([{"image": image}])[0]["sem_seg"]


def test_channels_last_keeps_outputs(toy_model: torch.nn.Module) -> None:
    reference = _predict(toy_model)
    fast = apply_acceleration(copy.deepcopy(toy_model), AccelerationSettings(channels_last=True))
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    torch.testing.assert_close(_predict(fast), reference, atol=1e-4, rtol=1e-4)


def test_compile_parts_marks_modules(toy_model: torch.nn.Module) -> None:
    model = compile_parts(copy.deepcopy(toy_model), ["deform_attn", "backbone"])
    attn = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    assert attn and all(m._compiled_call_impl is not None for m in attn)
    assert model.backbone._compiled_call_impl is not None
    assert model.sem_seg_head._compiled_call_impl is None
    # Parameter names are unchanged, so checkpoints still load.
    assert model.state_dict().keys() == toy_model.state_dict().keys()


def test_unknown_part_and_mode_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="MODEL.COMPILE.PARTS"):
        AccelerationSettings(compile_parts=("everything",))
    with pytest.raises(ConfigError, match="MODEL.COMPILE.MODE"):
        AccelerationSettings(compile_mode="fastest")


def test_settings_from_config() -> None:
    cfg = load_config(
        TOY,
        [
            "MODEL.CHANNELS_LAST",
            "True",
            "MODEL.COMPILE.PARTS",
            "['backbone']",
            "TEST.AMP.ENABLED",
            "True",
        ],
    )
    settings = AccelerationSettings.from_config(cfg)
    assert settings.channels_last
    assert settings.compile_parts == ("backbone",)
    assert settings.amp_dtype is torch.bfloat16
    cfg.TEST.AMP.PRECISION = "fp8"
    with pytest.raises(ConfigError, match="TEST.AMP.PRECISION"):
        AccelerationSettings.from_config(cfg)


def test_autocast_contexts() -> None:
    x = torch.randn(4, 4)
    with autocast("cpu", None):
        assert (x @ x).dtype is torch.float32
    with autocast("cpu", torch.bfloat16):
        assert (x @ x).dtype is torch.bfloat16
    with pytest.raises(ValueError, match="bfloat16"), autocast("cpu", torch.float16):
        pass
    assert parse_precision("fp32") is None
