"""Checks of a loaded config before anything heavy is built: ``--num-gpus``, OUTPUT_DIR,
datasets, the GPUs asked for, then the files the config names (checkpoint, SAM, backbone
weights: present, whole and of a format their reader takes) and whether weights that must be
downloaded can be.

Each failed check raises a known user error (see :mod:`clouds.cli_errors`) whose message names
the key or flag to change. Nothing here imports Lightning or a model library.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from clouds.cli_errors import UserFileError
from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import DatasetCatalog, MetadataCatalog, UnknownDatasetError
from clouds.data.data_check import check_config_data, data_check_wanted
from clouds.data.datasets import DatasetNotFoundError, register_all_datasets
from clouds.data.datasets.register_dgvfm import DGVFM_DATASET_NAMES, dgvfm_datasets_root
from clouds.utils.output_dir import check_output_dir
from clouds.utils.weights_file import (
    CHECKPOINT_TODO,
    OPEN_CLIP_FORMATS,
    TORCH,
    check_weights_file,
    resolve_weights_path,
)
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
    "check_data_before_training",
    "check_datasets",
    "check_files",
    "check_num_gpus",
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


def _redownload_hint(official: dict[str, OfficialFile], name: str) -> str:
    """What to do about a bad copy of the official file ``name`` (default when unknown)."""
    entry = official.get(name)
    if entry is None:
        return ""
    return f"Download {entry.file} again from {entry.source} (INSTALL.md lists its size)"


def _check_contents(cfg: CfgNode, *, eval_only: bool, resuming: bool) -> None:
    """The weight files the config names that exist are whole files of a format their reader
    takes (:func:`clouds.utils.weights_file.check_weights_file`: header and zip directory
    only, so this takes milliseconds whatever their size)."""
    weights = cfg.MODEL.WEIGHTS
    if weights and not resuming:
        check_weights_file(
            os.path.expanduser(weights), key="MODEL.WEIGHTS", todo=CHECKPOINT_TODO, formats=TORCH
        )
    sam = cfg.MODEL.CLOUDS.SAM
    if not eval_only and sam.ENABLED and sam.CHECKPOINT:
        model_type = sam.MODEL_TYPE or ("vit_t" if sam.MOBILE else "vit_h")
        todo = _redownload_hint(SAM_FILES, model_type)
        check_weights_file(
            sam.CHECKPOINT, key="MODEL.CLOUDS.SAM.CHECKPOINT", todo=todo, formats=TORCH
        )
    backbone = cfg.MODEL.BACKBONE.NAME
    vfm_weights = cfg.MODEL.VFM.WEIGHTS
    if backbone in OFFICIAL_FILES and vfm_weights not in ("", "random"):
        todo = _redownload_hint(OFFICIAL_FILES, backbone)
        check_weights_file(resolve_weights_path(vfm_weights), key="MODEL.VFM.WEIGHTS", todo=todo)
    clip = os.path.expanduser(cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS)
    if backbone == "CLIP" and os.path.isfile(clip):
        todo = _redownload_hint(OFFICIAL_FILES, cfg.MODEL.CLOUDS.CLIP_MODEL_NAME)
        check_weights_file(
            clip, key="MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", todo=todo, formats=OPEN_CLIP_FORMATS
        )


def check_files(cfg: CfgNode, *, eval_only: bool = False, resume: bool = False) -> None:
    """Files the config names exist and are whole weight files of a format their reader takes:
    MODEL.WEIGHTS (unless resuming from last.ckpt), the SAM checkpoint of joint training, and
    backbone weight files given as paths.

    Raises:
        UserFileError: naming the key, the missing path and what to do.
        WeightsFileError: an empty, truncated, corrupt or wrong-format file, naming the key.
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
    _check_contents(cfg, eval_only=eval_only, resuming=resuming)


def check_num_gpus(num_gpus: int) -> None:
    """``--num-gpus`` is a count of processes per machine: at least 1.

    Raises:
        ConfigError: naming the flag and the value.
    """
    if num_gpus < 1:
        raise ConfigError(
            f"--num-gpus must be at least 1 (processes per machine, one GPU each), got "
            f"{num_gpus}. To run on the CPU, add MODEL.DEVICE cpu (with --num-gpus N for N CPU "
            "processes)."
        )


def _gpu_count() -> int:
    """The GPUs this process may use. Without importing torch (seconds) when the answer is
    plainly none: CUDA_VISIBLE_DEVICES empty, or a Linux machine with neither an NVIDIA nor an
    AMD (ROCm) driver loaded."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    no_driver = not os.path.isdir("/proc/driver/nvidia") and not os.path.exists("/dev/kfd")
    if sys.platform == "linux" and no_driver:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_processes(cfg: CfgNode, num_gpus: int) -> None:
    """``--num-gpus N`` with MODEL.DEVICE cuda needs N GPUs on this machine, for every N (1
    included: asking for a GPU the machine lacks is an error, not a silent CPU run); CPU
    processes are asked for with MODEL.DEVICE cpu.

    Raises:
        ConfigError: N < 1, MODEL.DEVICE neither cuda nor cpu, or fewer GPUs than asked for.
    """
    check_num_gpus(num_gpus)
    if cfg.MODEL.DEVICE not in ("cuda", "cpu"):
        raise ConfigError(f"MODEL.DEVICE must be 'cuda' or 'cpu', got {cfg.MODEL.DEVICE!r}")
    if cfg.MODEL.DEVICE != "cuda":
        return
    available = _gpu_count()
    if available < num_gpus:
        have = "no GPU" if available == 0 else f"only {available} GPU(s)"
        processes = "1 GPU process" if num_gpus == 1 else f"{num_gpus} GPU processes"
        cpu = "the CPU" if num_gpus == 1 else f"{num_gpus} CPU processes"
        raise ConfigError(
            f"--num-gpus {num_gpus} asks for {processes} but this machine has {have}. To run "
            f"on {cpu} instead, add MODEL.DEVICE cpu."
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


def _launching_process() -> bool:
    """Whether this process was started by the user, not by a launcher (torchrun, srun) or
    by Lightning for another local rank."""
    env = os.environ
    started = ("RANK", "LOCAL_RANK")
    return not any(k in env for k in started) and env.get("SLURM_NTASKS", "1") == "1"


def check_data_before_training(cfg: CfgNode) -> None:
    """Scan every image and label of the training and test sets
    (:func:`clouds.data.data_check.check_config_data`) when the training is long enough
    (:func:`~clouds.data.data_check.data_check_wanted`). Processes started by a launcher skip
    it (the first would hold the others at their rendezvous): run ``train_net.py
    --check-data`` once beforehand there.

    Raises:
        DataCheckError: one line per bad file.
    """
    if data_check_wanted(cfg) and _launching_process():
        check_config_data(cfg)


def run_preflight(
    cfg: CfgNode, *, num_gpus: int = 1, eval_only: bool = False, resume: bool = False
) -> tuple[list[HubNeed], str | None]:
    """Every check of a ``train_net.py`` run: ``--num-gpus``, OUTPUT_DIR, datasets, GPUs, then
    weight files; returns :func:`check_weights`'s result."""
    check_num_gpus(num_gpus)
    check_output_dir(cfg.OUTPUT_DIR)
    check_datasets(cfg, eval_only=eval_only)
    check_processes(cfg, num_gpus)
    return check_weights(cfg, eval_only=eval_only, resume=resume)
