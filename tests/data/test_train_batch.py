"""The training batch of each process: the DGVFM configs set it per process (mmseg's per-GPU
``batch_size``, SOLVER.IMS_PER_GPU), the CLOUDS configs as a total (detectron2's
SOLVER.IMS_PER_BATCH); setting both, or neither, is an error naming the keys.

Fixture ``tests/fixtures/dgvfm_batch/mmengine_infinite_sampler.json``: the first 6 batches of each
rank of the original's training loader (mmengine 0.10.4 ``InfiniteSampler(shuffle=True,
seed=0)``, the seed of its ``randomness`` config, per-GPU ``batch_size=2``) over 7 images for 1, 2
and 3 processes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from clouds.config import ConfigError, load_config
from clouds.data.build import build_train_loader, images_per_rank
from clouds.data.catalog import DatasetCatalog

ROOT = Path(__file__).resolve().parents[2]
DGVFM_CONFIGS = sorted((ROOT / "configs/dg").rglob("*.yaml"))
CLOUDS_CONFIGS = sorted(
    p
    for d in ("segmentation", "warmup", "joint_training")
    for p in (ROOT / "configs" / d).rglob("*.yaml")
)
SAMPLER = json.loads(
    (ROOT / "tests/fixtures/dgvfm_batch/mmengine_infinite_sampler.json").read_text()
)


@pytest.mark.parametrize("path", DGVFM_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_dgvfm_configs_give_every_process_the_originals_per_gpu_batch(path: Path) -> None:
    cfg = load_config(str(path))
    # 2 per GPU, 4 in the Rein CLIP / SAM Mask2Former configs (each config's value is checked
    # against its original in tests/data/test_vfm_configs.py and tests/engine/test_mask2former_configs.py)
    per_gpu = cfg.SOLVER.IMS_PER_GPU
    assert per_gpu in (2, 4) and cfg.SOLVER.IMS_PER_BATCH == 0
    assert [images_per_rank(cfg, n) for n in (1, 2, 3, 8)] == [per_gpu] * 4


def test_clouds_configs_keep_a_total_batch() -> None:
    assert len(CLOUDS_CONFIGS) >= 18
    for path in CLOUDS_CONFIGS:
        cfg = load_config(str(path))
        total = cfg.SOLVER.IMS_PER_BATCH
        assert cfg.SOLVER.IMS_PER_GPU == 0 and total > 0, path
        assert images_per_rank(cfg, 1) == total and images_per_rank(cfg, 2) == total // 2, path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["SOLVER.IMS_PER_BATCH", 8], "are both set"),
        (["SOLVER.IMS_PER_GPU", 0], "Set the training batch"),
        (["SOLVER.IMS_PER_GPU", -1], "must be >= 0"),
        (
            ["SOLVER.IMS_PER_GPU", 0, "SOLVER.IMS_PER_BATCH", 3],
            "multiple of the number of processes",
        ),
    ],
)
def test_bad_batch_keys_are_refused_naming_them(overrides: list, message: str) -> None:
    config = str(ROOT / "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.yaml")
    cfg = load_config(config, [str(x) for x in overrides])
    with pytest.raises(ConfigError, match=message) as error:
        images_per_rank(cfg, 2)
    assert "SOLVER.IMS_PER" in str(error.value)


@pytest.fixture
def seven_images():
    name = "batch_test_seven"
    DatasetCatalog.register(name, lambda: [{"file_name": str(i)} for i in range(7)])
    yield name
    DatasetCatalog.remove(name)


@pytest.mark.parametrize("run", SAMPLER["runs"], ids=lambda r: f"{r['world_size']}proc")
def test_each_process_gets_the_batches_of_the_originals_loader(seven_images, run: dict) -> None:
    """dg_citys2ACDC (uniform sampling, as the original's InfiniteSampler): rank r of N trains on
    the batches the original's rank r gets, whatever N."""
    cfg = load_config(
        str(ROOT / "configs/dg/datasets/dg_citys2ACDC_1024x1024.yaml"),
        ["DATASETS.TRAIN", f"('{seven_images}',)", "DATALOADER.NUM_WORKERS", "0"],
    )
    assert SAMPLER["seed"] == cfg.SEED
    for rank, expected in enumerate(run["batches"]):
        loader = build_train_loader(
            cfg, rank=rank, world_size=run["world_size"], mapper=lambda d: int(d["file_name"])
        )
        assert list(itertools.islice(iter(loader), len(expected))) == expected
