"""VFMSegmentor: a LoRA-tuned vision foundation model with light / refinement heads (DGVFM).

Head types (MODEL.VFM_HEAD.TYPE):

- ``light``: the whole crop through backbone + :class:`VFMNet`, one cross-entropy.
- ``mask_former``: the whole crop through backbone + the CLOUDS mask-classification head
  (:class:`VFMMaskHead`), set-criterion losses.
- ``ms`` / ``ms_masked`` (multi-scale): (a) the crop at half size through backbone + VFMNet,
  supervised by the half-size label; (b) a random full-resolution sub-crop (offsets on
  MODEL.VFM_HEAD.SUB_CROP_GRID) through backbone + :class:`MGRNet` with the detached coarse
  logits of the same region as context, supervised by the sub-crop label. The loss is the sum of
  both cross-entropies. ``ms_masked`` masks MODEL.VFM_HEAD.MASK_RATIO of the refinement tokens.

Inference follows TEST.MODE (``clouds.modeling.inference``). Same model interface as CLOUDS: a
list of input dicts in, weighted losses (training) or ``{"sem_seg": (K, height, width)}`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.heads.vfm_mask_head import VFMMaskHead
from clouds.modeling.heads.vfmnet import VFMNet
from clouds.modeling.inference import InferenceSettings, infer_logits
from clouds.modeling.meta_arch.base import (
    SegmentorBase,
    build_backbone,
    output_size,
    training_label,
)
from clouds.modeling.meta_arch.image_list import pad_to_divisible
from clouds.modeling.registry import BACKBONE_REGISTRY, META_ARCH_REGISTRY

__all__ = ["HEAD_TYPES", "VFMSegmentor", "region_logits"]

HEAD_TYPES = ("light", "ms", "ms_masked", "mask_former")


def region_logits(
    logits: torch.Tensor,
    image_size: tuple[int, int],
    boxes: torch.Tensor,
    output_size: tuple[int, int],
) -> torch.Tensor:
    """Bilinearly resample the logits of image regions (one sample per output pixel, at its
    centre: the same values as ``F.interpolate(..., align_corners=False)`` of the region).

    Args:
        logits: (B, K, h, w) logits of whole images of ``image_size`` (H, W).
        boxes: (B, 4) one region (x0, y0, x1, y1) per image, in image pixels.
        output_size: (h', w') of the result.

    Returns:
        (B, K, h', w') logits of each region.
    """
    scale = logits.shape[-2] / image_size[0]
    if abs(scale - logits.shape[-1] / image_size[1]) > 1e-6:
        raise ValueError(f"logits {tuple(logits.shape)} do not scale evenly to {image_size}")
    rois = torch.cat([torch.arange(len(boxes), device=boxes.device)[:, None], boxes], dim=1)
    return roi_align(
        logits,
        rois.to(logits.dtype),
        output_size,
        spatial_scale=scale,
        sampling_ratio=1,
        aligned=True,
    )


def _train_pad_size(cfg: CfgNode) -> tuple[int, int] | None:
    """INPUT.CROP.SIZE with INPUT.VFM_PIPELINE.PAD_TO_CROP (DGVFM's pipelines), else None."""
    if cfg.INPUT.VFM_PIPELINE.PAD_TO_CROP and cfg.INPUT.CROP.ENABLED:
        return int(cfg.INPUT.CROP.SIZE[0]), int(cfg.INPUT.CROP.SIZE[1])
    return None


def _upsample(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


@META_ARCH_REGISTRY.register()
class VFMSegmentor(SegmentorBase):
    """A VFM backbone (frozen, LoRA) with the light head and optionally the refinement head."""

    def __init__(
        self,
        *,
        backbone: VFMBackbone,
        light_head: VFMNet | VFMMaskHead,
        refine_head: MGRNet | None,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        ignore_label: int = 255,
        sub_crop: int = 512,
        sub_crop_grid: int = 32,
        inference: InferenceSettings | None = None,
        train_pad_size: tuple[int, int] | None = None,
    ) -> None:
        """
        Args:
            backbone: maps (B, 3, H, W) to four (B, C, H/16, W/16) maps.
            light_head: features -> stride-4 logits (coarse / single-scale predictions):
                :class:`VFMNet` or the mask-classification :class:`VFMMaskHead`.
            refine_head: features + coarse logits -> stride-4 logits; None for "light".
            sub_crop: side of the full-resolution sub-crop of multi-scale training.
            sub_crop_grid: sub-crop offsets are multiples of it.
            inference: test-time strategy (whole / slide / coarse_to_fine); None: whole.
            train_pad_size: training batches are padded to at least this (h, w), images with 0
                after normalisation and labels with ``ignore_label``, as the original's data
                preprocessor pads to its crop size.
        """
        super().__init__(pixel_mean=pixel_mean, pixel_std=pixel_std)
        inference = inference or InferenceSettings()
        if inference.mode == "coarse_to_fine" and refine_head is None:
            raise ConfigError(
                "TEST.MODE='coarse_to_fine' needs MODEL.VFM_HEAD.TYPE 'ms' or 'ms_masked'"
            )
        self.backbone = backbone
        self.light_head = light_head
        self.refine_head = refine_head
        self.ignore_label = ignore_label
        # the mask head's feature pyramid has a stride-32 level
        scale = 2 if isinstance(light_head, VFMMaskHead) else 1
        self.size_divisibility = backbone.size_divisibility * scale
        self.sub_crop = sub_crop
        self.sub_crop_grid = sub_crop_grid
        self.inference_settings = inference
        self.train_pad_size = train_pad_size

    @classmethod
    def from_config(cls, cfg: CfgNode) -> VFMSegmentor:
        head_type = cfg.MODEL.VFM_HEAD.TYPE
        if head_type not in HEAD_TYPES:
            raise ConfigError(
                f"MODEL.VFM_HEAD.TYPE={head_type!r} is not one of {', '.join(HEAD_TYPES)}"
            )
        backbone_cls = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)
        if not issubclass(backbone_cls, VFMBackbone):
            raise ConfigError(
                f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} is not a VFM backbone "
                f"(DINOv2, EVA02, CLIPViT, SAMViT)"
            )
        backbone = build_backbone(cfg)
        shape = backbone.output_shape()
        refine_head = None
        if head_type in ("ms", "ms_masked"):
            refine_head = MGRNet.from_config(cfg, shape, masked=head_type == "ms_masked")
        if head_type == "mask_former":
            light_head = VFMMaskHead.from_config(cfg, shape)
        else:
            light_head = VFMNet.from_config(cfg, shape)
        return cls(
            backbone=backbone,
            light_head=light_head,
            refine_head=refine_head,
            pixel_mean=cfg.MODEL.PIXEL_MEAN,
            pixel_std=cfg.MODEL.PIXEL_STD,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            sub_crop=cfg.MODEL.VFM_HEAD.SUB_CROP,
            sub_crop_grid=cfg.MODEL.VFM_HEAD.SUB_CROP_GRID,
            inference=InferenceSettings.from_config(cfg),
            train_pad_size=_train_pad_size(cfg),
        )

    def forward(
        self, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Weighted losses (training) or per-image {"sem_seg": (K, height, width)} (eval).

        Args:
            batched_inputs: dicts with "image" uint8 (3, H, W) RGB; in training "sem_seg"
                int64 (H, W); optional "height", "width" (output size).
        """
        if self.training:
            images, labels = self._training_batch(batched_inputs)
            if isinstance(self.light_head, VFMMaskHead):
                return self.light_head.losses(list(self.backbone(images).values()), labels)
            if self.refine_head is None:
                return {"loss_sem_seg": self._ce(self.predict_coarse(images), labels)}
            return self._multi_scale_losses(images, labels)
        return [self._inference_one(x) for x in batched_inputs]

    # ------------------------------------------------------------------ prediction
    def predict_coarse(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone + light head: (B, 3, H, W) (multiples of 16) -> (B, K, H/4, W/4) logits."""
        return self.light_head(list(self.backbone(images).values()))

    def predict_refined(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Backbone + refinement head: images (B, 3, H, W), coarse logits of the same regions
        (B, K, h', w') -> (B, K, H/4, W/4) logits."""
        return self.refine_head(list(self.backbone(images).values()), context)

    def _padded(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Zero-pad (B, C, H, W) to multiples of the model's size divisibility."""
        div = self.size_divisibility
        h, w = images.shape[-2:]
        return F.pad(images, (0, -w % div, 0, -h % div)), h, w

    def whole_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Any-size (B, 3, H, W) -> light-head logits (B, K, H, W)."""
        padded, h, w = self._padded(images)
        return _upsample(self.predict_coarse(padded), padded.shape[-2:])[..., :h, :w]

    def refined_logits(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Any-size windows (B, 3, H, W) + coarse logits (B, K, H, W) -> (B, K, H, W) logits."""
        padded, h, w = self._padded(images)
        context, _, _ = self._padded(context)
        return _upsample(self.predict_refined(padded, context), padded.shape[-2:])[..., :h, :w]

    @torch.no_grad()
    def _inference_one(self, x: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = self.normalize(x["image"])[None]
        h, w = image.shape[-2:]
        logits = infer_logits(
            self.inference_settings,
            image,
            logits_fn=self.whole_logits,
            refine_fn=self.refined_logits if self.refine_head is not None else None,
        )
        out_size = output_size(x, h, w)
        if out_size != (h, w):
            logits = _upsample(logits, out_size)
        return {"sem_seg": logits[0].float().softmax(dim=0)}

    # -------------------------------------------------------------------- training
    def _training_batch(
        self, batched_inputs: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (B, 3, Hp, Wp) and labels (B, Hp, Wp), padded so that the half-size
        crop is still a multiple of the backbone's size divisibility."""
        for x in batched_inputs:
            training_label(x)
        div = self.size_divisibility * (1 if self.refine_head is None else 2)
        images, _ = pad_to_divisible([self.normalize(x["image"]) for x in batched_inputs], div)
        labels, _ = pad_to_divisible(
            [x["sem_seg"].to(self.device) for x in batched_inputs], div, self.ignore_label
        )
        if self.train_pad_size is not None:
            height, width = images.shape[-2:]
            pad = (
                0,
                max(self.train_pad_size[1] - width, 0),
                0,
                max(self.train_pad_size[0] - height, 0),
            )
            images, labels = F.pad(images, pad), F.pad(labels, pad, value=self.ignore_label)
        return images, labels.long()

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of stride-4 logits (B, K, h, w) upsampled to labels (B, H, W)."""
        return F.cross_entropy(
            _upsample(logits, labels.shape[-2:]).float(), labels, ignore_index=self.ignore_label
        )

    def sample_sub_crops(self, height: int, width: int, batch: int) -> torch.Tensor:
        """(B, 4) random (x0, y0, x1, y1) squares of side ``sub_crop``, offsets on the grid."""
        size, grid = self.sub_crop, self.sub_crop_grid
        if size > height or size > width:
            raise ConfigError(
                f"MODEL.VFM_HEAD.SUB_CROP={size} exceeds the training crop {height}x{width} "
                f"(INPUT.CROP.SIZE)"
            )
        y0 = torch.randint((height - size) // grid + 1, (batch,)) * grid
        x0 = torch.randint((width - size) // grid + 1, (batch,)) * grid
        return torch.stack([x0, y0, x0 + size, y0 + size], dim=1).to(self.device)

    def _multi_scale_losses(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Half-size whole crop -> light head; full-resolution sub-crop -> refinement head with
        the detached coarse logits of its region. Images (B, 3, H, W), labels (B, H, W)."""
        height, width = images.shape[-2:]
        half = (height // 2, width // 2)
        half_images = F.interpolate(images, size=half, mode="bilinear", align_corners=False)
        half_labels = F.interpolate(labels[:, None].float(), size=half, mode="nearest")[:, 0]
        coarse = self.predict_coarse(half_images)
        loss_coarse = self._ce(coarse, half_labels.long())

        boxes = self.sample_sub_crops(height, width, len(images))
        size = self.sub_crop
        sub_images = torch.stack(
            [img[:, y0 : y0 + size, x0 : x0 + size] for img, (x0, y0, _, _) in zip(images, boxes)]
        )
        sub_labels = torch.stack(
            [lab[y0 : y0 + size, x0 : x0 + size] for lab, (x0, y0, _, _) in zip(labels, boxes)]
        )
        context = region_logits(
            coarse.detach().float(), (height, width), boxes.float(), (size // 4, size // 4)
        )
        refined = self.predict_refined(sub_images, context)
        return {"loss_coarse": loss_coarse, "loss_refine": self._ce(refined, sub_labels)}
