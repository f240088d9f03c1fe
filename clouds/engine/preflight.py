"""Checks of a loaded config before anything heavy is built: datasets first, then the files
the config names (checkpoint, SAM, backbone weights), the GPUs asked for, and whether weights
that must be downloaded can be.

Each failed check raises a known user error (see :mod:`clouds.cli_errors`) whose message names
the key or flag to change. Nothing here imports Lightning or a model library.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from clouds.cli_errors import UserFileError
from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import DatasetCatalog, MetadataCatalog, UnknownDatasetError
from clouds.data.datasets import DatasetNotFoundError, register_all_datasets
from clouds.data.datasets.register_dgvfm import DGVFM_DATASET_NAMES, dgvfm_datasets_root
from clouds.utils.weights_source import (
    OFFICIAL_FILES,
    SAM_FILES,
    HubNeed,
    OfficialFile,
    WeightsUnavailableError,
    hub_needs,
    missing_from_cache,
    prepare_hub_access,
    weights_unavailable_message,
)

__all__ = [
    "check_datasets",
    "check_files",
    "check_processes",
    "check_weights",
    "run_preflight",
]

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _datasets_used(cfg: CfgNode, eval_only: bool) -> list[tuple[str, str]]:
    used = [] if eval_only else [("DATASETS.TRAIN", n) for n in cfg.DATASETS.TRAIN]
    return used + [("DATASETS.TEST", n) for n in cfg.DATASETS.TEST]


def check_datasets(cfg: CfgNode, *, eval_only: bool = False) -> None:
    """Every dataset the run reads is registered and its folders exist (nothing is listed).

    Raises:
        UnknownDatasetError: an unknown name, with the closest known one.
        DatasetNotFoundError: a missing image or label folder, with where datasets are read from.
    """
    root = register_all_datasets()
    for key, name in _datasets_used(cfg, eval_only):
        if name not in DatasetCatalog:
            close = difflib.get_close_matches(name, DatasetCatalog.list(), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UnknownDatasetError(
                f"{key} names {name!r}, which is not a known dataset{hint}. Known: "
                f"{', '.join(DatasetCatalog.list())}; generated sets are sd_<folder>."
            )
        meta = MetadataCatalog.get(name)
        for folder in (meta.get("image_root"), meta.get("sem_seg_root")):
            if folder and not Path(folder).is_dir():
                where = (
                    "$DGVFM_DATASETS (else $DETECTRON2_DATASETS, else data/; now "
                    f"{dgvfm_datasets_root().resolve()})"
                    if name in DGVFM_DATASET_NAMES
                    else f"$DETECTRON2_DATASETS (now {root.resolve()})"
                )
                raise DatasetNotFoundError(
                    f"Dataset {name!r} ({key}): folder {folder} does not exist. Datasets are read "
                    f"from {where}; see datasets/README.md for where {name} comes from and how to "
                    "lay it out."
                )


def _missing(path: str) -> bool:
    return not os.path.exists(os.path.expanduser(path))


def _download_hint(key: str, official: dict[str, OfficialFile], name: str) -> str:
    entry = official.get(name)
    if entry is None:
        return "See INSTALL.md for the weight files."
    return f"Download {entry.file} from {entry.source} and set {key} to its path (see INSTALL.md)."


def check_files(cfg: CfgNode, *, eval_only: bool = False, resume: bool = False) -> None:
    """Files the config names exist: MODEL.WEIGHTS (unless resuming from last.ckpt), the SAM
    checkpoint of joint training, and backbone weight files given as paths.

    Raises:
        UserFileError: naming the key, the missing path and what to do.
    """
    resuming = resume and not eval_only and os.path.isfile(Path(cfg.OUTPUT_DIR) / "last.ckpt")
    weights = cfg.MODEL.WEIGHTS
    if weights and not resuming and _missing(weights):
        todo = (
            "Give the checkpoint to evaluate"
            if eval_only
            else "Train the stage it comes from first (e.g. the warm-up config), or point it to a "
            "released checkpoint (see INSTALL.md)"
        )
        raise UserFileError(f"MODEL.WEIGHTS file not found: {weights}. {todo}.")
    sam = cfg.MODEL.CLOUDS.SAM
    # SAM runs in training when MODEL.CLOUDS.SAM.ENABLED (clouds.engine.joint_training)
    if not eval_only and sam.ENABLED and sam.CHECKPOINT and _missing(sam.CHECKPOINT):
        model_type = sam.MODEL_TYPE or ("vit_t" if sam.MOBILE else "vit_h")
        hint = _download_hint("MODEL.CLOUDS.SAM.CHECKPOINT", SAM_FILES, model_type)
        raise UserFileError(
            f"MODEL.CLOUDS.SAM.CHECKPOINT file not found: {sam.CHECKPOINT} (SAM {model_type}). "
            f"{hint}"
        )
    backbone = cfg.MODEL.BACKBONE.NAME
    vfm_weights = cfg.MODEL.VFM.WEIGHTS
    if backbone in OFFICIAL_FILES and vfm_weights not in ("", "random") and _missing(vfm_weights):
        hint = _download_hint("MODEL.VFM.WEIGHTS", OFFICIAL_FILES, backbone)
        raise UserFileError(f"MODEL.VFM.WEIGHTS file or folder not found: {vfm_weights}. {hint}")
    clip = cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS
    looks_like_path = os.sep in clip or clip.endswith(_WEIGHT_SUFFIXES)
    if backbone == "CLIP" and looks_like_path and _missing(clip):
        hint = _download_hint(
            "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", OFFICIAL_FILES, cfg.MODEL.CLOUDS.CLIP_MODEL_NAME
        )
        raise UserFileError(f"MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS file not found: {clip}. {hint}")


def check_processes(cfg: CfgNode, num_gpus: int) -> None:
    """``--num-gpus N`` (N > 1) with MODEL.DEVICE cuda needs N GPUs; CPU processes are asked
    for with MODEL.DEVICE cpu.

    Raises:
        ConfigError: when this machine has fewer GPUs than asked for.
    """
    if num_gpus <= 1 or cfg.MODEL.DEVICE != "cuda":
        return
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < num_gpus:
        have = "no GPU" if available == 0 else f"only {available} GPU(s)"
        raise ConfigError(
            f"--num-gpus {num_gpus} asks for {num_gpus} GPU processes but this machine has "
            f"{have}. To run {num_gpus} CPU processes instead, add MODEL.DEVICE cpu."
        )


def _weights_file_provides_foundation_models(cfg: CfgNode) -> bool:
    """Whether MODEL.WEIGHTS holds the frozen foundation models (an original CLOUDS checkpoint),
    so that none is downloaded."""
    if not cfg.MODEL.WEIGHTS or not os.path.isfile(cfg.MODEL.WEIGHTS):
        return False
    from clouds.modeling.checkpoint import provides_foundation_weights

    return provides_foundation_weights(cfg.MODEL.WEIGHTS)


def check_weights(
    cfg: CfgNode, *, eval_only: bool = False, resume: bool = False
) -> tuple[list[HubNeed], str | None]:
    """:func:`check_files`, then whether the weights the build downloads can be had. Returns
    those downloads and, when the hub cannot be used for them, why (huggingface_hub is then in
    offline mode, so a file missing from the cache fails at once; see
    :func:`clouds.utils.weights_source.weights_unavailable_message`).

    Raises:
        UserFileError: a named file is missing.
        WeightsUnavailableError: a download is needed, the hub cannot be used and the file is
            known to be absent from the local cache.
    """
    check_files(cfg, eval_only=eval_only, resume=resume)
    needs = hub_needs(cfg)
    problem = prepare_hub_access(needs, local_files_only=cfg.MODEL.VFM.LOCAL_FILES_ONLY)
    missing = missing_from_cache(needs) if problem else None
    if missing is not None and _weights_file_provides_foundation_models(cfg):
        missing = None
    if missing is not None:
        raise WeightsUnavailableError(weights_unavailable_message(missing, problem))
    return needs, problem


def run_preflight(
    cfg: CfgNode, *, num_gpus: int = 1, eval_only: bool = False, resume: bool = False
) -> tuple[list[HubNeed], str | None]:
    """Every check of a ``train_net.py`` run, datasets first; returns :func:`check_weights`'s
    result."""
    check_datasets(cfg, eval_only=eval_only)
    check_processes(cfg, num_gpus)
    return check_weights(cfg, eval_only=eval_only, resume=resume)
