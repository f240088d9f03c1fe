"""``train_net.py``, ``generate_txt_im.py`` and ``demo/demo.py`` on a user's usual mistakes, run
as a user runs them (fresh interpreter, the repository's real configs): one message naming what
to change, an exit code, no traceback, and no heavy import before the answer.

The hub is switched off (``HF_HUB_OFFLINE``) with an empty hub cache, as on a cluster without
internet: the real configs' CLIP weights must then fail at once, naming the key to set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from clouds.config import CfgNode, load_config
from clouds.data.catalog import MetadataCatalog
from clouds.data.datasets import register_all_datasets

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("lightning", "open_clip", "diffusers", "timm", "transformers")
CPU = ("MODEL.DEVICE", "cpu")  # no GPU here: asking for one is an error


def _config(folder: str, wanted: Callable[[CfgNode], bool]) -> Path:
    """The first real config under ``configs/<folder>`` for which ``wanted(cfg)`` holds."""
    for path in sorted((ROOT / "configs" / folder).glob("*.yaml")):
        if wanted(load_config(str(path))):
            return path
    raise AssertionError(f"no config in configs/{folder} fits")


def _convnext(cfg: CfgNode) -> bool:
    return cfg.MODEL.CLOUDS.CLIP_MODEL_NAME == "convnext_large_d_320"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Dataset folders of the GTA5 configs (empty), hub off with an empty cache, no GPU."""
    root = tmp_path / "datasets"
    register_all_datasets(root)
    for name in ("gta5", "mapillary_val", "bdd_val", "cityscapes_val"):
        meta = MetadataCatalog.get(name)
        for folder in (meta.image_root, meta.sem_seg_root):
            Path(folder).mkdir(parents=True, exist_ok=True)
    (root / "stable_diffusion" / "llama70b_v2" / "images").mkdir(parents=True)
    register_all_datasets()  # back to the default root for the other tests
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DETECTRON2_DATASETS=str(root),
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        CUDA_VISIBLE_DEVICES="",
    )


def _run(env: dict[str, str], *argv: str) -> tuple[int, str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stderr.splitlines()
    heavy = sorted(
        {
            line.rsplit("|", 1)[-1].strip()
            for line in lines
            if line.startswith("import time:")
            and line.rsplit("|", 1)[-1].strip().split(".")[0] in HEAVY
        }
    )
    message = "\n".join(line for line in lines if not line.startswith("import time:"))
    assert "Traceback" not in message
    return proc.returncode, message, heavy


def _train_net(env: dict[str, str], *argv: str) -> tuple[int, str, list[str]]:
    return _run(env, str(ROOT / "train_net.py"), *argv)


def test_missing_dataset(env: dict[str, str], tmp_path: Path) -> None:
    env["DETECTRON2_DATASETS"] = str(tmp_path / "elsewhere")
    cfg = _config("warmup/gta", _convnext)
    code, message, heavy = _train_net(env, "--config-file", str(cfg), "OUTPUT_DIR", str(tmp_path))
    assert code == 1 and heavy == []
    assert "Dataset 'gta5' (DATASETS.TRAIN): folder" in message
    assert "$DETECTRON2_DATASETS" in message and "datasets/README.md" in message


def test_real_config_without_network_names_the_key(env: dict[str, str], tmp_path: Path) -> None:
    cfg = _config("warmup/gta", _convnext)
    code, message, heavy = _train_net(
        env, "--config-file", str(cfg), "OUTPUT_DIR", str(tmp_path), *CPU
    )
    assert code == 1 and heavy == []
    assert "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS='laion2b_s29b_b131k_ft_soup'" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert (
        "set MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS /path/to/open_clip_pytorch_model.bin" in message
    )


def test_missing_checkpoint_and_sam(env: dict[str, str], tmp_path: Path) -> None:
    cfg = _config("joint_training/gta", _convnext)
    out = ["OUTPUT_DIR", str(tmp_path), *CPU]
    code, message, _ = _train_net(env, "--config-file", str(cfg), *out)
    assert code == 1 and "MODEL.WEIGHTS file not found" in message
    weights = tmp_path / "warmup.ckpt"
    weights.write_bytes(b"x")
    sam = ["MODEL.CLOUDS.SAM.CHECKPOINT", str(tmp_path / "mobile_sam.pt")]
    code, message, heavy = _train_net(
        env, "--config-file", str(cfg), *out, "MODEL.WEIGHTS", str(weights), *sam
    )
    assert code == 1 and heavy == []
    assert "MODEL.CLOUDS.SAM.CHECKPOINT file not found" in message and "mobile_sam.pt" in message


def test_gpu_processes_without_gpus(env: dict[str, str], tmp_path: Path) -> None:
    cfg = _config("warmup/gta", _convnext)
    argv = ["--config-file", str(cfg), "--num-gpus", "2", "OUTPUT_DIR", str(tmp_path)]
    code, message, _ = _train_net(env, *argv)
    assert code == 2 and "this machine has no GPU" in message and "MODEL.DEVICE cpu" in message


def test_generation_offline(env: dict[str, str], tmp_path: Path) -> None:
    code, message, heavy = _run(
        env,
        str(ROOT / "generate_txt_im.py"),
        "--folder",
        "x",
        "--output-root",
        str(tmp_path),
        "--num-images",
        "1",
    )
    assert code == 2 and heavy == []
    assert "--model-id='stabilityai/stable-diffusion-2'" in message
    assert "set --model-id /path/to/stable-diffusion-2" in message


def test_demo_missing_weights(env: dict[str, str], tmp_path: Path) -> None:
    cfg = _config("warmup/gta", _convnext)
    argv = ["--config-file", str(cfg), "--input", str(tmp_path), "--output", str(tmp_path)]
    code, message, heavy = _run(
        env, str(ROOT / "demo/demo.py"), *argv, "MODEL.WEIGHTS", str(tmp_path / "m.ckpt")
    )
    assert code == 1 and heavy == []
    assert "MODEL.WEIGHTS file not found" in message
