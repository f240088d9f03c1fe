"""VFMSegmentor: a LoRA-tuned vision foundation model with light / refinement heads (DGVFM).

Head types (MODEL.VFM_HEAD.TYPE):

- ``light``: the whole crop through backbone + :class:`VFMNet`, one cross-entropy.
- ``mask_former``: the whole crop through backbone + the CLOUDS mask-classification head
  (:class:`VFMMaskHead`), set-criterion losses.
- ``mask2former``: the whole crop through backbone + the DGVFM repository's mmdet-style
  :class:`Mask2FormerHead` (its Rein / frozen-VFM systems), with Rein's linked queries.
- ``ms`` / ``ms_masked`` (multi-scale, as DGVFM's ``MsVFMEncoderDecoder``): (a) the crop at half
  size through backbone + the light head, its logits upsampled to the half-size label; (b) ONE
  full-resolution sub-crop box per batch (offsets ``randint(0, (margin + 1) // grid) * grid``,
  MODEL.VFM_HEAD.SUB_CROP_GRID) through backbone + the refinement head, with the detached
  half-size logits cropped at the box / 2 as context, supervised by the sub-crop label. The loss
  is the sum of both cross-entropies. ``ms_masked`` masks each refinement token with
  probability MODEL.VFM_HEAD.MASK_RATIO in training.

Cross-entropy as mmseg's ``avg_non_ignore=False``: summed over labelled pixels, divided by ALL
pixels (MODEL.VFM_HEAD.CE_AVG_NON_IGNORE True: by the labelled ones). The heads are chosen by
name in VFM_HEAD_REGISTRY and sit at ``decode_head`` / ``aux_decoder``, the original's names, so
its checkpoints' head entries load as they are.

Inference follows TEST.MODE (``clouds.modeling.inference``). Same model interface as CLOUDS: a
list of input dicts in, weighted losses (training) or ``{"sem_seg": (K, height, width)}`` out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.heads.base import DecodeHead, RefinementHead, check_head
from clouds.modeling.heads.mask2former import Mask2FormerHead
from clouds.modeling.heads.vfm_mask_head import VFMMaskHead
from clouds.modeling.inference import REFINING_MODES, InferenceSettings, LogitsFn, RefineFn
from clouds.modeling.meta_arch.vfm_base import (
    VFMSegmentorBase,
    build_vfm_backbone,
    half_size,
    unpadded_logits,
)
from clouds.modeling.registry import META_ARCH_REGISTRY, VFM_HEAD_REGISTRY, registered_class
from clouds.modeling.resize import bilinear

__all__ = ["HEAD_TYPES", "VFMSegmentor"]

HEAD_TYPES = ("light", "ms", "ms_masked", "mask_former", "mask2former")


@META_ARCH_REGISTRY.register()
class VFMSegmentor(VFMSegmentorBase):
    """A VFM backbone (frozen, LoRA) with the light head and optionally the refinement head."""

    # joint training: what the EMA teacher averages under TEACHER_SCOPE "head" (LoRA: "trainable")
    teacher_prefixes: tuple[str, ...] = ("decode_head.", "aux_decoder.")

    def __init__(
        self,
        *,
        backbone: VFMBackbone,
        decode_head: DecodeHead,
        aux_decoder: RefinementHead | None,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        ignore_label: int = 255,
        sub_crop: int = 512,
        sub_crop_grid: int = 32,
        inference: InferenceSettings | None = None,
        train_pad_size: tuple[int, int] | None = None,
        ce_avg_non_ignore: bool = False,
    ) -> None:
        """
        Args:
            backbone: maps (B, 3, H, W) to named (B, C, H/16, W/16) maps.
            decode_head: named maps -> stride-4 logits (coarse / single-scale predictions),
                e.g. :class:`VFMNet` or the mask-classification :class:`VFMMaskHead`.
            aux_decoder: named maps + coarse logits -> stride-16 logits (e.g. :class:`MGRNet`);
                None for "light".
            sub_crop: side of the full-resolution sub-crop of multi-scale training.
            sub_crop_grid: sub-crop offsets are multiples of it.
            ignore_label, inference, train_pad_size, ce_avg_non_ignore: see
                :class:`VFMSegmentorBase`.
        """
        super().__init__(
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            ignore_label=ignore_label,
            inference=inference,
            train_pad_size=train_pad_size,
            ce_avg_non_ignore=ce_avg_non_ignore,
        )
        check_head(decode_head, DecodeHead, "decode_head (MODEL.VFM_HEAD.LIGHT_HEAD_NAME)")
        if aux_decoder is not None:
            check_head(aux_decoder, RefinementHead, "aux_decoder (MODEL.VFM_HEAD.REFINE_HEAD_NAME)")
        mode = self.inference_settings.mode
        if mode in REFINING_MODES and aux_decoder is None:
            raise ConfigError(f"TEST.MODE={mode!r} needs MODEL.VFM_HEAD.TYPE 'ms' or 'ms_masked'")
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_decoder = aux_decoder
        self.size_divisibility = backbone.size_divisibility * decode_head.size_divisibility_factor
        self.sub_crop = sub_crop
        self.sub_crop_grid = sub_crop_grid

    @classmethod
    def from_config(cls, cfg: CfgNode) -> VFMSegmentor:
        head = cfg.MODEL.VFM_HEAD
        if head.TYPE not in HEAD_TYPES:
            raise ConfigError(
                f"MODEL.VFM_HEAD.TYPE={head.TYPE!r} is not one of {', '.join(HEAD_TYPES)}"
            )
        rein = cfg.MODEL.REIN
        if rein.ENABLED and rein.LINK_TOKEN_TO_QUERY and head.TYPE != "mask2former":
            raise ConfigError(
                f"MODEL.REIN.LINK_TOKEN_TO_QUERY links Rein's tokens to the queries of a "
                f"Mask2Former head, but MODEL.VFM_HEAD.TYPE is {head.TYPE!r}: set it False"
            )
        backbone = build_vfm_backbone(cfg)
        shape = backbone.output_shape()
        aux_decoder = None
        if head.TYPE in ("ms", "ms_masked"):
            refine_cls = registered_class(
                VFM_HEAD_REGISTRY,
                head.REFINE_HEAD_NAME,
                "MODEL.VFM_HEAD.REFINE_HEAD_NAME",
                RefinementHead,
            )
            aux_decoder = refine_cls.from_config(cfg, shape, masked=head.TYPE == "ms_masked")
        if head.TYPE == "mask_former":
            decode_head = VFMMaskHead.from_config(cfg, shape)
        elif head.TYPE == "mask2former":
            decode_head = Mask2FormerHead.from_config(cfg, shape)
        else:
            light_cls = registered_class(
                VFM_HEAD_REGISTRY,
                head.LIGHT_HEAD_NAME,
                "MODEL.VFM_HEAD.LIGHT_HEAD_NAME",
                DecodeHead,
            )
            decode_head = light_cls.from_config(cfg, shape)
        return cls(
            backbone=backbone,
            decode_head=decode_head,
            aux_decoder=aux_decoder,
            sub_crop=head.SUB_CROP,
            sub_crop_grid=head.SUB_CROP_GRID,
            **cls.config_args(cfg),
        )

    def losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head's own losses, the light head's cross-entropy, or the multi-scale losses
        (module docstring) of normalised images (B, 3, H, W) and labels (B, H, W)."""
        if self.decode_head.has_own_losses:
            features = self.backbone(images)
            return self.decode_head.losses(features, labels, **self._head_inputs())
        if self.aux_decoder is None:
            logits = bilinear(self.decode_head(self.backbone(images)), size=labels.shape[-2:])
            return {"loss_sem_seg": self._ce(logits, labels)}
        return self._multi_scale_losses(images, labels)

    # ------------------------------------------------------------------ prediction
    def _padded(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Zero-pad (B, C, H, W) to multiples of the model's size divisibility."""
        div = self.size_divisibility
        h, w = images.shape[-2:]
        return F.pad(images, (0, -w % div, 0, -h % div)), h, w

    def light_logits(self, images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Images (B, 3, H, W) -> light-head logits (B, K, *size): the stride-4 logits resized
        to ``size`` in one bilinear step (as mmseg's ``predict_by_feat``); inputs that are not
        multiples of the size divisibility are zero-padded and the padding cropped first."""
        padded, h, w = self._padded(images)
        features = self.backbone(padded)
        if padded.shape[-2:] == (h, w):
            return self.decode_head.logits_at(features, size, **self._head_inputs())
        logits = self.decode_head.logits_at(features, padded.shape[-2:], **self._head_inputs())
        return bilinear(logits[..., :h, :w], size=size)

    def _head_inputs(self) -> dict[str, torch.Tensor]:
        """Rein's linked queries of this step (after the backbone's forward) for a decode head
        that takes them, else nothing."""
        if not self.decode_head.takes_link_queries:
            return {}
        queries = self.backbone.link_queries()
        return {} if queries is None else {"queries": queries}

    def whole_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Any-size (B, 3, H, W) -> light-head logits (B, K, H, W)."""
        return self.light_logits(images, images.shape[-2:])

    def refined_logits(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Windows (B, 3, H, W) + coarse logits of the same regions (B, K, h', w') -> refined
        logits (B, K, H, W) (stride-16 outputs resized bilinearly)."""
        padded, h, w = self._padded(images)
        logits = self.aux_decoder(self.backbone(padded), context)
        return unpadded_logits(logits, padded.shape[-2:], h, w)

    def prediction_fns(self) -> tuple[LogitsFn, RefineFn | None]:
        """The light head's logits; the refinement head's with an ``aux_decoder``."""
        return self.light_logits, self.refined_logits if self.aux_decoder is not None else None

    # -------------------------------------------------------------------- training
    def train_divisibility(self) -> int:
        """With a refinement head, twice the size divisibility: the half-size crop is still a
        multiple of it."""
        return self.size_divisibility * (1 if self.aux_decoder is None else 2)

    def sample_sub_crop(self, height: int, width: int) -> tuple[int, int]:
        """(y0, x0) of the batch's sub-crop of side ``sub_crop``: offsets
        ``randint(0, (margin + 1) // grid) * grid`` drawn from NumPy's global generator, as the
        original's ``get_crop_bbox`` (so the torch draws of the step that follow are the
        original's too)."""
        size, grid = self.sub_crop, self.sub_crop_grid
        if size > height or size > width:
            raise ConfigError(
                f"MODEL.VFM_HEAD.SUB_CROP={size} exceeds the training crop {height}x{width} "
                f"(INPUT.CROP.SIZE)"
            )
        if (height, width) == (size, size):
            return 0, 0
        y0 = int(np.random.randint(0, max((height - size + 1) // grid, 1))) * grid
        x0 = int(np.random.randint(0, max((width - size + 1) // grid, 1))) * grid
        return y0, x0

    def _multi_scale_losses(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Half-size whole crop -> light head; one full-resolution sub-crop per batch ->
        refinement head with the detached half-size logits of its region. Images
        (B, 3, H, W), labels (B, H, W)."""
        height, width = images.shape[-2:]
        half_images, half_labels = half_size(images, labels)
        y0, x0 = self.sample_sub_crop(height, width)
        size = self.sub_crop
        sub_images = images[..., y0 : y0 + size, x0 : x0 + size]
        sub_labels = labels[..., y0 : y0 + size, x0 : x0 + size]
        half_features = self.backbone(half_images)
        sub_features = self.backbone(sub_images)
        coarse = bilinear(self.decode_head(half_features), size=half_labels.shape[-2:])
        context = coarse.detach()[..., y0 // 2 : (y0 + size) // 2, x0 // 2 : (x0 + size) // 2]
        refined = self.aux_decoder(sub_features, context, mask=self.aux_decoder.masks_tokens)
        return {
            "loss_coarse": self._ce(coarse, half_labels),
            "loss_refine": self._ce(bilinear(refined, size=(size, size)), sub_labels),
        }
