"""A toy segment-anything that finds masks in the image itself (quickstart, tests).

:class:`ToySam` is a segment-anything ``Sam`` whose parts compute instead of learn, so the
batched predictor (:class:`clouds.sam.SamBatchPredictor`) and the refinement use it through the
same code as a real SAM (``MODEL.CLOUDS.SAM.MODEL_TYPE "toy"``):

- the image encoder flattens the image (mean-shift filtering, which pulls every pixel to the
  mode of the colours around it: textures, sensor noise and soft light fall into flat patches
  with the objects' edges kept, then a median filter) and returns the flattened colours as its
  embedding, at the input resolution;
- the prompt encoder passes the point coordinates and labels through;
- the mask decoder grows a region from the foreground points: pixels whose smoothed colour lies
  within a tolerance of the points' median colour, connected to a point; three tolerances give
  the three multimask outputs (small, medium, large), each scored by the share of its border
  that sits on a clear edge (pixels 2 pixels outside it farther from the points' colour
  than the largest tolerance and 1.5x its own): a mask cut short inside an object or leaking out of it scores low.

The tolerances and the filters' sizes are buffers, saved and loaded as the checkpoint of the
model type. No labels reach it: it sees pixels and prompt points only.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from segment_anything.modeling import Sam
from torch import nn

__all__ = ["ToyMaskDecoder", "ToyPromptEncoder", "ToySam", "ToySmoothingEncoder", "build_toy_sam"]

DEFAULT_TOLERANCES = (0.05, 0.1, 0.18)
# mean-shift filter: spatial window radius (px) and colour window radius (0-255 RGB units)
DEFAULT_SPATIAL_RADIUS = 12
DEFAULT_COLOUR_RADIUS = 40
_EDGE_FACTOR = 1.5


class ToySmoothingEncoder(nn.Module):
    """(B, 3, S, S) colours in [0, 1] -> (B, 3, S, S) mean-shift then median-filtered colours
    (textures, noise and soft light flattened, edges kept)."""

    def __init__(
        self,
        *,
        img_size: int = 128,
        kernel: int = 3,
        spatial_radius: int = DEFAULT_SPATIAL_RADIUS,
        colour_radius: int = DEFAULT_COLOUR_RADIUS,
    ) -> None:
        super().__init__()
        if kernel not in (3, 5):
            raise ValueError(f"The toy SAM's median filter must be 3 or 5 pixels, got {kernel}")
        if spatial_radius < 1 or colour_radius < 1:
            raise ValueError(
                "The toy SAM's mean-shift radii must be positive, got "
                f"spatial {spatial_radius}, colour {colour_radius}"
            )
        self.img_size = img_size
        self.register_buffer("kernel", torch.tensor(kernel))
        self.register_buffer("spatial_radius", torch.tensor(spatial_radius))
        self.register_buffer("colour_radius", torch.tensor(colour_radius))

    def _flatten(self, image: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 -> (S, S, 3) uint8."""
        shifted = cv2.pyrMeanShiftFiltering(
            np.ascontiguousarray(image), int(self.spatial_radius), int(self.colour_radius)
        )
        return cv2.medianBlur(shifted, int(self.kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        smooth = np.stack([self._flatten(i) for i in images])
        return torch.from_numpy(smooth).permute(0, 3, 1, 2).to(x.device, torch.float32) / 255.0


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
    """Region growing from the prompt points at three tolerances."""

    def __init__(self, *, tolerances: tuple[float, float, float] = DEFAULT_TOLERANCES) -> None:
        super().__init__()
        if len(tolerances) != 3 or any(t <= 0 for t in tolerances):
            raise ValueError(f"The toy SAM needs 3 positive tolerances, got {tolerances}")
        self.register_buffer("tolerances", torch.tensor(tolerances, dtype=torch.float32))

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, S, S) embedding and B prompts -> (B, 3, S, S) mask logits and (B, 3) scores
        (one mask and score per prompt without ``multimask_output``); ``mask_input`` is
        ignored."""
        colours = image_embeddings[0].permute(1, 2, 0).cpu().numpy()
        logits, scores = [], []
        for prompt in sparse_prompt_embeddings.cpu().numpy():
            mask_logits, mask_scores = self._grow(colours, prompt)
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

    def _grow(self, colours: np.ndarray, prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, S, 3) colours, (N, 3) points -> (3, S, S) float32 logits, (3,) float32 scores."""
        size = colours.shape[0]
        points = prompt[prompt[:, 2] > 0, :2]
        cols = np.clip(np.floor(points[:, 0]).astype(int), 0, size - 1)
        rows = np.clip(np.floor(points[:, 1]).astype(int), 0, size - 1)
        if len(points) == 0:
            return np.full((3, size, size), -1.0, np.float32), np.zeros(3, np.float32)
        distance = np.linalg.norm(colours - np.median(colours[rows, cols], axis=0), axis=2)
        logits, scores = [], []
        near, far = np.ones((3, 3), np.uint8), np.ones((5, 5), np.uint8)
        largest = float(self.tolerances.max())
        for tolerance in self.tolerances.tolist():
            mask = _connected_to_points(distance < tolerance, rows, cols)
            pixels = mask.astype(np.uint8)
            # the ring 2 pixels outside the mask: past the pixels that smoothing blends
            ring = cv2.dilate(pixels, far).astype(bool) & ~cv2.dilate(pixels, near).astype(bool)
            edge = distance[ring] > max(_EDGE_FACTOR * tolerance, largest)
            scores.append(edge.mean() if mask.any() and ring.any() else 0.0)
            logits.append(np.where(mask, 1.0, -1.0))
        return np.stack(logits).astype(np.float32), np.asarray(scores, np.float32)


def _connected_to_points(inside: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(S, S) bool -> the 4-connected parts of ``inside`` holding one of the points."""
    _, components = cv2.connectedComponents(inside.astype(np.uint8), connectivity=4)
    seeds = components[rows, cols]
    seeds = seeds[inside[rows, cols]]
    return np.isin(components, seeds) & inside


class ToySam(Sam):
    """A ``Sam`` of the toy encoder, prompt encoder and decoder; images scaled to [0, 1]."""

    def __init__(
        self,
        *,
        img_size: int = 128,
        kernel: int = 3,
        tolerances: tuple[float, float, float] = DEFAULT_TOLERANCES,
    ) -> None:
        super().__init__(
            image_encoder=ToySmoothingEncoder(img_size=img_size, kernel=kernel),
            prompt_encoder=ToyPromptEncoder(),
            mask_decoder=ToyMaskDecoder(tolerances=tolerances),
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[255.0, 255.0, 255.0],
        )


def build_toy_sam(
    *,
    img_size: int = 128,
    kernel: int = 3,
    tolerances: tuple[float, float, float] = DEFAULT_TOLERANCES,
) -> ToySam:
    """The toy SAM (see the module docstring); ``img_size`` is the long side images are
    resized to, ``kernel`` the side of the median filter after the mean shift, ``tolerances`` the colour distances (RGB in
    [0, 1]) of its three masks."""
    return ToySam(img_size=img_size, kernel=kernel, tolerances=tolerances)
