"""Loading a Stable Diffusion pipeline for fast batched generation.

The real loading path is ``StableDiffusionPipeline.from_pretrained(model_id_or_folder,
torch_dtype=..., local_files_only=...)``; on top of it we pick the scheduler by name (built
with ``from_config(pipe.scheduler.config)`` so the model's noise schedule and prediction type
carry over) and apply the fast paths: PyTorch SDPA attention processors, channels-last UNet
and VAE, and optionally ``torch.compile`` of the UNet.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UniPCMultistepScheduler,
)
from diffusers.models.attention_processor import AttnProcessor2_0

from clouds.generation.toy_pipeline import ToyTextToImagePipeline, is_toy_pipeline_folder
from clouds.utils.weights_file import pipeline_weight_files, reading_weights

__all__ = [
    "DTYPES",
    "SCHEDULERS",
    "ModelNotFoundError",
    "apply_fast_paths",
    "load_pipeline",
    "resolve_device",
    "resolve_dtype",
    "set_scheduler",
]

DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
}


@dataclass(frozen=True)
class _SchedulerSpec:
    cls: type
    overrides: dict[str, Any]


SCHEDULERS: dict[str, _SchedulerSpec] = {
    "euler": _SchedulerSpec(EulerDiscreteScheduler, {}),
    "euler-ancestral": _SchedulerSpec(EulerAncestralDiscreteScheduler, {}),
    "heun": _SchedulerSpec(HeunDiscreteScheduler, {}),
    "lms": _SchedulerSpec(LMSDiscreteScheduler, {}),
    "dpm-solver": _SchedulerSpec(
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"},
    ),
    "dpm-solver++": _SchedulerSpec(DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "unipc": _SchedulerSpec(UniPCMultistepScheduler, {}),
    "ddim": _SchedulerSpec(DDIMScheduler, {}),
    "ddpm": _SchedulerSpec(DDPMScheduler, {}),
    "pndm": _SchedulerSpec(PNDMScheduler, {}),
}


class ModelNotFoundError(FileNotFoundError):
    """A model folder or hub id that cannot be loaded."""


def resolve_device(device: str | None) -> torch.device:
    """``device`` as given, or CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The weight/compute dtype for ``name`` ("auto", "fp16", "bf16", "fp32") on ``device``.

    "auto" is fp16 on CUDA (the original CLOUDS setting) and fp32 elsewhere.

    Raises:
        ValueError: for an unknown name, or fp16 on CPU (half-precision convolutions are
            missing or very slow there; use fp32 or bf16).
    """
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"Unknown --dtype {name!r}; choose one of auto, {', '.join(DTYPES)}")
    if name == "fp16" and device.type == "cpu":
        raise ValueError(
            "--dtype fp16 is not supported on CPU (half-precision kernels are missing or very "
            "slow there); use --dtype fp32 (default on CPU) or bf16, or run on a GPU"
        )
    return DTYPES[name]


def _scheduler_spec(name: str) -> _SchedulerSpec:
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown --scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name]


def set_scheduler(pipe: StableDiffusionPipeline, name: str) -> None:
    """Replace the pipeline's scheduler by the one called ``name``, keeping the model's config.

    Raises:
        ValueError: for an unknown scheduler name (the message lists the known ones).
    """
    spec = _scheduler_spec(name)
    pipe.scheduler = spec.cls.from_config(pipe.scheduler.config, **spec.overrides)


def apply_fast_paths(
    pipe: StableDiffusionPipeline, *, channels_last: bool = True, compile_unet: bool = False
) -> None:
    """SDPA attention everywhere, channels-last UNet/VAE, optional ``torch.compile`` of the UNet."""
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet)


def _looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a local folder."""
    return (
        Path(model_id).is_absolute()
        or model_id.startswith((".", "~"))
        or model_id.count("/") > 1
        or "\\" in model_id
    )


def _model_source(model_id: str) -> str:
    """The local folder meant by ``model_id`` (checked), or ``model_id`` as a hub id."""
    folder = Path(model_id).expanduser()
    if folder.exists():
        if not (folder / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"Model folder {model_id} has no model_index.json: it is not a diffusers pipeline "
                f"folder (write one with StableDiffusionPipeline.save_pretrained)"
            )
        return str(folder)
    if _looks_like_path(model_id):
        raise ModelNotFoundError(f"Model folder {model_id} does not exist")
    return model_id


def load_pipeline(
    model_id: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    local_files_only: bool = False,
    scheduler: str = "euler",
    channels_last: bool = True,
    compile_unet: bool = False,
) -> StableDiffusionPipeline:
    """Load ``model_id`` (hub id or local folder) for ``runner.generate_images``, fast paths on.

    A folder saved by :func:`clouds.generation.toy_pipeline.save_toy_pipeline` loads the toy
    generator instead (the other settings do not apply to it).

    Raises:
        ModelNotFoundError: naming ``model_id`` when the folder is missing or not a pipeline,
            or the hub id is not in the local cache with ``local_files_only``.
        ValueError: for an unknown scheduler.
    """
    _scheduler_spec(scheduler)
    if is_toy_pipeline_folder(model_id):  # the toy generator (quickstart, tests)
        return ToyTextToImagePipeline.from_pretrained(Path(model_id).expanduser())
    source = _model_source(model_id)
    local_files = pipeline_weight_files(source, key="--model-id") if Path(source).is_dir() else []
    try:
        with reading_weights(local_files, key="--model-id"), warnings.catch_warnings():
            # newer diffusers prefer `dtype=`; `torch_dtype=` works on every supported version
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = StableDiffusionPipeline.from_pretrained(
                source, torch_dtype=dtype, local_files_only=local_files_only
            )
    except OSError as e:
        where = "in the local Hugging Face cache" if local_files_only else "locally or on the hub"
        hint = (
            " (--local-files-only forbids downloads: download it first, e.g. `hf download "
            f"{model_id}`, or pass a local folder)"
            if local_files_only
            else ""
        )
        raise ModelNotFoundError(f"Cannot load model {model_id!r} {where}{hint}: {e}") from e
    set_scheduler(pipe, scheduler)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    apply_fast_paths(pipe, channels_last=channels_last, compile_unet=compile_unet)
    return pipe
