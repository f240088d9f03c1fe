"""MultiScaleSegmentor: DGVFM's ``MultiScaleEncoderDecoder`` (its ``dg_rein_dinov2_ms_1024x1024``
config): ONE head predicts the whole crop at half size and refines a full-resolution sub-crop
given the half-size prediction of that region as context.

Training, from each batch of crops (B, 3, H, W): (a) the crops at half size through backbone +
head (no context), the logits upsampled to the half-size label; (b) one full-resolution sub-crop
box per batch (MODEL.VFM_HEAD.SUB_CROP, offsets on MODEL.VFM_HEAD.SUB_CROP_GRID, drawn from NumPy
as the original) through backbone + head with context: the detached half-size logits cropped at
the box / 2 and resized x0.25 (bilinear). The loss is the sum of both cross-entropies. Inference
(TEST.MODE "msfull_slide", the original's ``ms_slide_inference``): the head without context
slides over the image resized to TEST.COARSE_TO_FINE.COARSE_SIZE, then every window is refined
with its crop of those logits resized x0.125 as context, overlaps averaged.
"""

from __future__ import annotations

from typing import Any

import torch

from clouds.config import CfgNode, ConfigError
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.inference import InferenceSettings, LogitsFn, RefineFn
from clouds.modeling.meta_arch.vfm_base import build_vfm_backbone, half_size, unpadded_logits
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from clouds.modeling.registry import META_ARCH_REGISTRY, VFM_HEAD_REGISTRY, registered_class
from clouds.modeling.resize import bilinear

__all__ = ["MultiScaleSegmentor"]

_TRAIN_CONTEXT_SCALE = 0.25  # half-size logits of the sub-crop region -> context
_TEST_CONTEXT_SCALE = 0.125  # full-size logits of a window -> context


@META_ARCH_REGISTRY.register()
class MultiScaleSegmentor(VFMSegmentor):
    """A VFM backbone with one head that predicts with and without context (module docstring)."""

    teacher_prefixes = ("decode_head.",)

    def __init__(self, *, inference: InferenceSettings | None = None, **kwargs: Any) -> None:
        """As :class:`VFMSegmentor` without ``aux_decoder``: the decode head (called as
        ``head(features, context)``) refines too."""
        super().__init__(aux_decoder=None, **kwargs)
        self.inference_settings = inference or InferenceSettings()

    @classmethod
    def from_config(cls, cfg: CfgNode) -> MultiScaleSegmentor:
        head = cfg.MODEL.VFM_HEAD
        if head.TYPE != "ms":
            raise ConfigError(
                f"META_ARCHITECTURE MultiScaleSegmentor trains the multi-scale way: set "
                f"MODEL.VFM_HEAD.TYPE 'ms', got {head.TYPE!r}"
            )
        backbone = build_vfm_backbone(cfg)
        head_cls = registered_class(
            VFM_HEAD_REGISTRY, head.LIGHT_HEAD_NAME, "MODEL.VFM_HEAD.LIGHT_HEAD_NAME", DecodeHead
        )
        return cls(
            backbone=backbone,
            decode_head=head_cls.from_config(cfg, backbone.output_shape()),
            sub_crop=head.SUB_CROP,
            sub_crop_grid=head.SUB_CROP_GRID,
            **cls.config_args(cfg),
        )

    def losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"loss_coarse", "loss_refine"} of normalised images (B, 3, H, W) and labels
        (B, H, W) (module docstring)."""
        height, width = images.shape[-2:]
        if height % 2 or width % 2:
            raise ValueError(f"multi-scale training needs even crop sizes, got {height}x{width}")
        half_images, half_labels = half_size(images, labels)
        half_features = self.backbone(half_images)
        y0, x0 = self.sample_sub_crop(height, width)
        size = self.sub_crop
        sub_features = self.backbone(images[..., y0 : y0 + size, x0 : x0 + size])
        coarse = bilinear(self.decode_head(half_features), size=half_labels.shape[-2:])
        region = coarse.detach()[..., y0 // 2 : (y0 + size) // 2, x0 // 2 : (x0 + size) // 2]
        context = bilinear(region, scale_factor=_TRAIN_CONTEXT_SCALE)
        refined = bilinear(self.decode_head(sub_features, context), size=(size, size))
        return {
            "loss_coarse": self._ce(coarse, half_labels),
            "loss_refine": self._ce(refined, labels[..., y0 : y0 + size, x0 : x0 + size]),
        }

    def refined_logits(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Windows (B, 3, H, W) + coarse logits of the same regions (B, K, H, W) -> logits
        (B, K, H, W): the head with the context resized x0.125, resized back bilinearly."""
        padded, h, w = self._padded(images)
        context = bilinear(context, scale_factor=_TEST_CONTEXT_SCALE)
        logits = self.decode_head(self.backbone(padded), context)
        return unpadded_logits(logits, padded.shape[-2:], h, w)

    def prediction_fns(self) -> tuple[LogitsFn, RefineFn | None]:
        """The head without context, and with it (refinement)."""
        return self.light_logits, self.refined_logits
