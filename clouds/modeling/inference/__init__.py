"""Inference strategies for any model that maps an image batch to logits.

whole image, sliding windows (``TEST.SLIDE``) and two-stage coarse-to-fine
(``TEST.COARSE_TO_FINE``).
"""

from clouds.modeling.inference.coarse_to_fine import (
    RefineFn,
    coarse_to_fine_inference,
    is_unsure,
)
from clouds.modeling.inference.strategy import InferenceSettings, infer_logits
from clouds.modeling.inference.windows import LogitsFn, slide_inference, window_boxes

__all__ = [
    "InferenceSettings",
    "LogitsFn",
    "RefineFn",
    "coarse_to_fine_inference",
    "infer_logits",
    "is_unsure",
    "slide_inference",
    "window_boxes",
]
