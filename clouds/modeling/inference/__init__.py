"""Inference strategies for any model that maps an image batch to logits.

whole image, sliding windows (``TEST.SLIDE``) and the two-stage modes with a refinement head
(``TEST.COARSE_TO_FINE``).
"""

from clouds.modeling.inference.coarse_to_fine import (
    CoarseFn,
    RefineFn,
    coarse_to_fine_inference,
    is_unsure,
    msfull_inference,
)
from clouds.modeling.inference.strategy import (
    MODES,
    REFINING_MODES,
    InferenceSettings,
    infer_logits,
)
from clouds.modeling.inference.windows import LogitsFn, slide_inference, window_boxes

__all__ = [
    "MODES",
    "REFINING_MODES",
    "CoarseFn",
    "InferenceSettings",
    "LogitsFn",
    "RefineFn",
    "coarse_to_fine_inference",
    "infer_logits",
    "is_unsure",
    "msfull_inference",
    "slide_inference",
    "window_boxes",
]
