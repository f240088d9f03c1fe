"""HRDASegmentor: a VFM backbone (frozen, LoRA or Rein) trained at two resolutions, as DGVFM's
``HRDAEncoderDecoder`` (and ``FrozenHRDAEncoderDecoder``: MODEL.LORA.ENABLED False).

Training: the crop at the context scale (MODEL.HRDA.SCALES[0], e.g. 0.5, bilinear) goes through
the backbone, then a random crop of MODEL.HRDA.HR_CROP_SIZE of the image at the detail scale
(offsets ``randint(0, (margin + 1) // d) * d`` from NumPy's global generator,
d = MODEL.HRDA.CROP_COORD_DIVISIBLE, as the original's ``get_crop_bbox``). :class:`HRDAHead`
fuses both. Loss: cross-entropy of the fused logits x (1 - LR_LOSS_WEIGHT - HR_LOSS_WEIGHT), of
the attention-weighted context logits x LR_LOSS_WEIGHT (when > 0), and of the detail logits on
the crop's label x HR_LOSS_WEIGHT, each on logits resized (bilinear) to its label, averaged as
the VFM segmentor does (mmseg's ``avg_non_ignore=False`` unless MODEL.VFM_HEAD.CE_AVG_NON_IGNORE).

Inference (TEST.MODE "whole" or "slide" with TEST.SLIDE windows): each window's fused logits
from its context image and its detail image, the latter over windows of HR_CROP_SIZE (stride
half of it with HR_SLIDE_OVERLAPPING) batched through the backbone (MODEL.HRDA.HR_SLIDE_INFERENCE)
or whole; MODEL.HRDA.CONTEXT_ONLY_SLIDE predicts each window with the context head alone at
full resolution (the original's ``orginal_slide_inference``). Same model interface as the other
meta-architectures: input dicts in, weighted losses or ``{"sem_seg": (K, height, width)}`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.heads.base import DecodeHead
from clouds.modeling.heads.hrda_head import Box, HRDAHead
from clouds.modeling.inference import InferenceSettings, LogitsFn, RefineFn, window_boxes
from clouds.modeling.meta_arch.vfm_base import VFMSegmentorBase, build_vfm_backbone
from clouds.modeling.registry import META_ARCH_REGISTRY, VFM_HEAD_REGISTRY, registered_class
from clouds.modeling.resize import bilinear

__all__ = ["HRDASegmentor", "random_crop_box"]

HRDA_TEST_MODES = ("whole", "slide")


def random_crop_box(height: int, width: int, size: Sequence[int], divisible: int) -> Box:
    """(y1, y2, x1, x2) of a random ``size`` crop of an image, offsets multiples of
    ``divisible`` drawn with NumPy's global generator (height first), as the original."""
    if size[0] > height or size[1] > width:
        raise ConfigError(
            f"MODEL.HRDA.HR_CROP_SIZE={tuple(size)} exceeds the detail image {height}x{width} "
            f"(INPUT.CROP.SIZE x the detail scale)"
        )
    if (height, width) == tuple(size):
        return 0, height, 0, width
    margin_h, margin_w = height - size[0], width - size[1]
    y1 = int(np.random.randint(0, max((margin_h + 1) // divisible, 1))) * divisible
    x1 = int(np.random.randint(0, max((margin_w + 1) // divisible, 1))) * divisible
    return y1, y1 + size[0], x1, x1 + size[1]


@META_ARCH_REGISTRY.register()
class HRDASegmentor(VFMSegmentorBase):
    """VFM backbone + :class:`HRDAHead` trained and tested at two resolutions."""

    teacher_prefixes: tuple[str, ...] = ("decode_head.",)

    def __init__(
        self,
        *,
        backbone: VFMBackbone,
        decode_head: HRDAHead,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        hr_crop_size: tuple[int, int],
        crop_coord_divisible: int = 1,
        lr_loss_weight: float = 0.0,
        hr_loss_weight: float = 0.0,
        hr_slide_inference: bool = True,
        hr_slide_overlapping: bool = True,
        context_only_slide: bool = False,
        ignore_label: int = 255,
        inference: InferenceSettings | None = None,
        train_pad_size: tuple[int, int] | None = None,
        ce_avg_non_ignore: bool = False,
    ) -> None:
        """
        Args:
            backbone: maps (B, 3, H, W) to named (B, C, H/16, W/16) maps.
            decode_head: context head + scale attention (its ``scales``: context, detail).
            hr_crop_size: (h, w) of the detail crop in training and of the detail windows.
            crop_coord_divisible: training crop offsets are multiples of it.
            lr_loss_weight, hr_loss_weight: weights of the context and detail losses; the fused
                loss gets 1 - both.
            hr_slide_inference: detail features at test time over windows (else whole).
            hr_slide_overlapping: those windows overlap by half (else they tile).
            context_only_slide: test windows predicted by the context head alone.
            inference: TEST.MODE "whole" or "slide" with its windows.
            ignore_label, train_pad_size, ce_avg_non_ignore: see :class:`VFMSegmentorBase`.
        """
        super().__init__(
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            ignore_label=ignore_label,
            inference=inference,
            train_pad_size=train_pad_size,
            ce_avg_non_ignore=ce_avg_non_ignore,
        )
        mode = self.inference_settings.mode
        if mode not in HRDA_TEST_MODES:
            raise ConfigError(f"TEST.MODE={mode!r}: HRDA predicts in {', '.join(HRDA_TEST_MODES)}")
        if any(c % backbone.size_divisibility for c in hr_crop_size):
            raise ConfigError(
                f"MODEL.HRDA.HR_CROP_SIZE={tuple(hr_crop_size)} must be multiples of the patch "
                f"size {backbone.size_divisibility}"
            )
        self.backbone = backbone
        self.decode_head = decode_head
        self.scales = decode_head.scales
        self.hr_crop_size = tuple(hr_crop_size)
        self.crop_coord_divisible = crop_coord_divisible
        self.lr_loss_weight = lr_loss_weight
        self.hr_loss_weight = hr_loss_weight
        self.hr_slide_inference = hr_slide_inference
        self.hr_slide_overlapping = hr_slide_overlapping
        self.context_only_slide = context_only_slide
        # the context image (scale < 1) must still be a multiple of the patch size
        self.size_divisibility = int(round(backbone.size_divisibility / self.scales[0]))

    @classmethod
    def from_config(cls, cfg: CfgNode) -> HRDASegmentor:
        hrda = cfg.MODEL.HRDA
        backbone = build_vfm_backbone(cfg)
        if len(hrda.SCALES) != 2:
            raise ConfigError(f"MODEL.HRDA.SCALES needs two scales, got {hrda.SCALES}")
        shape = backbone.output_shape()
        heads = {}
        for key, name in (
            ("HEAD_NAME", hrda.HEAD_NAME),
            ("ATTENTION_HEAD_NAME", hrda.ATTENTION_HEAD_NAME),
        ):
            head_cls = registered_class(VFM_HEAD_REGISTRY, name, f"MODEL.HRDA.{key}", DecodeHead)
            heads[key] = head_cls.from_config(cfg, shape)
        low, high = sorted(float(s) for s in hrda.SCALES)
        decode_head = HRDAHead(
            head=heads["HEAD_NAME"],
            scale_attention=heads["ATTENTION_HEAD_NAME"],
            scales=(low, high),
            feature_stride=backbone.size_divisibility,
        )
        return cls(
            backbone=backbone,
            decode_head=decode_head,
            hr_crop_size=tuple(hrda.HR_CROP_SIZE),
            crop_coord_divisible=hrda.CROP_COORD_DIVISIBLE,
            lr_loss_weight=hrda.LR_LOSS_WEIGHT,
            hr_loss_weight=hrda.HR_LOSS_WEIGHT,
            hr_slide_inference=hrda.HR_SLIDE_INFERENCE,
            hr_slide_overlapping=hrda.HR_SLIDE_OVERLAPPING,
            context_only_slide=hrda.CONTEXT_ONLY_SLIDE,
            **cls.config_args(cfg),
        )

    # -------------------------------------------------------------------- training
    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits (B, K, h, w) resized (bilinear) to labels (B, H, W)."""
        return super()._ce(bilinear(logits, size=labels.shape[-2:]), labels)

    def _scaled(self, images: torch.Tensor, scale: float) -> torch.Tensor:
        return images if scale == 1 else bilinear(images, scale_factor=scale)

    def losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted HRDA losses of normalised images (B, 3, H, W) and labels (B, H, W)."""
        low, high = self.scales
        context_features = self.backbone(self._scaled(images, low))
        detail = self._scaled(images, high)
        box = random_crop_box(*detail.shape[-2:], self.hr_crop_size, self.crop_coord_divisible)
        y1, y2, x1, x2 = box
        detail_features = self.backbone(detail[..., y1:y2, x1:x2])
        fused, context, detail_logits = self.decode_head(
            context_features, detail_features, crop_box=box
        )
        fused_weight = 1 - self.lr_loss_weight - self.hr_loss_weight
        losses = {"loss_seg": self._ce(fused, labels) * fused_weight}
        if self.lr_loss_weight > 0:
            losses["loss_lr_seg"] = self._ce(context, labels) * self.lr_loss_weight
        if self.hr_loss_weight > 0:
            crop_labels = labels[..., y1:y2, x1:x2]
            losses["loss_hr_seg"] = self._ce(detail_logits, crop_labels) * self.hr_loss_weight
        return losses

    # ------------------------------------------------------------------ prediction
    def _detail_logits(self, detail: torch.Tensor) -> torch.Tensor:
        """Detail logits of a detail-scale image (B, 3, H, W) over windows of the crop size."""
        crop = self.hr_crop_size
        stride = tuple(c // 2 for c in crop) if self.hr_slide_overlapping else crop
        boxes = [
            (y0, y1, x0, x1) for y0, x0, y1, x1 in window_boxes(*detail.shape[-2:], crop, stride)
        ]
        windows = torch.cat([detail[..., y1:y2, x1:x2] for y1, y2, x1, x2 in boxes])
        return self.decode_head.decode_windows(
            self.backbone(windows), boxes, batch_size=detail.shape[0]
        )

    def encode_decode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W), multiples of the size divisibility -> fused logits
        (B, K, H, W) (or the context head's alone with ``context_only_slide``)."""
        if self.context_only_slide:
            logits = self.decode_head.head(self.backbone(images))
        else:
            low, high = self.scales
            context_features = self.backbone(self._scaled(images, low))
            detail = self._scaled(images, high)
            if self.hr_slide_inference:
                detail_input: Any = self._detail_logits(detail)
            else:
                detail_input = self.backbone(detail)
            logits = self.decode_head(context_features, detail_input)[0]
        return bilinear(logits, size=images.shape[-2:])

    def window_logits(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Images (B, 3, h, w) of any size -> logits (B, K, *size): zero-padded to the size
        divisibility, predicted, the padding cropped, resized to ``size``."""
        div = self.size_divisibility
        h, w = images.shape[-2:]
        logits = self.encode_decode(F.pad(images, (0, -w % div, 0, -h % div)))[..., :h, :w]
        return logits if (h, w) == tuple(size) else bilinear(logits, size=size)

    def prediction_fns(self) -> tuple[LogitsFn, RefineFn | None]:
        """Fused logits of windows; no refinement."""
        return self.window_logits, None
