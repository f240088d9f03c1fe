"""SAM refinement of pseudo-labels (the CLOUDS recipe).

As the original (``clouds/clouds.py`` with ``my_utils/mask_utils.py``): for every image,
4-connected regions of each predicted class strictly above the size threshold get point prompts;
SAM encodes the image once and decodes every region's prompt (all its points together, all
foreground) with multiple masks; the mask with the best predicted IoU is kept; optionally a
second pass feeds that mask's low-resolution logits back as ``mask_input``; every pixel covered
by two or more masks is dropped; the masks make the label map, pixels outside every mask are
ignored, and every class that got a prompt stays a mask target even when its masks came out empty
or were all dropped as overlaps (:attr:`RefinedLabel.prompted_classes`). Every image is encoded,
prompted or not (with SAM in training mode, as the original's, each encoding updates SAM's
BatchNorm statistics). An image without any prompt keeps the teacher's map. Our options (config keys, off in
the reproduction configs): 8-connectivity and ``>=`` for regions, teacher labels for uncovered
pixels, dropping only overlaps of different classes, a size threshold scaled to small images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from clouds.config import CfgNode
from clouds.sam.build import SamCheckpointError, build_sam
from clouds.sam.merge import OVERLAP_MODES, merge_masks
from clouds.sam.points import (
    SELECTION_MODES,
    PointSource,
    find_regions,
    scaled_size_threshold,
    select_points,
)
from clouds.sam.predictor import PromptPredictor, SamBatchPredictor

__all__ = ["UNCOVERED_MODES", "RefinedLabel", "SamRefiner"]

UNCOVERED_MODES = ("teacher", "ignore")


class RefinedLabel(NamedTuple):
    """One image's pseudo-label after SAM refinement."""

    label: torch.Tensor
    """(H, W) int64 label map."""
    prompted_classes: torch.Tensor | None
    """(M,) int64 sorted classes SAM was prompted for (mask targets even if absent from
    ``label``), or None for an image without any prompt (its targets are its map's classes)."""


class SamRefiner:
    """Refine label maps with a promptable segmenter (SAM)."""

    def __init__(
        self,
        *,
        predictor: PromptPredictor,
        num_points: int = 5,
        size_threshold: int = 5000,
        size_reference: tuple[int, int] | tuple[()] = (),
        connectivity: int = 4,
        inclusive_threshold: bool = False,
        selection_mode: str = "random",
        erosion: bool = False,
        erosion_size: int = 3,
        refinement: bool = False,
        rm_intersection: bool = True,
        overlap: str = "all",
        uncovered: str = "ignore",
        ignore_label: int = 255,
    ) -> None:
        """
        Args:
            predictor: SAM (or a stand-in) implementing :class:`PromptPredictor`.
            num_points: point prompts per region.
            size_threshold: regions larger than this many pixels are prompted.
            size_reference: () to use ``size_threshold`` as is (the original), or the (H, W)
                at which it holds, scaled down by the area ratio on smaller images (ours).
            connectivity: 4 (the original) or 8 neighbours make a region.
            inclusive_threshold: prompt regions of exactly ``size_threshold`` pixels too.
            selection_mode: "random" or "interior" (see :func:`select_points`).
            erosion: erode regions before choosing points.
            erosion_size: erosion kernel side.
            refinement: second pass with the best mask's logits as ``mask_input``.
            rm_intersection: drop pixels covered by several masks.
            overlap: which overlaps are dropped: "all" (the original) or "conflict" (only
                masks of different classes).
            uncovered: label of pixels no mask covers: "ignore" (the original) or "teacher".
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
        if overlap not in OVERLAP_MODES:
            raise ValueError(
                f"MODEL.CLOUDS.SAM.OVERLAP must be one of {OVERLAP_MODES}, got {overlap!r}"
            )
        self.predictor = predictor
        self.num_points = num_points
        self.size_threshold = size_threshold
        self.size_reference = tuple(size_reference)
        self.connectivity = connectivity
        self.inclusive_threshold = inclusive_threshold
        self.selection_mode = selection_mode
        self.erosion = erosion
        self.erosion_size = erosion_size
        self.refinement = refinement
        self.rm_intersection = rm_intersection
        self.overlap = overlap
        self.uncovered = uncovered
        self.ignore_label = ignore_label

    @classmethod
    def from_config(cls, cfg: CfgNode, predictor: PromptPredictor | None = None) -> SamRefiner:
        """Build from ``MODEL.CLOUDS.SAM.*``; the SAM is built on CPU (move it with ``to``)."""
        sam_cfg = cfg.MODEL.CLOUDS.SAM
        if predictor is None:
            model_type = sam_cfg.MODEL_TYPE or ("vit_t" if sam_cfg.MOBILE else "vit_h")
            if not sam_cfg.CHECKPOINT and not sam_cfg.RANDOM_INIT:
                raise SamCheckpointError(
                    f"MODEL.CLOUDS.SAM.CHECKPOINT is empty but SAM ({model_type}) refines the "
                    f"pseudo-labels: set it to the SAM weights file (or, for tests only, "
                    f"MODEL.CLOUDS.SAM.RANDOM_INIT True for a random SAM)"
                )
            model = build_sam(model_type, sam_cfg.CHECKPOINT)
            # as the original, whose SAM is a part of the model in training mode: MobileSAM's
            # BatchNorm normalises with each image's statistics and updates its running ones
            model.train(not sam_cfg.EVAL_MODE)
            predictor = SamBatchPredictor(model=model, prompt_batch_size=sam_cfg.PROMPT_BATCH_SIZE)
        return cls(
            predictor=predictor,
            num_points=sam_cfg.NUM_POINTS,
            size_threshold=sam_cfg.SIZE_THRESHOLD,
            size_reference=tuple(sam_cfg.SIZE_REFERENCE),
            connectivity=sam_cfg.CONNECTIVITY,
            inclusive_threshold=sam_cfg.INCLUSIVE_THRESHOLD,
            selection_mode=sam_cfg.SELECTION_MODE,
            erosion=sam_cfg.EROSION,
            erosion_size=sam_cfg.EROSION_SIZE,
            refinement=sam_cfg.REFINEMENT,
            rm_intersection=sam_cfg.RM_INTERSECTION,
            overlap=sam_cfg.OVERLAP,
            uncovered=sam_cfg.UNCOVERED,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        )

    def to(self, device: torch.device | str) -> SamRefiner:
        """Move the predictor's model to ``device``."""
        self.predictor.to(device)
        return self

    def prompts(
        self, label_map: np.ndarray, generator: PointSource
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point prompts of one label map, drawn region by region in :func:`find_regions` order.

        Args:
            label_map: (H, W) integer class ids.

        Returns:
            points (R, num_points, 2) float32 (x, y) and class ids (R,) int64 of the R prompted
            regions (a region with fewer candidate pixels than points gets none).
        """
        min_area = scaled_size_threshold(self.size_threshold, label_map.shape, self.size_reference)
        regions = find_regions(
            label_map,
            min_area=min_area,
            ignore_label=self.ignore_label,
            connectivity=self.connectivity,
            inclusive=self.inclusive_threshold,
        )
        points, classes = [], []
        for region in regions:
            chosen = select_points(
                region.mask,
                num_points=self.num_points,
                mode=self.selection_mode,
                erosion=self.erosion,
                erosion_size=self.erosion_size,
                generator=generator,
            )
            if chosen is not None:
                points.append(chosen)
                classes.append(region.class_id)
        if not points:
            return np.zeros((0, self.num_points, 2), np.float32), np.zeros(0, np.int64)
        return np.stack(points), np.asarray(classes, dtype=np.int64)

    @torch.no_grad()
    def refine(
        self,
        images: Sequence[torch.Tensor],
        label_maps: Sequence[torch.Tensor],
        *,
        generator: PointSource,
    ) -> list[RefinedLabel]:
        """Refine each label map with SAM prompted on its image.

        Args:
            images: N images, each (3, H, W) uint8 RGB.
            label_maps: N teacher label maps, each (H, W) int64, same size as its image.
            generator: random source of the point selection (all images' points are drawn
                first, image by image, as the original).

        Returns:
            N refined labels, tensors on the device of the input label map; an image without
            any prompt keeps its teacher map.
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
        self.predictor.set_images(images)
        refined = []
        for index, (label, (points, classes)) in enumerate(zip(label_maps, prompts)):
            if len(classes) == 0:
                refined.append(RefinedLabel(label.clone(), None))
                continue
            fallback = (
                label.clone()
                if self.uncovered == "teacher"
                else torch.full_like(label, self.ignore_label)
            )
            masks = self._best_masks(index, torch.from_numpy(points))
            class_ids = torch.from_numpy(classes).to(label.device)
            merged = merge_masks(
                masks.to(label.device),
                class_ids,
                fallback,
                rm_intersection=self.rm_intersection,
                overlap=self.overlap,
            )
            refined.append(RefinedLabel(merged, torch.unique(class_ids)))
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
