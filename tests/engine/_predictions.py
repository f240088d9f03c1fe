"""The evaluation's predictions recorded during a run, scored by hand.

A global forward hook records, for every labelled input the model predicts in eval mode, the
argmax of its scores (the last prediction per file wins, i.e. the final evaluation). The label
map is read from its PNG with PIL (and, for scoring at the test size, resized nearest with PIL
to the prediction's size), so the mIoU / pACC below share no code with the evaluator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image
from torch import nn


class RecordedPredictions:
    """Context manager: records eval-mode predictions of models of type ``model_type``."""

    def __init__(self, model_type: type[nn.Module], *, resize_labels: bool = False) -> None:
        self.model_type = model_type
        self.resize_labels = resize_labels
        self.by_file: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __enter__(self) -> RecordedPredictions:
        self._handle = nn.modules.module.register_module_forward_hook(self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _record(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(module, self.model_type) or module.training:
            return
        for item, out in zip(args[0], output):
            if not item.get("sem_seg_file_name"):
                continue  # e.g. the EMA teacher predicting an unlabelled image
            pred = out["sem_seg"].argmax(dim=0).cpu().numpy()
            label = Image.open(item["sem_seg_file_name"])
            if self.resize_labels:
                label = label.resize((pred.shape[1], pred.shape[0]), Image.NEAREST)
            gt = np.asarray(label).astype(np.int64)
            assert gt.shape == pred.shape, (item["sem_seg_file_name"], gt.shape, pred.shape)
            self.by_file[item["file_name"]] = (gt, pred)

    def scores(self, num_classes: int, ignore_label: int = 255) -> dict[str, float]:
        """mIoU (over classes in the ground truth or the prediction) and pACC, in percent."""
        conf = np.zeros((num_classes, num_classes), dtype=np.int64)
        for gt, pred in self.by_file.values():
            valid = gt != ignore_label
            np.add.at(conf, (gt[valid], pred[valid]), 1)
        tp = np.diag(conf).astype(np.float64)
        union = conf.sum(0) + conf.sum(1) - tp
        return {
            "mIoU": 100.0 * float(np.mean(tp[union > 0] / union[union > 0])),
            "pACC": 100.0 * float(tp.sum() / conf.sum()),
        }


def assert_results_match(
    results: dict[str, float], recorded: RecordedPredictions, num_images: int, num_classes: int
) -> None:
    """The reported mIoU / pACC are those of the recorded predictions of all ``num_images``."""
    assert len(recorded.by_file) == num_images
    expected = recorded.scores(num_classes)
    assert results["mIoU"] == pytest.approx(expected["mIoU"], abs=1e-6)
    assert results["pACC"] == pytest.approx(expected["pACC"], abs=1e-6)
