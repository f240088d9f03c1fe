"""Batched SAM prediction: each image is encoded once, prompts are decoded in batches.

segment-anything's ``SamPredictor`` holds one image and returns every multimask output at full
resolution. :class:`SamBatchPredictor` encodes a whole list of images in one image-encoder call,
decodes point prompts ``prompt_batch_size`` at a time, and returns SAM's low-resolution logits
so that callers upsample only the masks they keep (:meth:`SamBatchPredictor.upscale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

__all__ = ["PromptPredictor", "SamBatchPredictor"]


class PromptPredictor(Protocol):
    """What the refinement needs from a promptable segmenter (SAM or a test stand-in)."""

    def set_images(self, images: Sequence[torch.Tensor]) -> None:
        """Encode ``images``, each (3, H, W) uint8 RGB, for the following predictions."""

    def predict(
        self,
        image_index: int,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode B prompts on image ``image_index`` with multiple masks per prompt.

        Args:
            point_coords: (B, N, 2) float (x, y) pixel coordinates in the original image.
            point_labels: (B, N) int, 1 foreground, 0 background.
            mask_input: (B, 1, h, w) low-resolution logits of a previous prediction, or None.

        Returns:
            iou_predictions (B, C) and low-resolution mask logits (B, C, h, w).
        """

    def upscale(self, image_index: int, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, h, w) low-resolution logits -> (B, H, W) bool masks at the original size."""

    def to(self, device: torch.device | str) -> PromptPredictor:
        """Move the underlying model to ``device``."""


class SamBatchPredictor:
    """Prompted mask prediction with a frozen SAM over a batch of images."""

    def __init__(self, *, model: Sam, prompt_batch_size: int = 64) -> None:
        """
        Args:
            model: a segment-anything (or MobileSAM) ``Sam``, frozen.
            prompt_batch_size: prompts decoded per mask-decoder call.
        """
        if prompt_batch_size < 1:
            raise ValueError(
                f"MODEL.CLOUDS.SAM.PROMPT_BATCH_SIZE must be >= 1, got {prompt_batch_size}"
            )
        self.model = model
        self.prompt_batch_size = prompt_batch_size
        self._features: torch.Tensor | None = None
        self._input_sizes: list[tuple[int, int]] = []
        self._original_sizes: list[tuple[int, int]] = []

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def img_size(self) -> int:
        return self.model.image_encoder.img_size

    def to(self, device: torch.device | str) -> SamBatchPredictor:
        """Move SAM to ``device``; encoded images are dropped."""
        self.model.to(device)
        self._features = None
        return self

    @torch.no_grad()
    def set_images(self, images: Sequence[torch.Tensor]) -> None:
        """Resize each (3, H, W) uint8 image to SAM's long side (PIL bilinear, as the original's
        ``apply_image``), pad and encode. Masks come back at the image's own size, which is what
        the original tells SAM for its 768x768 generated images.

        In eval mode the images are encoded in one call. In training mode (the original's, see
        :class:`clouds.sam.SamRefiner`) each image is encoded alone, in order, as the original's
        one-image predictor does: BatchNorm layers (MobileSAM's) normalise with that image's
        statistics and update their running statistics once per image."""
        batch = []
        self._input_sizes, self._original_sizes = [], []
        for image in images:
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"SAM expects (3, H, W) RGB images, got shape {tuple(image.shape)}"
                )
            h, w = image.shape[-2:]
            size = ResizeLongestSide.get_preprocess_shape(h, w, self.img_size)
            # as the original: segment-anything's PIL resize of the uint8 image
            resized = ResizeLongestSide(self.img_size).apply_image(
                image.permute(1, 2, 0).to(torch.uint8).cpu().numpy()
            )
            resized = torch.from_numpy(resized).permute(2, 0, 1).to(self.device, torch.float32)
            batch.append(self.model.preprocess(resized))
            self._input_sizes.append(size)
            self._original_sizes.append((h, w))
        if not batch:
            self._features = None
        elif self.model.training:
            self._features = torch.cat([self.model.image_encoder(x[None]) for x in batch])
        else:
            self._features = self.model.image_encoder(torch.stack(batch))

    @torch.no_grad()
    def predict(
        self,
        image_index: int,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`PromptPredictor.predict`; decodes ``prompt_batch_size`` prompts per call."""
        if self._features is None or not 0 <= image_index < len(self._features):
            raise RuntimeError(f"Image {image_index} was not encoded: call set_images first")
        if len(point_coords) == 0:
            raise ValueError("predict needs at least one prompt")
        (h, w), (in_h, in_w) = self._original_sizes[image_index], self._input_sizes[image_index]
        scale = torch.tensor([in_w / w, in_h / h], device=self.device)
        coords = point_coords.to(self.device, torch.float32) * scale
        labels = point_labels.to(self.device, torch.int)
        embedding = self._features[image_index : image_index + 1]
        dense_pe = self.model.prompt_encoder.get_dense_pe()
        ious, logits = [], []
        for start in range(0, len(coords), self.prompt_batch_size):
            chunk = slice(start, start + self.prompt_batch_size)
            masks = None if mask_input is None else mask_input[chunk].to(self.device)
            sparse, dense = self.model.prompt_encoder(
                points=(coords[chunk], labels[chunk]), boxes=None, masks=masks
            )
            low_res, iou = self.model.mask_decoder(
                image_embeddings=embedding,
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            ious.append(iou)
            logits.append(low_res)
        return torch.cat(ious), torch.cat(logits)

    @torch.no_grad()
    def upscale(self, image_index: int, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, h, w) logits -> (B, H, W) bool masks, ``prompt_batch_size`` at a time."""
        input_size = self._input_sizes[image_index]
        original_size = self._original_sizes[image_index]
        masks = []
        for start in range(0, len(low_res_logits), self.prompt_batch_size):
            chunk = low_res_logits[start : start + self.prompt_batch_size, None]
            full = self.model.postprocess_masks(chunk, input_size, original_size)
            masks.append(full[:, 0] > self.model.mask_threshold)
        if not masks:
            return torch.zeros((0, *original_size), dtype=torch.bool, device=self.device)
        return torch.cat(masks)
