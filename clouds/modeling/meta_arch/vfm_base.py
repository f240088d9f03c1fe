"""What the DGVFM segmentors (:class:`VFMSegmentor`, :class:`MultiScaleSegmentor`,
:class:`HRDASegmentor`) share: their common config arguments, padded training batches, mmseg's
cross-entropy and per-image prediction through TEST.MODE."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.inference import InferenceSettings, LogitsFn, RefineFn, infer_logits
from clouds.modeling.meta_arch.base import (
    SegmentorBase,
    build_backbone,
    output_size,
    training_label,
)
from clouds.modeling.meta_arch.image_list import pad_to_divisible
from clouds.modeling.registry import BACKBONE_REGISTRY, registered_class
from clouds.modeling.resize import bilinear

__all__ = ["VFMSegmentorBase", "build_vfm_backbone", "half_size", "unpadded_logits"]


def half_size(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The coarse branch's input of multi-scale training: images (B, 3, H, W) resized bilinearly
    and labels (B, H, W) by nearest to half size."""
    half_labels = F.interpolate(labels[:, None].float(), scale_factor=0.5, mode="nearest")
    return bilinear(images, scale_factor=0.5), half_labels[:, 0].long()


def unpadded_logits(
    logits: torch.Tensor, padded_size: Sequence[int], h: int, w: int
) -> torch.Tensor:
    """Logits (B, K, h', w') of an input zero-padded from (h, w) to ``padded_size`` -> (B, K, h, w):
    resized to the padded size and the padding cropped first when there is padding."""
    if tuple(padded_size) != (h, w):
        logits = bilinear(logits, size=padded_size)[..., :h, :w]
    return bilinear(logits, size=(h, w))


def _train_pad_size(cfg: CfgNode) -> tuple[int, int] | None:
    """INPUT.CROP.SIZE with INPUT.VFM_PIPELINE.PAD_TO_CROP (DGVFM's pipelines), else None."""
    if cfg.INPUT.VFM_PIPELINE.PAD_TO_CROP and cfg.INPUT.CROP.ENABLED:
        return int(cfg.INPUT.CROP.SIZE[0]), int(cfg.INPUT.CROP.SIZE[1])
    return None


def build_vfm_backbone(cfg: CfgNode) -> VFMBackbone:
    """:func:`build_backbone` for a DGVFM segmentor.

    Raises:
        ConfigError: MODEL.BACKBONE.NAME names no VFM backbone (checked before building).
    """
    backbone_cls = registered_class(
        BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME"
    )
    if not issubclass(backbone_cls, VFMBackbone):
        raise ConfigError(
            f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} is not a VFM backbone "
            f"(DINOv2, EVA02, CLIPViT, SAMViT)"
        )
    return build_backbone(cfg)


class VFMSegmentorBase(SegmentorBase, ABC):
    """A segmentor of normalised images trained with mmseg's cross-entropy on padded batches.

    Subclasses set ``size_divisibility`` (training batches are padded to multiples of
    :meth:`train_divisibility`) and implement :meth:`losses` (training) and
    :meth:`prediction_fns` (test).
    """

    size_divisibility: int

    def __init__(
        self,
        *,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        ignore_label: int = 255,
        inference: InferenceSettings | None = None,
        train_pad_size: tuple[int, int] | None = None,
        ce_avg_non_ignore: bool = False,
    ) -> None:
        """
        Args:
            pixel_mean, pixel_std: per-channel statistics (0-255 RGB) of the normalisation.
            ignore_label: label value of unlabelled pixels.
            inference: test-time strategy (``clouds.modeling.inference``); None: whole.
            train_pad_size: training batches are padded to at least this (h, w), images with 0
                after normalisation and labels with ``ignore_label``, as the original's data
                preprocessor pads to its crop size.
            ce_avg_non_ignore: cross-entropy averaged over labelled pixels only (ours) instead
                of all pixels (mmseg's default, the original's).
        """
        super().__init__(pixel_mean=pixel_mean, pixel_std=pixel_std)
        self.ignore_label = ignore_label
        self.inference_settings = inference or InferenceSettings()
        self.train_pad_size = train_pad_size
        self.ce_avg_non_ignore = ce_avg_non_ignore

    @staticmethod
    def config_args(cfg: CfgNode) -> dict[str, Any]:
        """The ``__init__`` arguments above from the config (MODEL.PIXEL_MEAN / PIXEL_STD,
        MODEL.SEM_SEG_HEAD.IGNORE_VALUE, TEST.*, INPUT.VFM_PIPELINE.PAD_TO_CROP with
        INPUT.CROP.SIZE, MODEL.VFM_HEAD.CE_AVG_NON_IGNORE)."""
        return {
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_label": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "inference": InferenceSettings.from_config(cfg),
            "train_pad_size": _train_pad_size(cfg),
            "ce_avg_non_ignore": cfg.MODEL.VFM_HEAD.CE_AVG_NON_IGNORE,
        }

    def train_divisibility(self) -> int:
        """Training batches are padded to multiples of it."""
        return self.size_divisibility

    def _training_batch(
        self, batched_inputs: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (B, 3, Hp, Wp) and labels (B, Hp, Wp) int64, padded to multiples of
        :meth:`train_divisibility`, then to at least ``train_pad_size``."""
        for x in batched_inputs:
            training_label(x)
        div = self.train_divisibility()
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
        """Cross-entropy of logits (B, K, H, W) against labels (B, H, W): summed over labelled
        pixels / all pixels (mmseg ``avg_non_ignore=False``), or / labelled ones. Computed in
        float32 at least (half-precision logits are promoted; float64 ones stay float64)."""
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.ce_avg_non_ignore:
            return F.cross_entropy(logits, labels, ignore_index=self.ignore_label)
        per_pixel = F.cross_entropy(
            logits, labels, ignore_index=self.ignore_label, reduction="none"
        )
        return per_pixel.mean()

    def forward(
        self, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Weighted losses (training) or per-image {"sem_seg": (K, height, width)} (eval).

        Args:
            batched_inputs: dicts with "image" uint8 (3, H, W) RGB; in training "sem_seg"
                int64 (H, W); optional "height", "width" (output size).
        """
        if self.training:
            return self.losses(*self._training_batch(batched_inputs))
        return [self._inference_one(x) for x in batched_inputs]

    @abstractmethod
    def losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted training losses of normalised images (B, 3, H, W) and labels (B, H, W)."""

    @abstractmethod
    def prediction_fns(self) -> tuple[LogitsFn, RefineFn | None]:
        """What TEST.MODE's strategy predicts with: logits of images or windows at a size, and
        the refinement of windows given their coarse logits (None: no refining mode)."""

    @torch.no_grad()
    def _inference_one(self, x: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{"sem_seg": (K, height, width)} class probabilities of one input dict: its image
        through TEST.MODE's strategy, the logits resized (bilinear) to the asked output size."""
        image = self.normalize(x["image"])[None]
        h, w = image.shape[-2:]
        logits_fn, refine_fn = self.prediction_fns()
        logits = infer_logits(
            self.inference_settings, image, logits_fn=logits_fn, refine_fn=refine_fn
        )
        out_size = output_size(x, h, w)
        if out_size != tuple(logits.shape[-2:]):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return {"sem_seg": logits[0].float().softmax(dim=0)}
