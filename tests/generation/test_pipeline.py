from pathlib import Path

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.models.attention_processor import AttnProcessor2_0

from clouds.generation.pipeline import (
    SCHEDULERS,
    ModelNotFoundError,
    load_pipeline,
    resolve_dtype,
    set_scheduler,
)

CPU = torch.device("cpu")


def test_loads_with_euler_sdpa_and_channels_last(tiny_sd_folder: Path) -> None:
    pipe = load_pipeline(
        str(tiny_sd_folder), dtype=torch.float32, device=CPU, local_files_only=True
    )
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    for module in (pipe.unet, pipe.vae):
        processors = module.attn_processors
        assert processors
        assert all(type(p) is AttnProcessor2_0 for p in processors.values())
    conv = pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert pipe.unet.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_keeps_the_model_schedule(tiny_sd_folder: Path, name: str) -> None:
    pipe = load_pipeline(
        str(tiny_sd_folder), dtype=torch.float32, device=CPU, local_files_only=True
    )
    set_scheduler(pipe, name)
    assert type(pipe.scheduler) is SCHEDULERS[name].cls
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert pipe.scheduler.config.beta_end == pytest.approx(0.012)


def test_dpm_solver_variants_differ(tiny_sd_folder: Path) -> None:
    pipe = load_pipeline(
        str(tiny_sd_folder),
        dtype=torch.float32,
        device=CPU,
        local_files_only=True,
        scheduler="dpm-solver",
    )
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.algorithm_type == "dpmsolver"
    set_scheduler(pipe, "dpm-solver++")
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"


def test_unknown_scheduler_lists_the_known_ones(tiny_sd_folder: Path) -> None:
    with pytest.raises(ValueError, match="'karras'.*euler"):
        load_pipeline(str(tiny_sd_folder), dtype=torch.float32, device=CPU, scheduler="karras")


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelNotFoundError, match="no_such_model does not exist"):
        load_pipeline(str(missing), dtype=torch.float32, device=CPU, local_files_only=True)


def test_folder_without_model_index_is_named(tiny_sd_folder: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="unet has no model_index.json"):
        load_pipeline(str(tiny_sd_folder / "unet"), dtype=torch.float32, device=CPU)


def test_uncached_hub_id_with_local_files_only_is_named() -> None:
    with pytest.raises(
        ModelNotFoundError, match="'clouds-test/not-a-model'.*local Hugging Face cache"
    ):
        load_pipeline(
            "clouds-test/not-a-model", dtype=torch.float32, device=CPU, local_files_only=True
        )


def test_dtype_resolution() -> None:
    assert resolve_dtype("auto", CPU) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bf16", CPU) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        resolve_dtype("fp16", CPU)
    with pytest.raises(ValueError, match="'int8'"):
        resolve_dtype("int8", CPU)


def test_compile_wraps_the_unet_and_channels_last_is_optional(tiny_sd_folder: Path) -> None:
    from diffusers.utils.torch_utils import is_compiled_module

    pipe = load_pipeline(
        str(tiny_sd_folder),
        dtype=torch.float32,
        device=CPU,
        channels_last=False,
        compile_unet=True,
    )
    assert is_compiled_module(pipe.unet)
    assert not is_compiled_module(pipe.vae)
    weight = pipe.vae.decoder.conv_in.weight
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
