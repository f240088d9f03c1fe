"""Every command of the original DGVFM README, unchanged, against toy data in its layouts.

A temporary folder plays the original repository's root: ``data/`` holds the toy datasets
(``tools/make_toy_datasets.py``, with the original's BDD100K and Mapillary layouts) and
``checkpoints/`` a tiny DINOv2 (width 32) saved as the official file is (a plain dict of the
release's entry names). Each
command runs as a process from that folder, as a user of the original would type it (our
``tools/`` named by absolute path), with tiny model sizes given through ``--cfg-options``.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clouds.data.conversion.mapillary_dgvfm import dgvfm_mapillary_train_id
from clouds.data.toy import make_toy_datasets
from clouds.data.toy.dgvfm_layout import add_dgvfm_layouts
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "tests" / "fixtures" / "dgvfm_weights"
CONFIG = "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py"
# the tiny DINOv2 (width 32, 2 heads, 4 blocks) and toy sizes, as --cfg-options
TINY = [
    "train_cfg.max_iters=2",
    "default_hooks.checkpoint.interval=2",
    "train_cfg.val_interval=0",
    "train_dataloader.num_workers=0",
    "MODEL.DEVICE=cpu",
    "MODEL.VFM.TINY=True",
    "MODEL.VFM.TINY_WIDTH=32",
    "MODEL.VFM.TINY_HEADS=2",
    "MODEL.VFM.TINY_DEPTH=4",
    "MODEL.VFM.OUT_INDICES=[0,1,2,3]",
    "MODEL.VFM.CONVERT_SIZE=[64,64]",
    "MODEL.LORA.RANK=4",
    "MODEL.LORA.ALPHA=4",
    "MODEL.VFM_HEAD.HIDDEN_DIM=128",
    "MODEL.VFM_HEAD.REFINE_LAYERS=1",
    "MODEL.VFM_HEAD.REFINE_HEADS=4",
    "MODEL.VFM_HEAD.REFINE_HEAD_DIM=16",
    "MODEL.VFM_HEAD.SUB_CROP=32",
    "MODEL.VFM_HEAD.SUB_CROP_GRID=16",
    "DATALOADER.RARE_CLASS_MIN_PIXELS=0",
    "INPUT.CROP.SIZE=(64,64)",
    "INPUT.VFM_PIPELINE.TRAIN_SCALE=(128,64)",
    "INPUT.VFM_PIPELINE.TEST_SCALES=[[128,64]]",
    "TEST.SLIDE.WINDOW=(32,32)",
    "TEST.SLIDE.STRIDE=(32,32)",
    "TEST.COARSE_TO_FINE.COARSE_SIZE=(32,64)",
]


def _run(cwd: Path, *command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATASETS")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _tool(cwd: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    return _run(cwd, sys.executable, str(REPO / "tools" / tool), *args)


@pytest.fixture(scope="module")
def original_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original repository's root: raw toy ``data/`` and the official DINOv2 file."""
    root = tmp_path_factory.mktemp("vfmseg")
    add_dgvfm_layouts(make_toy_datasets(root / "data", num_images=2, size=(64, 128)))
    (root / "checkpoints").mkdir()
    cfg = tiny_vfm_cfg("DINOv2", ["MODEL.LORA.ENABLED", "False", "MODEL.VFM.TINY_HEADS", "2"])
    vit = BACKBONE_REGISTRY.get("DINOv2").from_config(cfg).vit
    torch.save(dict(vit.state_dict()), root / "checkpoints/dinov2_vitl14_pretrain.pth")
    return root


@pytest.fixture(scope="module")
def prepared_root(original_root: Path) -> Path:
    """After the README's "Convert the dataset" and "Convert" steps (checked here)."""
    root = original_root
    for args in (
        ("gta.py", "data/gta"),
        ("cityscapes.py", "data/cityscapes"),
        (
            "mapillary2cityscape.py",
            "data/mapillary",
            "data/mapillary/cityscapes_trainIdLabel",
            "--train_id",
        ),
    ):
        done = _tool(root, f"convert_datasets/{args[0]}", *args[1:])
        assert done.returncode == 0, done.stderr
    converted = _tool(
        root,
        "convert_models/convert_dinov2.py",
        "checkpoints/dinov2_vitl14_pretrain.pth",
        "checkpoints/dinov2_converted.pth",
        "--height",
        "64",
        "--width",
        "64",
    )
    assert converted.returncode == 0, converted.stderr
    return root


def test_dataset_conversions_write_the_original_layouts(prepared_root: Path) -> None:
    data = prepared_root / "data"
    assert len(list((data / "gta/labels").glob("*_labelTrainIds.png"))) == 2
    assert len(list((data / "cityscapes/gtFine").rglob("*_gtFine_labelTrainIds.png"))) == 4
    for split, folder in (("train", "training"), ("val", "validation")):
        for raw in (data / "mapillary" / folder / "v1.2" / "labels").glob("*.png"):
            out = data / "mapillary/cityscapes_trainIdLabel" / split / "label" / raw.name
            with Image.open(out) as img:
                assert img.mode == "L"
                converted = np.asarray(img)
            names = json.loads((data / "mapillary/config_v1.2.json").read_text())["labels"]
            lut = np.array([dgvfm_mapillary_train_id(n["readable"]) for n in names], np.uint8)
            assert np.array_equal(converted, lut[np.asarray(Image.open(raw))])


def test_mapillary_mapping_is_the_originals() -> None:
    expected = {
        "Bike Lane": 0, "Parking": 0, "Service Lane": 0, "Crosswalk - Plain": 0,
        "Lane Marking - General": 0, "Curb": 1, "Curb Cut": 1, "Pedestrian Area": 1,
        "Street Light": 5, "Utility Pole": 5, "Traffic Sign (Back)": 7, "Traffic Sign Frame": 7,
        "Traffic Light": 6, "Bicyclist": 12, "On Rails": 16, "Manhole": 255, "Rail Track": 255,
        "Ego Vehicle": 255, "Car": 13,
    }  # fmt: skip
    assert {name: dgvfm_mapillary_train_id(name) for name in expected} == expected


@pytest.mark.parametrize(
    ("tool", "official", "args"),
    [
        ("convert_dinov2.py", "dinov2_official.pth", ["--height", "64", "--width", "64"]),
        ("convert_eva2_512x512.py", "eva02_official.pt", []),
        ("convert_clip.py", "clip_official.pt", ["--height", "64", "--embed_dim", "8"]),
        ("convert_sam.py", "sam_official.pth", ["--height", "64", "--width", "64"]),
    ],
)
def test_model_converters_write_what_the_original_writes(
    tool: str, official: str, args: list[str], tmp_path: Path
) -> None:
    """The fixtures' ``converted`` entries were written by the original converters."""
    out = tmp_path / "converted.pth"
    main = runpy.run_path(str(REPO / "tools/convert_models" / tool), run_name="tool")["main"]
    assert main([str(WEIGHTS / official), str(out), *args]) == 0
    written = torch.load(out)
    record = torch.load(WEIGHTS / f"{official.split('_')[0]}_original.pt")
    assert type(written) is dict and sorted(written) == record["converted_keys"]
    for key, expected in record["converted"].items():
        assert written[key].dtype == expected.dtype and torch.equal(written[key], expected), key


def test_train_then_test_as_the_readme(prepared_root: Path) -> None:
    root = prepared_root
    trained = _tool(root, "train.py", CONFIG, "--cfg-options", *TINY)
    assert trained.returncode == 0, trained.stderr[-3000:]
    work_dir = root / "work_dirs/dg_lora_dinov2_ms_masked"
    assert "dg_cityscapes_val/sem_seg/mIoU" in (work_dir / "metrics.json").read_text()
    config = (work_dir / "config.yaml").read_text()
    assert "checkpoints/dinov2_converted.pth" in config  # the original's converted file
    checkpoint = str(work_dir / "model_final.ckpt")
    tested = _tool(
        root,
        "test.py",
        CONFIG,
        checkpoint,
        "--backbone",
        "checkpoints/dinov2_converted.pth",
        "--cfg-options",
        *TINY,
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    results = (root / "work_dirs/dg_lora_dinov2_ms_masked_test" / "metrics.json").read_text()
    assert "dg_cityscapes_val/sem_seg/mIoU" in results


def test_dist_train_script_trains_on_two_processes(prepared_root: Path) -> None:
    """``tools/dist_train.sh CONFIG 2`` (CPU processes here): two ranks, one run."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    work_dir = "work_dirs/dist_two_processes"
    env = {"PORT": str(port), "PATH": os.environ["PATH"]}
    done = _run(
        prepared_root,
        "env",
        *(f"{k}={v}" for k, v in env.items()),
        "bash",
        str(REPO / "tools/dist_train.sh"),
        CONFIG,
        "2",
        "--work-dir",
        work_dir,
        "--cfg-options",
        *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config = (prepared_root / work_dir / "config.yaml").read_text()
    assert "IMS_PER_GPU: 2" in config
    assert "2 image(s) per process x 2 process(es)" in done.stdout + done.stderr


def test_commands_without_weights_name_the_file(original_root: Path, tmp_path: Path) -> None:
    for tool, args in (
        ("train.py", [CONFIG]),
        ("test.py", [CONFIG, "iter_40000.pth", "--backbone", "checkpoints/dinov2_converted.pth"]),
        ("convert_models/convert_dinov2.py", ["checkpoints/x.pth", "checkpoints/y.pth"]),
    ):
        done = _tool(tmp_path, tool, *args)
        assert done.returncode == 1, (tool, done.stderr)
        assert "Traceback" not in done.stderr
    assert "checkpoints/dinov2_converted.pth" in _tool(tmp_path, "train.py", CONFIG).stderr
    scripted = _run(REPO, "bash", str(REPO / "test.sh"))
    assert scripted.returncode == 1 and "iter_40000.pth" in scripted.stderr


def test_configs_and_options_without_counterpart_are_refused(tmp_path: Path) -> None:
    rein = _tool(tmp_path, "train.py", "configs/uda/uda_rein_dinov2_hrda_1024x1024.py")
    assert rein.returncode == 2 and "no counterpart" in rein.stderr
    assert "dg_lora_dinov2_ms_masked.py" in rein.stderr
    option = _tool(tmp_path, "train.py", CONFIG, "--cfg-options", "model.decode_head.channels=8")
    assert option.returncode == 2 and "model.decode_head.channels" in option.stderr
