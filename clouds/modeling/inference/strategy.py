"""The test-time strategy of TEST.MODE: whole image, sliding windows or coarse-to-fine."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clouds.config import CfgNode, ConfigError
from clouds.modeling.inference.coarse_to_fine import RefineFn, coarse_to_fine_inference
from clouds.modeling.inference.windows import LogitsFn, slide_inference

__all__ = ["InferenceSettings", "infer_logits"]

_MODES = ("whole", "slide", "coarse_to_fine")


@dataclass(frozen=True)
class InferenceSettings:
    """TEST.MODE and its TEST.SLIDE / TEST.COARSE_TO_FINE parameters, sizes as (h, w)."""

    mode: str = "whole"
    window: tuple[int, int] = (512, 512)
    stride: tuple[int, int] = (320, 320)
    coarse_size: tuple[int, int] = (512, 1024)
    confidence: float = 0.968
    sure_ratio: float = 0.8

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"TEST.MODE={self.mode!r} is not one of {', '.join(_MODES)}")

    @classmethod
    def from_config(cls, cfg: CfgNode) -> InferenceSettings:
        test = cfg.TEST
        return cls(
            mode=test.MODE,
            window=tuple(test.SLIDE.WINDOW),
            stride=tuple(test.SLIDE.STRIDE),
            coarse_size=tuple(test.COARSE_TO_FINE.COARSE_SIZE),
            confidence=test.COARSE_TO_FINE.CONFIDENCE,
            sure_ratio=test.COARSE_TO_FINE.SURE_RATIO,
        )


@torch.no_grad()
def infer_logits(
    settings: InferenceSettings,
    image: torch.Tensor,
    *,
    logits_fn: LogitsFn,
    refine_fn: RefineFn | None = None,
) -> torch.Tensor:
    """(1, 3, H, W) normalised image -> (1, K, H, W) logits with the configured strategy.

    ``logits_fn`` predicts whole images or windows; ``refine_fn`` (coarse-to-fine only)
    refines a window given its coarse logits.
    """
    if settings.mode == "whole":
        return logits_fn(image)
    if settings.mode == "slide":
        return slide_inference(logits_fn, image, window=settings.window, stride=settings.stride)
    if refine_fn is None:
        raise ConfigError("TEST.MODE='coarse_to_fine' needs a model with a refinement head")
    return coarse_to_fine_inference(
        logits_fn,
        refine_fn,
        image,
        coarse_size=settings.coarse_size,
        window=settings.window,
        stride=settings.stride,
        confidence=settings.confidence,
        sure_ratio=settings.sure_ratio,
    )
