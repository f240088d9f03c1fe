"""Confusion-matrix accumulation and the segmentation metrics derived from it.

Conventions (detectron2's result keys, values in percent):

- the confusion matrix is (K, K) int64, rows index the ground-truth class and columns the
  predicted class; ignored pixels are not counted at all;
- ``ACC-<c>`` (per-class recall) is NaN when class c never occurs in the ground truth;
- ``IoU-<c>`` is NaN when class c does not occur in the ground truth (rule ``"gt"``,
  detectron2's SemSegEvaluator), or when it occurs neither in the ground truth nor in the
  prediction (rule ``"gt_or_pred"``, cityscapesScripts' evalPixelLevelSemanticLabeling and
  mmseg: a class that is predicted but absent from the ground truth has IoU 0);
- ``mIoU`` / ``mACC`` average the non-NaN per-class values, ``fwIoU`` weights IoU by the
  ground-truth frequency of each class, ``pACC`` is the share of labelled pixels right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "CITYSCAPES_SCRIPTS_DATASETS",
    "MEAN_OVER",
    "MEAN_OVER_RULES",
    "SUMMARY_KEYS",
    "confusion_matrix",
    "mean_over_rule",
    "metrics_from_confusion",
]

# The dataset-level metrics of :func:`metrics_from_confusion`, in report order.
SUMMARY_KEYS = ("mIoU", "fwIoU", "mACC", "pACC")
# The two rules for which classes the means run over: see the module docstring.
MEAN_OVER_RULES = ("gt", "gt_or_pred")
# Values of TEST.MEAN_OVER_CLASSES: one rule for every dataset, or "clouds_original": each
# dataset by the rule the original CLOUDS scored it with (see :func:`mean_over_rule`).
MEAN_OVER = (*MEAN_OVER_RULES, "clouds_original")
# Datasets the original CLOUDS scores with cityscapesScripts (evaluator type cityscapes_sem_seg);
# it scores every other dataset with detectron2's SemSegEvaluator rule.
CITYSCAPES_SCRIPTS_DATASETS = ("cityscapes_train", "cityscapes_val")


def mean_over_rule(mean_over: str, dataset_name: str) -> str:
    """The rule ("gt" or "gt_or_pred") that TEST.MEAN_OVER_CLASSES ``mean_over`` gives a dataset.

    "clouds_original" gives "gt_or_pred" (cityscapesScripts) to the Cityscapes sets and "gt"
    (detectron2) to the others; "gt" and "gt_or_pred" apply to every dataset.

    Raises:
        ValueError: naming the key when ``mean_over`` is none of :data:`MEAN_OVER`.
    """
    if mean_over not in MEAN_OVER:
        raise ValueError(f"TEST.MEAN_OVER_CLASSES must be one of {MEAN_OVER}, got {mean_over!r}")
    if mean_over != "clouds_original":
        return mean_over
    return "gt_or_pred" if dataset_name in CITYSCAPES_SCRIPTS_DATASETS else "gt"


def confusion_matrix(
    pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_label: int
) -> torch.Tensor:
    """Count (ground truth, prediction) pairs of the labelled pixels.

    Args:
        pred: (H, W) integer predicted class ids in [0, num_classes).
        gt: (H, W) integer ground-truth ids in [0, num_classes) or ``ignore_label``.
        num_classes: K.
        ignore_label: ground-truth value of pixels that are not scored.

    Returns:
        (K, K) int64 tensor on the CPU; entry [g, p] counts pixels of class g predicted as p.

    Raises:
        ValueError: when shapes differ or a value lies outside the valid range (the message
            lists the offending values).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"Prediction shape {tuple(pred.shape)} != label shape {tuple(gt.shape)}")
    pred = pred.reshape(-1).to(device="cpu", dtype=torch.int64)
    gt = gt.reshape(-1).to(device="cpu", dtype=torch.int64)
    valid = gt != ignore_label
    pred, gt = pred[valid], gt[valid]
    bad_gt = (gt < 0) | (gt >= num_classes)
    if bool(bad_gt.any()):
        values = sorted(set(gt[bad_gt].unique().tolist()))
        raise ValueError(
            f"Ground-truth values {values} are neither a class id in [0, {num_classes}) nor "
            f"the ignore label {ignore_label}"
        )
    bad_pred = (pred < 0) | (pred >= num_classes)
    if bool(bad_pred.any()):
        values = sorted(set(pred[bad_pred].unique().tolist()))
        raise ValueError(f"Predicted class ids {values} lie outside [0, {num_classes})")
    counts = torch.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def metrics_from_confusion(
    conf: torch.Tensor, class_names: Sequence[str], mean_over: str = "gt_or_pred"
) -> dict[str, float]:
    """detectron2-style semantic segmentation metrics (percent) of a (K, K) confusion matrix.

    Args:
        conf: (K, K) counts, rows ground truth, columns prediction.
        class_names: K names used in the per-class keys ``IoU-<name>`` and ``ACC-<name>``.
        mean_over: the rule, "gt" (classes with ground-truth pixels) or "gt_or_pred" (see
            above).

    Returns:
        {"mIoU", "fwIoU", "mACC", "pACC", "IoU-<name>"..., "ACC-<name>"...}; the means are NaN
        when no pixel was labelled.
    """
    if mean_over not in MEAN_OVER_RULES:
        raise ValueError(f"mean_over must be one of {MEAN_OVER_RULES}, got {mean_over!r}")
    num_classes = conf.shape[0]
    if conf.shape != (num_classes, num_classes) or len(class_names) != num_classes:
        raise ValueError(
            f"Confusion matrix of shape {tuple(conf.shape)} does not match "
            f"{len(class_names)} class names"
        )
    conf = conf.to(dtype=torch.float64, device="cpu")
    tp = conf.diagonal()
    pos_gt = conf.sum(dim=1)
    pos_pred = conf.sum(dim=0)
    union = pos_gt + pos_pred - tp
    nan = torch.full_like(tp, math.nan)
    acc = torch.where(pos_gt > 0, tp / pos_gt.clamp(min=1), nan)
    scored = pos_gt > 0 if mean_over == "gt" else union > 0
    iou = torch.where(scored, tp / union.clamp(min=1), nan)
    total = pos_gt.sum()
    iou_valid = ~iou.isnan()
    acc_valid = ~acc.isnan()
    weights = pos_gt / total if total > 0 else torch.zeros_like(pos_gt)
    results = {
        "mIoU": 100.0 * _mean(iou[iou_valid]),
        "fwIoU": 100.0 * float((iou[iou_valid] * weights[iou_valid]).sum())
        if total > 0
        else math.nan,
        "mACC": 100.0 * _mean(acc[acc_valid]),
        "pACC": 100.0 * float(tp.sum() / total) if total > 0 else math.nan,
    }
    for name, value in zip(class_names, iou.tolist()):
        results[f"IoU-{name}"] = 100.0 * value
    for name, value in zip(class_names, acc.tolist()):
        results[f"ACC-{name}"] = 100.0 * value
    return results


def _mean(values: torch.Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan
