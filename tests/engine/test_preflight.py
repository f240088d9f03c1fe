"""Checks before the heavy build: datasets first, named files, GPUs asked for, hub weights."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from clouds.cli_errors import UserFileError
from clouds.config import ConfigError, get_cfg
from clouds.data.catalog import MetadataCatalog, UnknownDatasetError
from clouds.data.datasets import DatasetNotFoundError, register_all_datasets
from clouds.engine import preflight
from clouds.utils import weights_source
from clouds.utils.weights_source import WeightsUnavailableError


@pytest.fixture
def datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """$DETECTRON2_DATASETS with the (empty) folders of every dataset."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    register_all_datasets(root)
    for name in ("gta5", "cityscapes_val", "bdd_val"):
        meta = MetadataCatalog.get(name)
        for folder in (meta.image_root, meta.sem_seg_root):
            Path(folder).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hub switched off, empty hub cache; restored after the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def _cfg(**overrides: object):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("gta5",)
    cfg.DATASETS.TEST = ("cityscapes_val",)
    cfg.MODEL.DEVICE = "cpu"  # the GPU checks ask for cuda themselves
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def test_missing_dataset_folder_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError, match=r"'gta5' \(DATASETS.TRAIN\).*images"):
        preflight.check_datasets(_cfg())
    with pytest.raises(DatasetNotFoundError, match="cityscapes_val.*DATASETS.TEST"):
        preflight.check_datasets(_cfg(), eval_only=True)  # the training set is not read


def test_missing_dgvfm_dataset_names_its_own_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "detectron2"))
    monkeypatch.setenv("DGVFM_DATASETS", str(tmp_path / "dgvfm"))
    cfg = _cfg(**{"DATASETS.TRAIN": ("dg_gta_train",)})
    with pytest.raises(DatasetNotFoundError, match=r"\$DGVFM_DATASETS .*now .*dgvfm\)") as info:
        preflight.check_datasets(cfg)
    assert "detectron2" not in str(info.value)


def test_unknown_dataset_suggests_the_closest(datasets: Path) -> None:
    with pytest.raises(UnknownDatasetError, match="did you mean cityscapes_val"):
        preflight.check_datasets(_cfg(**{"DATASETS.TEST": ("cityscape_val",)}))
    preflight.check_datasets(_cfg())


def test_datasets_are_checked_before_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: None
) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nothing"))
    cfg = _cfg(**{"MODEL.WEIGHTS": str(tmp_path / "absent.ckpt")})
    with pytest.raises(DatasetNotFoundError):
        preflight.run_preflight(cfg)


def test_missing_files_name_their_key(datasets: Path, tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.ckpt")
    with pytest.raises(UserFileError, match="MODEL.WEIGHTS file not found: .*absent.ckpt"):
        preflight.check_files(_cfg(**{"MODEL.WEIGHTS": absent}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "last.ckpt").write_bytes(b"x")  # resuming: MODEL.WEIGHTS is not read
    preflight.check_files(
        _cfg(**{"MODEL.WEIGHTS": absent, "OUTPUT_DIR": str(tmp_path / "out")}), resume=True
    )
    joint = {
        "DATASETS.TRAIN": ("gta5", "sd_v2"),
        "MODEL.CLOUDS.SAM.ENABLED": True,
        "MODEL.CLOUDS.SAM.CHECKPOINT": absent,
    }
    with pytest.raises(UserFileError, match="SAM.CHECKPOINT .*mobile_sam.pt from https://"):
        preflight.check_files(_cfg(**joint))
    preflight.check_files(_cfg(**joint), eval_only=True)
    with pytest.raises(UserFileError, match="SAM vit_h.*sam_vit_h_4b8939.pth"):
        preflight.check_files(_cfg(**joint, **{"MODEL.CLOUDS.SAM.MOBILE": False}))
    vfm = {"MODEL.BACKBONE.NAME": "EVA02", "MODEL.VFM.WEIGHTS": absent}
    with pytest.raises(UserFileError, match="MODEL.VFM.WEIGHTS .*eva02_L_pt_m38m_p14to16.pt"):
        preflight.check_files(_cfg(**vfm))
    clip = {"MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS": absent}
    with pytest.raises(UserFileError, match="CLIP_PRETRAINED_WEIGHTS file not found"):
        preflight.check_files(_cfg(**clip))


def test_gpu_processes_need_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda = {"MODEL.DEVICE": "cuda"}
    with pytest.raises(ConfigError, match="--num-gpus 2 .*no GPU.*MODEL.DEVICE cpu"):
        preflight.check_processes(_cfg(**cuda), 2)
    preflight.check_processes(_cfg(**{"MODEL.DEVICE": "cpu"}), 2)  # CPU processes, asked for
    # the same rule for every N: one GPU process without a GPU is an error too
    with pytest.raises(ConfigError, match="--num-gpus 1 asks for 1 GPU process .*no GPU"):
        preflight.check_processes(_cfg(**cuda), 1)
    for bad in (0, -1):
        with pytest.raises(
            ConfigError, match=rf"--num-gpus must be at least 1 \(.*\), got {bad}\."
        ):
            preflight.check_processes(_cfg(**{"MODEL.DEVICE": "cpu"}), bad)


def test_gpus_are_counted_by_torch_only_where_a_driver_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="--num-gpus 1 .*no GPU"):
        preflight.check_processes(_cfg(**{"MODEL.DEVICE": "cuda"}), 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    is_dir = preflight.os.path.isdir
    monkeypatch.setattr(
        preflight.os.path, "isdir", lambda p: p == "/proc/driver/nvidia" or is_dir(p)
    )
    preflight.check_processes(_cfg(**{"MODEL.DEVICE": "cuda"}), 2)
    with pytest.raises(ConfigError, match="--num-gpus 3 .*only 2 GPU"):
        preflight.check_processes(_cfg(**{"MODEL.DEVICE": "cuda"}), 3)


def test_offline_weights_fail_at_once_naming_the_key(datasets: Path, offline: None) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        preflight.run_preflight(_cfg())
    message = str(info.value)
    assert "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS='laion2b_s29b_b131k_ft_soup'" in message
    assert "HF_HUB_OFFLINE is set" in message and "open_clip_pytorch_model.bin" in message


def test_unreachable_hub_with_cached_weights_goes_offline(
    datasets: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights_source, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(weights_source, "in_hub_cache", lambda repo, name: True)
    needs, problem = preflight.run_preflight(_cfg())
    assert [n.key for n in needs] == ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS"]
    assert problem == "the Hugging Face hub is unreachable"
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # the cached file loads without retries
