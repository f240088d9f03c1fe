"""Evaluate a model under ImageNet-C corruptions, one (corruption, severity) cell at a time.

Each cell is one ``Trainer.validate`` of the usual evaluation module over every dataset, with
the test mapper wrapped by :class:`clouds.evaluation.corruptions.CorruptingMapper` (the clean
cell leaves it as it is). A finished cell is written atomically to
``<output_dir>/cells/<corruption>_s<severity>.json`` (``clean.json``): per dataset the metrics,
the confusion matrix and the class-mean rule. A rerun skips the cells already written, so a
crashed run resumes where it stopped; ``<output_dir>/run.json`` records what was evaluated and
a rerun with other weights, config, seed or datasets is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
from tqdm import tqdm

from clouds.config import CfgNode, ConfigError
from clouds.data.build import build_test_loader, build_test_mapper, get_dataset_dicts
from clouds.engine.launch import resolve_accelerator, resolve_precision
from clouds.engine.lightning_module import CloudsLightningModule
from clouds.evaluation import results_to_json
from clouds.evaluation.corruptions import CorruptingMapper, check_corruption
from clouds.evaluation.robustness_report import CLEAN, Cell, cell_name
from clouds.modeling.checkpoint import foundation_weights_context, load_model_weights
from clouds.utils.io import atomic_path

__all__ = ["evaluate_corruptions", "load_evaluation_module", "robustness_config"]

logger = logging.getLogger(__name__)


def robustness_config(cfg: CfgNode, datasets: Sequence[str]) -> CfgNode:
    """A frozen copy of ``cfg`` evaluating ``datasets``; the evaluator writes no file (the cells
    are written by :func:`evaluate_corruptions`) and no prediction."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TEST = tuple(datasets)
    cfg.OUTPUT_DIR = None
    cfg.TEST.SAVE_PREDICTIONS = False
    cfg.freeze()
    return cfg


def _check_run(output_dir: Path, record: dict) -> None:
    """Write ``run.json``, or check that the one there describes the same run."""
    path = output_dir / "run.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = [key for key in record if saved.get(key) != record[key]]
        if changed:
            raise ConfigError(
                f"{output_dir} holds corruption results of another run ({', '.join(changed)} "
                f"differ; see {path}); choose another --output-dir"
            )
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2))


def _trainer(cfg: CfgNode) -> pl.Trainer:
    accelerator = resolve_accelerator(cfg)
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=resolve_precision(cfg, accelerator),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )


def evaluate_corruptions(
    cfg: CfgNode,
    output_dir: str | os.PathLike,
    *,
    datasets: Sequence[str],
    corruptions: Sequence[str],
    severities: Sequence[int],
    seed: int = 0,
) -> dict[str, Cell]:
    """Evaluate ``cfg``'s model (``MODEL.WEIGHTS``) on ``datasets`` clean and under every
    (corruption, severity); returns {cell name: cell} (see :func:`cell_name`).

    The datasets must be registered. Cells already in ``output_dir/cells`` are read, not rerun.
    """
    for corruption in corruptions:
        for severity in severities:
            check_corruption(corruption, severity)
    output_dir = Path(output_dir)
    cfg = robustness_config(cfg, datasets)
    config_hash = hashlib.sha256(cfg.dump().encode()).hexdigest()
    record = {"weights": cfg.MODEL.WEIGHTS, "seed": seed, "datasets": list(datasets)}
    _check_run(output_dir, {**record, "config_sha256": config_hash})
    cells = [(CLEAN, 0), *((c, s) for c in corruptions for s in severities)]
    cells_dir = output_dir / "cells"
    todo = [(c, s) for c, s in cells if not (cells_dir / f"{cell_name(c, s)}.json").is_file()]
    if todo:
        _run_cells(cfg, todo, cells_dir, seed, total=len(cells))
    return {
        cell_name(c, s): json.loads((cells_dir / f"{cell_name(c, s)}.json").read_text())
        for c, s in cells
    }


def load_evaluation_module(cfg: CfgNode) -> CloudsLightningModule:
    """The evaluation module of ``cfg`` with ``MODEL.WEIGHTS`` loaded, as ``--eval-only`` builds it."""
    with foundation_weights_context(cfg.MODEL.WEIGHTS or None):
        module = CloudsLightningModule.from_config(cfg)
    if cfg.MODEL.WEIGHTS:
        load_model_weights(
            module.model, cfg.MODEL.WEIGHTS, trust_pickle=cfg.MODEL.WEIGHTS_TRUST_PICKLE
        )
    else:
        logger.warning("No MODEL.WEIGHTS: an untrained model is evaluated")
    return module


def _run_cells(
    cfg: CfgNode, todo: Sequence[tuple[str, int]], cells_dir: Path, seed: int, *, total: int
) -> None:
    module = load_evaluation_module(cfg)
    trainer = _trainer(cfg)
    names = list(cfg.DATASETS.TEST)
    dicts = get_dataset_dicts(names)
    index = [{d["file_name"]: i for i, d in enumerate(ds)} for ds in dicts]
    progress = tqdm(todo, total=total, initial=total - len(todo), desc="corruptions", unit="cell")
    for corruption, severity in progress:
        name = cell_name(corruption, severity)
        progress.set_postfix_str(name)
        loaders = []
        for dataset, image_index in zip(names, index):
            mapper = build_test_mapper(cfg, dataset)
            if corruption != CLEAN:
                mapper = CorruptingMapper(
                    mapper,
                    corruption=corruption,
                    severity=severity,
                    run_seed=seed,
                    image_index=image_index,
                )
            loaders.append(build_test_loader(cfg, dataset, mapper=mapper))
        trainer.validate(module, dataloaders=loaders, verbose=False)
        cell = {
            dataset: {
                "sem_seg": module.eval_results[dataset]["sem_seg"],
                "confusion": evaluator.confusion_matrix().tolist(),
                "mean_over": evaluator.mean_over,
            }
            for dataset, evaluator in zip(names, module.evaluators)
        }
        cells_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(cells_dir / f"{name}.json") as tmp:
            Path(tmp).write_text(json.dumps(results_to_json(cell)))
        logger.info(
            "%s: %s",
            name,
            ", ".join(f"{d} mIoU {cell[d]['sem_seg']['mIoU']:.2f}" for d in names),
        )
