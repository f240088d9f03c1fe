"""Segment Anything: model loading, point prompts, batched prediction and pseudo-label refinement."""

from clouds.sam.build import SAM_MODEL_TYPES, SamCheckpointError, build_sam, build_tiny_sam
from clouds.sam.merge import merge_masks
from clouds.sam.points import Region, find_regions, scaled_size_threshold, select_points
from clouds.sam.predictor import PromptPredictor, SamBatchPredictor
from clouds.sam.refinement import RefinedLabel, SamRefiner

__all__ = [
    "SAM_MODEL_TYPES",
    "PromptPredictor",
    "RefinedLabel",
    "Region",
    "SamBatchPredictor",
    "SamCheckpointError",
    "SamRefiner",
    "build_sam",
    "build_tiny_sam",
    "find_regions",
    "merge_masks",
    "scaled_size_threshold",
    "select_points",
]
