"""Semantic segmentation evaluator (detectron2's SemSegEvaluator interface and result keys)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from clouds.config import CfgNode
from clouds.data.catalog import MetadataCatalog
from clouds.data.datasets.cityscapes_meta import NUM_CLASSES, train_id_to_label_id_lut
from clouds.evaluation.metrics import (
    SUMMARY_KEYS,
    confusion_matrix,
    mean_over_rule,
    metrics_from_confusion,
)
from clouds.utils import comm
from clouds.utils.io import atomic_path, read_label, write_png_atomic

__all__ = ["SemSegEvaluator", "results_to_json"]

logger = logging.getLogger(__name__)


class SemSegEvaluator:
    """Accumulate a confusion matrix over a dataset and report mIoU, fwIoU, mACC, pACC.

    Usage: ``reset()``, then ``process(inputs, outputs)`` per batch, then ``evaluate()``.
    The class list and ignore label come from ``MetadataCatalog.get(dataset_name)``
    (``stuff_classes``, ``ignore_label``, default 255). Under torch.distributed every process
    scores its share of the images and ``evaluate()`` sums the confusion matrices of all
    processes, so every process returns the same numbers; only rank 0 writes files, except
    prediction PNGs, which each process writes for its own images.
    """

    def __init__(
        self,
        dataset_name: str,
        *,
        output_dir: str | os.PathLike | None = None,
        distributed: bool = True,
        save_predictions: bool = False,
        mean_over: str = "gt_or_pred",
    ) -> None:
        """
        Args:
            dataset_name: a registered dataset whose metadata has ``stuff_classes``.
            output_dir: OUTPUT_DIR; results go to ``<output_dir>/inference/<dataset_name>/``.
                None writes nothing.
            distributed: sum the confusion matrix across processes when torch.distributed is
                initialised.
            save_predictions: write each prediction as a Cityscapes label-ID PNG under
                ``<output_dir>/inference/<dataset_name>/predictions/<image stem>.png``.
            mean_over: classes the means run over (TEST.MEAN_OVER_CLASSES): "gt" (those with
                ground-truth pixels, detectron2's SemSegEvaluator), "gt_or_pred" (also those
                only predicted, with IoU 0: cityscapesScripts) or "clouds_original" (the rule
                the original CLOUDS scored this dataset with: cityscapesScripts' for
                cityscapes_train / cityscapes_val, detectron2's for the others). The rule it
                gives ``dataset_name`` is ``self.mean_over``.
        """
        rule = mean_over_rule(mean_over, dataset_name)
        metadata = MetadataCatalog.get(dataset_name)
        classes = metadata.get("stuff_classes")
        if not classes:
            raise ValueError(
                f"Metadata of dataset {dataset_name!r} has no stuff_classes; register the dataset "
                f"(clouds.data.datasets.register_all_datasets) before evaluating it"
            )
        if save_predictions and output_dir is None:
            raise ValueError("save_predictions=True needs an output_dir to write the PNGs to")
        if save_predictions and len(classes) != NUM_CLASSES:
            raise ValueError(
                f"save_predictions writes Cityscapes label IDs and needs the {NUM_CLASSES} "
                f"Cityscapes train classes; dataset {dataset_name!r} has {len(classes)} classes"
            )
        self.dataset_name = dataset_name
        self.class_names: list[str] = list(classes)
        self.num_classes = len(self.class_names)
        self.ignore_label = int(metadata.get("ignore_label", 255))
        self.distributed = distributed
        self.save_predictions = save_predictions
        self.mean_over = rule
        self.output_dir = (
            Path(output_dir) / "inference" / dataset_name if output_dir is not None else None
        )
        self._conf = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self._num_images = 0
        self._label_id_lut = train_id_to_label_id_lut()

    @classmethod
    def from_config(cls, cfg: CfgNode, dataset_name: str) -> SemSegEvaluator:
        """Evaluator of ``dataset_name`` writing under cfg.OUTPUT_DIR (TEST.SAVE_PREDICTIONS,
        TEST.MEAN_OVER_CLASSES)."""
        return cls(
            dataset_name,
            output_dir=cfg.OUTPUT_DIR,
            save_predictions=cfg.TEST.SAVE_PREDICTIONS,
            mean_over=cfg.TEST.MEAN_OVER_CLASSES,
        )

    def reset(self) -> None:
        """Forget everything processed so far."""
        self._conf.zero_()
        self._num_images = 0

    def process(
        self, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, torch.Tensor]]
    ) -> None:
        """Score one batch.

        Args:
            inputs: dataset dicts with "file_name" and either "sem_seg" ((H, W) integer label
                map, e.g. resized by the test mapper) or "sem_seg_file_name".
            outputs: model outputs, each {"sem_seg": (K, H, W) class scores} at the size of the
                label map.

        Raises:
            ValueError: naming the file when it has no label, when the prediction size differs
                from its label map or K differs from the number of classes.
        """
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
        for item, output in zip(inputs, outputs):
            file_name = item.get("file_name", "<unknown image>")
            scores = output["sem_seg"]
            if scores.dim() != 3 or scores.shape[0] != self.num_classes:
                raise ValueError(
                    f"Prediction for {file_name} has shape {tuple(scores.shape)}; expected "
                    f"({self.num_classes}, H, W) for the classes of {self.dataset_name!r}"
                )
            pred = scores.argmax(dim=0).cpu()
            label_file = item.get("sem_seg_file_name")
            if "sem_seg" in item:
                gt = np.asarray(item["sem_seg"])
                label_file = label_file or f"the label map of {file_name}"
            elif label_file:
                gt = read_label(label_file)
            else:
                raise ValueError(
                    f"{file_name} has no sem_seg_file_name: dataset {self.dataset_name!r} "
                    f"cannot be evaluated without labels"
                )
            if tuple(gt.shape) != tuple(pred.shape):
                raise ValueError(
                    f"Label map {label_file} is {gt.shape[0]}x{gt.shape[1]} (HxW) but the "
                    f"prediction for {file_name} is {pred.shape[0]}x{pred.shape[1]}"
                )
            try:
                self._conf += confusion_matrix(
                    pred, torch.from_numpy(gt.astype(np.int64)), self.num_classes, self.ignore_label
                )
            except ValueError as e:
                raise ValueError(f"{label_file}: {e}") from e
            self._num_images += 1
            if self.save_predictions:
                self._save_prediction(pred, file_name)

    def _save_prediction(self, pred: torch.Tensor, file_name: str) -> None:
        assert self.output_dir is not None
        label_ids = self._label_id_lut[pred.numpy()]
        path = self.output_dir / "predictions" / f"{Path(file_name).stem}.png"
        write_png_atomic(label_ids, path)

    def confusion_matrix(self) -> torch.Tensor:
        """(K, K) int64 confusion matrix (rows ground truth), summed over processes."""
        conf = self._conf.clone()
        if self.distributed:
            comm.all_reduce(conf, op="sum")
        return conf

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Metrics over everything processed (all processes); logs a per-class table.

        Returns:
            {"sem_seg": {"mIoU", "fwIoU", "mACC", "pACC", "IoU-<class>", "ACC-<class>"}}, in
            percent; per-class values are NaN for classes absent from prediction and ground
            truth (see clouds.evaluation.metrics).
        """
        conf = self.confusion_matrix()
        if conf.sum() == 0:
            logger.warning("No labelled pixel was evaluated on %s", self.dataset_name)
        results = {"sem_seg": metrics_from_confusion(conf, self.class_names, self.mean_over)}
        if comm.is_main_process():
            logger.info(
                "Evaluation of %s (%d images on this process):\n%s",
                self.dataset_name,
                self._num_images,
                self.table(results),
            )
            if self.output_dir is not None:
                path = self.output_dir / "sem_seg_results.json"
                with atomic_path(path) as tmp, open(tmp, "w") as f:
                    json.dump(results_to_json(results), f, indent=2)
        return results

    def table(self, results: Mapping[str, Mapping[str, float]]) -> str:
        """Per-class IoU / ACC table followed by the summary metrics, as text."""
        metrics = results["sem_seg"]
        rows = [[name, metrics[f"IoU-{name}"], metrics[f"ACC-{name}"]] for name in self.class_names]
        rows.append(["mean", metrics["mIoU"], metrics["mACC"]])
        per_class = tabulate(
            rows, headers=["class", "IoU", "ACC"], floatfmt=".2f", tablefmt="pipe", missingval="nan"
        )
        summary = tabulate(
            [[metrics[k] for k in SUMMARY_KEYS]],
            headers=list(SUMMARY_KEYS),
            floatfmt=".2f",
            tablefmt="pipe",
        )
        return f"{per_class}\n\n{summary}"


def results_to_json(results: Any) -> Any:
    """Copy of ``results`` with NaN floats replaced by None, so the JSON file is standard."""
    if isinstance(results, Mapping):
        return {key: results_to_json(value) for key, value in results.items()}
    if isinstance(results, float) and math.isnan(results):
        return None
    return results


def load_saved_results(output_dir: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """The results an evaluation saved under ``output_dir``: ``{dataset: {"sem_seg": metrics}}``
    read from every ``inference/<dataset>/sem_seg_results.json``.

    Raises:
        FileNotFoundError: naming ``output_dir`` when it holds no saved results.
    """
    files = sorted(Path(output_dir).glob("inference/*/sem_seg_results.json"))
    if not files:
        raise FileNotFoundError(
            f"No evaluation results under {output_dir} (expected "
            f"inference/<dataset>/sem_seg_results.json; run train_net.py --eval-only there first)"
        )
    return {path.parent.name: json.loads(path.read_text()) for path in files}
