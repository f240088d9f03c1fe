"""Fast paths applied to a built model: channels-last, torch.compile of parts, autocast.

Everything here changes how a model runs, never what it computes (up to floating-point
rounding, and the reduced precision of autocast when asked for):

- channels-last: 4-D weights and the backbone's input use the NHWC memory format, the layout
  that cuDNN / oneDNN convolutions and ConvNeXt's permute-to-channels-last blocks prefer.
- compile: ``nn.Module.compile`` (in place, parameter names unchanged, so checkpoints and the
  EMA teacher's tensor mirroring keep working) of named parts:
  ``backbone`` (the image tower), ``pixel_decoder`` (the deformable-attention encoder of the
  pixel decoder), ``deform_attn`` (each multi-scale deformable attention module with its
  sampling core), ``head`` (the whole segmentation head: pixel and transformer decoders).
- autocast: a context manager running the forward pass in bf16 / fp16 where safe.

Config: ``MODEL.CHANNELS_LAST``, ``MODEL.COMPILE.PARTS``, ``MODEL.COMPILE.MODE``,
``TEST.AMP.ENABLED``, ``TEST.AMP.PRECISION``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn
from clouds.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder

__all__ = [
    "COMPILABLE_PARTS",
    "AccelerationSettings",
    "apply_acceleration",
    "autocast",
    "compile_parts",
    "parse_precision",
    "to_channels_last",
]

COMPILABLE_PARTS: tuple[str, ...] = ("backbone", "pixel_decoder", "deform_attn", "head")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_precision(name: str, *, key: str = "precision") -> torch.dtype | None:
    """ "fp32" -> None (no autocast), "bf16" / "fp16" -> the autocast dtype; ``key`` names the
    setting in the error."""
    if name not in _PRECISIONS:
        raise ConfigError(f"{key}={name!r} must be one of {', '.join(_PRECISIONS)}")
    return _PRECISIONS[name]


@dataclass(frozen=True)
class AccelerationSettings:
    """Which fast paths to apply to a model and at which inference precision."""

    channels_last: bool = False
    compile_parts: tuple[str, ...] = ()
    compile_mode: str = "default"
    amp_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        unknown = [p for p in self.compile_parts if p not in COMPILABLE_PARTS]
        if unknown:
            raise ConfigError(
                f"MODEL.COMPILE.PARTS has unknown parts {unknown}; choose from "
                f"{', '.join(COMPILABLE_PARTS)}"
            )
        if self.compile_mode not in _COMPILE_MODES:
            raise ConfigError(
                f"MODEL.COMPILE.MODE={self.compile_mode!r} must be one of "
                f"{', '.join(_COMPILE_MODES)}"
            )

    @classmethod
    def from_config(cls, cfg: CfgNode) -> AccelerationSettings:
        amp = cfg.TEST.AMP
        return cls(
            channels_last=cfg.MODEL.CHANNELS_LAST,
            compile_parts=tuple(cfg.MODEL.COMPILE.PARTS),
            compile_mode=cfg.MODEL.COMPILE.MODE,
            amp_dtype=parse_precision(amp.PRECISION, key="TEST.AMP.PRECISION")
            if amp.ENABLED
            else None,
        )


def _to_channels_last_input(_: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: the first (B, C, H, W) argument in channels-last memory format."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert 4-D parameters and buffers to channels-last and make the backbone (when the model
    has one) receive channels-last images. In place; returns ``model``."""
    model.to(memory_format=torch.channels_last)
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.register_forward_pre_hook(_to_channels_last_input)
    return model


def _part_modules(model: nn.Module, part: str) -> list[nn.Module]:
    """The modules that make up ``part`` of ``model`` (a clear error when it has none)."""
    if part in ("backbone", "head"):
        attr = "backbone" if part == "backbone" else "sem_seg_head"
        module = getattr(model, attr, None)
        found = [module] if isinstance(module, nn.Module) else []
    elif part == "pixel_decoder":
        found = [m.transformer for m in model.modules() if isinstance(m, MSDeformAttnPixelDecoder)]
    else:
        found = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    if not found:
        raise ConfigError(
            f"MODEL.COMPILE.PARTS names {part!r}, but {type(model).__name__} has no such part"
        )
    return found


def compile_parts(model: nn.Module, parts: Sequence[str], *, mode: str = "default") -> nn.Module:
    """``torch.compile`` the named parts of ``model`` in place (see the module docstring).

    Shapes are compiled statically (``dynamic=False``): each new input size recompiles once,
    which suits fixed crop and test sizes. Returns ``model``.
    """
    AccelerationSettings(compile_parts=tuple(parts), compile_mode=mode)  # validates
    for part in dict.fromkeys(parts):
        for module in _part_modules(model, part):
            module.compile(mode=mode, dynamic=False)
    return model


def apply_acceleration(model: nn.Module, settings: AccelerationSettings) -> nn.Module:
    """Apply channels-last and compilation to a built model (in place; returns it).

    Call it after moving the model to its device. Autocast is not a property of the model:
    wrap the forward pass in ``autocast(device, settings.amp_dtype)``.
    """
    if settings.channels_last:
        to_channels_last(model)
    if settings.compile_parts:
        compile_parts(model, settings.compile_parts, mode=settings.compile_mode)
    return model


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device``'s type; a no-op for None or float32.

    float16 is refused on the CPU (slow and poorly supported there): use bfloat16.
    """
    device_type = torch.device(device).type
    if dtype is None or dtype == torch.float32:
        yield
        return
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"autocast dtype must be bfloat16 or float16, got {dtype}")
    if device_type == "cpu" and dtype == torch.float16:
        raise ValueError("float16 autocast on the CPU is not supported here; use bfloat16")
    with torch.autocast(device_type=device_type, dtype=dtype):
        yield
