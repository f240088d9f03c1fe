"""Semantic segmentation evaluation (mIoU, fwIoU, mACC, pACC, per class) and reports."""

from clouds.evaluation.metrics import confusion_matrix, metrics_from_confusion
from clouds.evaluation.sem_seg_evaluation import (
    SemSegEvaluator,
    load_saved_results,
    results_to_json,
)

__all__ = [
    "SemSegEvaluator",
    "confusion_matrix",
    "load_saved_results",
    "metrics_from_confusion",
    "results_to_json",
]
