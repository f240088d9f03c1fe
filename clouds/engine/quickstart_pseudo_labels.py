"""Pseudo-label accuracy on labelled images: a teacher's labels vs the same labels refined by SAM.

Joint training labels unlabelled images; the toy target domains have ground truth, so the
quickstart measures what SAM does to a teacher's labels there: the teacher (the model of
``MODEL.WEIGHTS``) labels each image, :class:`clouds.sam.SamRefiner` built from the config
refines the labels with the same rules as in joint training, and both are compared with the
ground truth. Pixel accuracy counts the pixels a label map labels (ignored ones left out), so
the refined maps also report their coverage, and their accuracy on exactly the pixels both
maps label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from clouds.config import CfgNode
from clouds.engine.pseudo_labeler import colorize_labels
from clouds.utils.io import write_png_atomic

__all__ = ["pixel_counts", "score_pseudo_labels"]

# Images per dataset written as pictures (image | ground truth | teacher | SAM).
PICTURES_PER_DATASET = 1


def pixel_counts(
    truth: np.ndarray, teacher: np.ndarray, refined: np.ndarray, ignore: int = 255
) -> np.ndarray:
    """Counts of one image, all (H, W) class ids.

    Returns:
        int64 (5,): valid ground-truth pixels, teacher-correct ones, pixels the refined map
        labels, refined-correct ones, teacher-correct ones among the refined map's pixels.
    """
    valid = truth != ignore
    labelled = valid & (refined != ignore)
    return np.array(
        [
            valid.sum(),
            (valid & (teacher == truth)).sum(),
            labelled.sum(),
            (labelled & (refined == truth)).sum(),
            (labelled & (teacher == truth)).sum(),
        ],
        dtype=np.int64,
    )


def _accuracies(counts: np.ndarray) -> dict[str, float]:
    valid, teacher, labelled, refined, teacher_same = counts.tolist()
    return {
        "teacher": 100.0 * teacher / max(valid, 1),
        "sam": 100.0 * refined / max(labelled, 1),
        "sam_coverage": 100.0 * labelled / max(valid, 1),
        "teacher_on_sam_pixels": 100.0 * teacher_same / max(labelled, 1),
    }


def score_pseudo_labels(
    cfg: CfgNode, *, datasets: Sequence[str], output_dir: Path, seed: int = 0
) -> dict[str, Any]:
    """Label every image of ``datasets`` with the teacher, refine with SAM, score both.

    Args:
        cfg: joint-training config (MODEL.WEIGHTS: the teacher; MODEL.CLOUDS.SAM.*: SAM and
            the pseudo-label rules).
        datasets: registered datasets with ground truth.
        output_dir: where the pictures go (``<dataset>_<k>_{image,truth,teacher,sam}.png``).
        seed: seed of the point prompts.

    Returns:
        ``{"datasets": {name: accuracies}, "all": accuracies, "pictures": [(name, stem)]}`` with
        accuracies in percent (see :func:`pixel_counts`).
    """
    from clouds.data.catalog import DatasetCatalog, MetadataCatalog
    from clouds.predictor import Predictor
    from clouds.sam.refinement import SamRefiner
    from clouds.utils.io import read_image

    source = cfg.DATASETS.TRAIN[0]
    teacher = Predictor(cfg, dataset_name=source)
    refiner = SamRefiner.from_config(cfg)
    palette = MetadataCatalog.get(source).get("stuff_colors", None) or []
    generator = np.random.default_rng(seed)
    totals = np.zeros(5, dtype=np.int64)
    scores: dict[str, dict[str, float]] = {}
    pictures: list[tuple[str, str]] = []
    for name in datasets:
        counts = np.zeros(5, dtype=np.int64)
        for index, record in enumerate(DatasetCatalog.get(name)):
            image = read_image(record["file_name"])
            truth = np.asarray(Image.open(record["sem_seg_file_name"]), dtype=np.int64)
            with torch.no_grad():
                labels = teacher(image).argmax(dim=0).cpu()
            refined = refiner.refine(
                [torch.from_numpy(np.array(image)).permute(2, 0, 1)],
                [labels],
                generator=generator,
            )[0].label.numpy()
            counts += pixel_counts(truth, labels.numpy(), refined)
            if index < PICTURES_PER_DATASET:
                stem = f"{name}_{index}"
                write_png_atomic(image, output_dir / f"{stem}_image.png")
                for suffix, label_map in (
                    ("truth", truth),
                    ("teacher", labels.numpy()),
                    ("sam", refined),
                ):
                    write_png_atomic(
                        colorize_labels(label_map, palette), output_dir / f"{stem}_{suffix}.png"
                    )
                pictures.append((name, stem))
        scores[name] = _accuracies(counts)
        totals += counts
    return {"datasets": scores, "all": _accuracies(totals), "pictures": pictures}
