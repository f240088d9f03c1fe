"""Predict the Cityscapes / ACDC test splits and write the servers' zips
(:mod:`clouds.evaluation.submission`), checked against the formats' rules once written.

The model, its weights and the test mapper are those of ``train_net.py --eval-only``; the
prediction is made at the input image's size (``TEST.SCORE_AT_TEST_SIZE`` is turned off here,
as the servers score full-size predictions).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from clouds.config import CfgNode
from clouds.data.build import build_test_loader, get_dataset_dicts
from clouds.engine.robustness import load_evaluation_module
from clouds.evaluation.submission import SubmissionZip, check_submission, format_of
from clouds.modeling.acceleration import autocast

__all__ = ["write_submissions"]

logger = logging.getLogger(__name__)


def write_submissions(
    cfg: CfgNode, output_dir: str | os.PathLike, datasets: Sequence[str]
) -> list[Path]:
    """Write one zip per server format into ``output_dir`` for the registered test splits
    ``datasets`` (all ACDC conditions in one zip); returns the zips' paths."""
    by_format: dict = {}
    for name in datasets:
        by_format.setdefault(format_of(name), []).append(name)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TEST.SCORE_AT_TEST_SIZE = False
    cfg.DATASETS.TEST = tuple(datasets)
    cfg.freeze()
    module = load_evaluation_module(cfg)
    device = torch.device("cuda" if cfg.MODEL.DEVICE == "cuda" else "cpu")
    model = module.model.to(device).eval()
    written = []
    for fmt, names in by_format.items():
        path = Path(output_dir) / fmt.zip_name
        dicts = [d for ds in get_dataset_dicts(names) for d in ds]
        with SubmissionZip(path, fmt) as archive, torch.no_grad():
            for name in names:
                for batch in tqdm(build_test_loader(cfg, name), desc=name, unit="image"):
                    with autocast(device, module.acceleration.amp_dtype):
                        outputs = model(batch)
                    for item, output in zip(batch, outputs):
                        pred = output["sem_seg"].argmax(dim=0).cpu().numpy()
                        archive.add(item["file_name"], pred)
        check_submission(
            path,
            fmt,
            [d["file_name"] for d in dicts],
            {d["file_name"]: (d["height"], d["width"]) for d in dicts},
        )
        logger.info("Wrote %s (%d predictions, %s format)", path, len(dicts), fmt.name)
        written.append(path)
    return written
