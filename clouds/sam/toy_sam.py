"""A toy segment-anything that finds masks in the image itself (quickstart, tests).

:class:`ToySam` is a segment-anything ``Sam`` whose parts compute instead of learn, so the
batched predictor (:class:`clouds.sam.SamBatchPredictor`) and the refinement use it through the
same code as a real SAM (``MODEL.CLOUDS.SAM.MODEL_TYPE "toy"``):

- the image encoder segments the image at three granularities: after a median filter, every
  pixel is described by its chromaticity (its colour divided by its brightness, which the toy
  renderer's textures, windows, stripes and speckle scale but do not change) and a lightly
  weighted log-brightness; k-means clusters these colours into many, some and few clusters,
  and the 4-connected parts of each cluster are the segments of the fine, medium and coarse
  level; the embedding is the three (S, S) maps of segment ids;
- the prompt encoder passes the point coordinates and labels through;
- the mask decoder answers a prompt with the segment that holds most of its foreground points,
  at each level (the small, medium and large multimask outputs), each scored by its stability:
  its IoU with the segment at the next level (the medium with the coarse one, the coarse with
  the medium one), as SAM's own stability score: an object that stays whole across
  granularities scores high, a fragment or a merger of objects low.

The cluster counts, the filter size and the feature weights are buffers, saved and loaded as
the checkpoint of the model type. No labels reach it: it sees pixels and prompt points only.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from segment_anything.modeling import Sam
from torch import nn

__all__ = ["ToyMaskDecoder", "ToyPromptEncoder", "ToySam", "ToySegmentingEncoder", "build_toy_sam"]

# clusters of the fine, medium and coarse segmentation
DEFAULT_CLUSTERS = (16, 10, 6)
# feature weights: chromaticity and log-brightness
DEFAULT_CHROMA_WEIGHT = 5.0
DEFAULT_BRIGHTNESS_WEIGHT = 0.1
# brightness offset of the chromaticity: dark, noisy pixels keep a greyish, stable chroma
_CHROMA_OFFSET = 0.3
_KMEANS_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-3)
_KMEANS_ATTEMPTS = 2
_KMEANS_SEED = 0


class ToySegmentingEncoder(nn.Module):
    """(B, 3, S, S) colours in [0, 1] -> (B, 3, S, S) segment ids (float) of the fine, medium
    and coarse level (see the module docstring)."""

    def __init__(
        self,
        *,
        img_size: int = 128,
        kernel: int = 3,
        clusters: tuple[int, int, int] = DEFAULT_CLUSTERS,
        chroma_weight: float = DEFAULT_CHROMA_WEIGHT,
        brightness_weight: float = DEFAULT_BRIGHTNESS_WEIGHT,
    ) -> None:
        super().__init__()
        if kernel not in (3, 5):
            raise ValueError(f"The toy SAM's median filter must be 3 or 5 pixels, got {kernel}")
        if len(clusters) != 3 or any(k < 2 for k in clusters):
            raise ValueError(f"The toy SAM needs 3 cluster counts of at least 2, got {clusters}")
        if chroma_weight <= 0 or brightness_weight < 0:
            raise ValueError(
                "The toy SAM's feature weights must be chroma > 0 and brightness >= 0, got "
                f"{chroma_weight}, {brightness_weight}"
            )
        self.img_size = img_size
        self.register_buffer("kernel", torch.tensor(kernel))
        self.register_buffer("clusters", torch.tensor(clusters))
        self.register_buffer("chroma_weight", torch.tensor(chroma_weight))
        self.register_buffer("brightness_weight", torch.tensor(brightness_weight))

    def features(self, image: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 -> (S * S, 4) float32 weighted chromaticity and log-brightness."""
        colours = cv2.medianBlur(np.ascontiguousarray(image), int(self.kernel)) / 255.0
        total = colours.sum(axis=2, keepdims=True)
        chroma = colours / (total + _CHROMA_OFFSET) * float(self.chroma_weight)
        brightness = np.log(total + 0.05) * float(self.brightness_weight)
        return np.concatenate([chroma, brightness], axis=2).reshape(-1, 4).astype(np.float32)

    def segments(self, image: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 -> (3, S, S) int64 segment ids of the three levels."""
        height, width = image.shape[:2]
        features = self.features(image)
        levels = []
        for count in self.clusters.tolist():
            cv2.setRNGSeed(_KMEANS_SEED)  # the same image always gives the same segments
            _, assignment, _ = cv2.kmeans(
                features, count, None, _KMEANS_CRITERIA, _KMEANS_ATTEMPTS, cv2.KMEANS_PP_CENTERS
            )
            cluster = cv2.medianBlur(assignment.reshape(height, width).astype(np.uint8), 3)
            segment = np.zeros((height, width), np.int64)
            offset = 0
            for k in range(count):
                inside = cluster == k
                parts, components = cv2.connectedComponents(inside.astype(np.uint8), connectivity=4)
                segment[inside] = components[inside] + offset
                offset += parts
            levels.append(segment)
        return np.stack(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        segments = np.stack([self.segments(i) for i in images]).astype(np.float32)
        return torch.from_numpy(segments).to(x.device)


class ToyPromptEncoder(nn.Module):
    """Points pass through: sparse "embeddings" are (B, N, 3) rows of (x, y, label)."""

    def get_dense_pe(self) -> torch.Tensor:
        return torch.zeros(0)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if points is None or boxes is not None:
            raise ValueError("The toy SAM takes point prompts only")
        coords, labels = points
        return torch.cat([coords.float(), labels[..., None].float()], dim=-1), masks


class ToyMaskDecoder(nn.Module):
    """The segment under most of the prompt's points, at the fine, medium and coarse level."""

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, S, S) segment ids and B prompts -> (B, 3, S, S) mask logits and (B, 3)
        scores (one mask and score per prompt without ``multimask_output``); ``mask_input`` is
        ignored."""
        segments = image_embeddings[0].cpu().numpy().astype(np.int64)
        logits, scores = [], []
        for prompt in sparse_prompt_embeddings.cpu().numpy():
            mask_logits, mask_scores = _masks_of_prompt(segments, prompt)
            logits.append(mask_logits)
            scores.append(mask_scores)
        device = image_embeddings.device
        low_res = torch.from_numpy(np.stack(logits)).to(device)
        iou = torch.from_numpy(np.stack(scores)).to(device)
        if not multimask_output:
            best = iou.argmax(dim=1)
            rows = torch.arange(len(best), device=device)
            return low_res[rows, best][:, None], iou[rows, best][:, None]
        return low_res, iou


def _masks_of_prompt(segments: np.ndarray, prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3, S, S) segment ids, (N, 3) points -> (3, S, S) float32 logits, (3,) float32 scores."""
    size = segments.shape[1]
    points = prompt[prompt[:, 2] > 0, :2]
    if len(points) == 0:
        return np.full((3, size, size), -1.0, np.float32), np.zeros(3, np.float32)
    cols = np.clip(np.floor(points[:, 0]).astype(int), 0, size - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, size - 1)
    masks = []
    for level in segments:
        ids, counts = np.unique(level[rows, cols], return_counts=True)
        masks.append(level == ids[counts.argmax()])
    scores = [_iou(masks[0], masks[1]), _iou(masks[1], masks[2]), _iou(masks[2], masks[1])]
    logits = np.where(np.stack(masks), 1.0, -1.0).astype(np.float32)
    return logits, np.asarray(scores, np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


class ToySam(Sam):
    """A ``Sam`` of the toy encoder, prompt encoder and decoder; images scaled to [0, 1]."""

    def __init__(
        self,
        *,
        img_size: int = 128,
        kernel: int = 3,
        clusters: tuple[int, int, int] = DEFAULT_CLUSTERS,
        chroma_weight: float = DEFAULT_CHROMA_WEIGHT,
        brightness_weight: float = DEFAULT_BRIGHTNESS_WEIGHT,
    ) -> None:
        super().__init__(
            image_encoder=ToySegmentingEncoder(
                img_size=img_size,
                kernel=kernel,
                clusters=clusters,
                chroma_weight=chroma_weight,
                brightness_weight=brightness_weight,
            ),
            prompt_encoder=ToyPromptEncoder(),
            mask_decoder=ToyMaskDecoder(),
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[255.0, 255.0, 255.0],
        )


def build_toy_sam(
    *,
    img_size: int = 128,
    kernel: int = 3,
    clusters: tuple[int, int, int] = DEFAULT_CLUSTERS,
    chroma_weight: float = DEFAULT_CHROMA_WEIGHT,
    brightness_weight: float = DEFAULT_BRIGHTNESS_WEIGHT,
) -> ToySam:
    """The toy SAM (see the module docstring); ``img_size`` is the long side images are
    resized to, ``kernel`` the side of the median filter, ``clusters`` the k-means cluster
    counts of the fine, medium and coarse level, ``chroma_weight`` and ``brightness_weight``
    the weights of chromaticity and log-brightness in the clustered features."""
    return ToySam(
        img_size=img_size,
        kernel=kernel,
        clusters=clusters,
        chroma_weight=chroma_weight,
        brightness_weight=brightness_weight,
    )
