"""The test-time strategy of TEST.MODE, as the modes of DGVFM's segmentors.

``whole``: the image at once. ``slide`` / ``hr_slide``: mmseg's sliding windows with the light
head at full resolution. ``lr_slide``: sliding windows on the image at half size, logits x2.
``msfull_slide`` and ``coarse_to_fine`` (the original's ``ms_slide_inference``): two stages with
the refinement head (:mod:`clouds.modeling.inference.coarse_to_fine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError
from clouds.modeling.inference.coarse_to_fine import (
    RefineFn,
    coarse_to_fine_inference,
    msfull_inference,
)
from clouds.modeling.inference.windows import LogitsFn, slide_inference

__all__ = ["MODES", "REFINING_MODES", "InferenceSettings", "infer_logits"]

MODES = ("whole", "slide", "hr_slide", "lr_slide", "msfull_slide", "coarse_to_fine")
REFINING_MODES = ("msfull_slide", "coarse_to_fine")


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
        if self.mode not in MODES:
            raise ConfigError(f"TEST.MODE={self.mode!r} is not one of {', '.join(MODES)}")

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
    """(1, 3, H, W) normalised image -> (1, K, H', W') logits with the configured strategy
    (H' x W' = H x W except for ``lr_slide`` on odd sizes, as the original's x0.5 / x2).

    ``logits_fn`` predicts images or windows with the light head at a given output size;
    ``refine_fn`` (refining modes only) refines a window given its coarse logits.
    """
    s = settings
    if s.mode == "whole":
        return logits_fn(image, tuple(image.shape[-2:]))
    if s.mode in ("slide", "hr_slide"):
        return slide_inference(logits_fn, image, window=s.window, stride=s.stride)
    if s.mode == "lr_slide":
        half = F.interpolate(image, scale_factor=0.5, mode="bilinear", align_corners=False)
        logits = slide_inference(logits_fn, half, window=s.window, stride=s.stride)
        return F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
    if refine_fn is None:
        raise ConfigError(f"TEST.MODE={s.mode!r} needs a model with a refinement head")
    if s.mode == "msfull_slide":
        return msfull_inference(
            logits_fn,
            refine_fn,
            image,
            coarse_size=s.coarse_size,
            window=s.window,
            stride=s.stride,
        )
    return coarse_to_fine_inference(
        logits_fn,
        refine_fn,
        image,
        coarse_size=s.coarse_size,
        window=s.window,
        stride=s.stride,
        confidence=s.confidence,
        sure_ratio=s.sure_ratio,
    )
