"""SAM refinement of pseudo-labels (the CLOUDS recipe).

For every image: connected regions of each predicted class above the size threshold get point
prompts; SAM encodes the image once and decodes every region's prompt (all its points together,
all foreground) with multiple masks; the mask with the best predicted IoU is kept; optionally a
second pass feeds that mask's low-resolution logits back as ``mask_input``; masks are merged
into a label map where pixels no mask covers keep the teacher's label ("teacher") or become the
ignore label ("ignore").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from clouds.config import CfgNode
from clouds.sam.build import build_sam
from clouds.sam.merge import merge_masks
from clouds.sam.points import SELECTION_MODES, find_regions, scaled_size_threshold, select_points
from clouds.sam.predictor import PromptPredictor, SamBatchPredictor

__all__ = ["UNCOVERED_MODES", "SamRefiner"]

UNCOVERED_MODES = ("teacher", "ignore")


class SamRefiner:
    """Refine label maps with a promptable segmenter (SAM)."""

    def __init__(
        self,
        *,
        predictor: PromptPredictor,
        num_points: int = 5,
        size_threshold: int = 5000,
        size_reference: tuple[int, int] = (768, 768),
        selection_mode: str = "random",
        erosion: bool = False,
        erosion_size: int = 3,
        refinement: bool = False,
        rm_intersection: bool = True,
        uncovered: str = "teacher",
        ignore_label: int = 255,
    ) -> None:
        """
        Args:
            predictor: SAM (or a stand-in) implementing :class:`PromptPredictor`.
            num_points: point prompts per region.
            size_threshold: smallest region prompted, in pixels at ``size_reference``
                (scaled down by the area ratio on smaller images).
            size_reference: (H, W) image size at which ``size_threshold`` holds.
            selection_mode: "random" or "interior" (see :func:`select_points`).
            erosion: erode regions before choosing points.
            erosion_size: erosion kernel side.
            refinement: second pass with the best mask's logits as ``mask_input``.
            rm_intersection: pixels claimed by masks of different classes get no mask label.
            uncovered: label of pixels no mask covers: "teacher" or "ignore".
            ignore_label: the ignore value of label maps.
        """
        if selection_mode not in SELECTION_MODES:
            raise ValueError(
                f"MODEL.CLOUDS.SAM.SELECTION_MODE must be one of {SELECTION_MODES}, "
                f"got {selection_mode!r}"
            )
        if uncovered not in UNCOVERED_MODES:
            raise ValueError(
                f"MODEL.CLOUDS.SAM.UNCOVERED must be one of {UNCOVERED_MODES}, got {uncovered!r}"
            )
        if num_points < 1:
            raise ValueError(f"MODEL.CLOUDS.SAM.NUM_POINTS must be >= 1, got {num_points}")
        self.predictor = predictor
        self.num_points = num_points
        self.size_threshold = size_threshold
        self.size_reference = tuple(size_reference)
        self.selection_mode = selection_mode
        self.erosion = erosion
        self.erosion_size = erosion_size
        self.refinement = refinement
        self.rm_intersection = rm_intersection
        self.uncovered = uncovered
        self.ignore_label = ignore_label

    @classmethod
    def from_config(cls, cfg: CfgNode, predictor: PromptPredictor | None = None) -> SamRefiner:
        """Build from ``MODEL.CLOUDS.SAM.*``; the SAM is built on CPU (move it with ``to``)."""
        sam_cfg = cfg.MODEL.CLOUDS.SAM
        if predictor is None:
            model = build_sam(sam_cfg.MODEL_TYPE, sam_cfg.CHECKPOINT)
            predictor = SamBatchPredictor(model=model, prompt_batch_size=sam_cfg.PROMPT_BATCH_SIZE)
        return cls(
            predictor=predictor,
            num_points=sam_cfg.NUM_POINTS,
            size_threshold=sam_cfg.SIZE_THRESHOLD,
            size_reference=tuple(sam_cfg.SIZE_REFERENCE),
            selection_mode=sam_cfg.SELECTION_MODE,
            erosion=sam_cfg.EROSION,
            erosion_size=sam_cfg.EROSION_SIZE,
            refinement=sam_cfg.REFINEMENT,
            rm_intersection=sam_cfg.RM_INTERSECTION,
            uncovered=sam_cfg.UNCOVERED,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        )

    def to(self, device: torch.device | str) -> SamRefiner:
        """Move the predictor's model to ``device``."""
        self.predictor.to(device)
        return self

    def prompts(
        self, label_map: np.ndarray, generator: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point prompts of one label map.

        Args:
            label_map: (H, W) integer class ids.

        Returns:
            points (R, num_points, 2) float32 (x, y) and class ids (R,) int64 of the R regions.
        """
        min_area = scaled_size_threshold(self.size_threshold, label_map.shape, self.size_reference)
        regions = find_regions(label_map, min_area=min_area, ignore_label=self.ignore_label)
        points = [
            select_points(
                region.mask,
                num_points=self.num_points,
                mode=self.selection_mode,
                erosion=self.erosion,
                erosion_size=self.erosion_size,
                generator=generator,
            )
            for region in regions
        ]
        classes = np.array([region.class_id for region in regions], dtype=np.int64)
        if not points:
            return np.zeros((0, self.num_points, 2), np.float32), classes
        return np.stack(points), classes

    @torch.no_grad()
    def refine(
        self,
        images: Sequence[torch.Tensor],
        label_maps: Sequence[torch.Tensor],
        *,
        generator: np.random.Generator,
    ) -> list[torch.Tensor]:
        """Refine each label map with SAM prompted on its image.

        Args:
            images: N images, each (3, H, W) uint8 RGB.
            label_maps: N teacher label maps, each (H, W) int64, same size as its image.
            generator: random source of the point selection.

        Returns:
            N refined label maps, each (H, W) int64 on the device of its input label map.
        """
        if len(images) != len(label_maps):
            raise ValueError(f"Got {len(images)} images but {len(label_maps)} label maps")
        for image, label in zip(images, label_maps):
            if tuple(image.shape[-2:]) != tuple(label.shape):
                raise ValueError(
                    f"Image of size {tuple(image.shape[-2:])} and label map of size "
                    f"{tuple(label.shape)} differ"
                )
        prompts = [self.prompts(label.cpu().numpy(), generator) for label in label_maps]
        if any(len(classes) for _, classes in prompts):
            self.predictor.set_images(images)
        refined = []
        for index, (label, (points, classes)) in enumerate(zip(label_maps, prompts)):
            fallback = (
                label.clone()
                if self.uncovered == "teacher"
                else torch.full_like(label, self.ignore_label)
            )
            if len(classes) == 0:
                refined.append(fallback)
                continue
            masks = self._best_masks(index, torch.from_numpy(points))
            refined.append(
                merge_masks(
                    masks.to(label.device),
                    torch.from_numpy(classes).to(label.device),
                    fallback,
                    rm_intersection=self.rm_intersection,
                )
            )
        return refined

    def _best_masks(self, image_index: int, points: torch.Tensor) -> torch.Tensor:
        """(R, num_points, 2) prompts -> (R, H, W) bool masks of SAM's best-scored outputs."""
        labels = torch.ones(points.shape[:2], dtype=torch.int)
        iou, logits = self.predictor.predict(image_index, points, labels)
        best = _pick_best(iou, logits)
        if self.refinement:
            iou, logits = self.predictor.predict(image_index, points, labels, best[:, None])
            best = _pick_best(iou, logits)
        return self.predictor.upscale(image_index, best)


def _pick_best(iou: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, C) scores and (B, C, h, w) logits -> (B, h, w) logits of the best-scored mask."""
    best = iou.argmax(dim=1)
    return logits[torch.arange(len(best), device=logits.device), best]
