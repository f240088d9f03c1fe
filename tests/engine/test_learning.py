"""The tiny CLOUDS learns: a short CPU warm-up on toy GTA5 segments held-out toy GTA5 images
far better than chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds.config import load_config
from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.data.conversion import CONVERSIONS
from clouds.data.datasets import register_all_datasets
from clouds.data.toy import make_toy_datasets
from clouds.engine.launch import run

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = "toy_gta5_heldout"


def _toy_root(path: Path, seed: int, num_images: int) -> Path:
    make_toy_datasets(path, seed=seed, num_images=num_images)
    CONVERSIONS["gta"].convert(str(path), nproc=1)
    return path


@pytest.fixture()
def toy_gta5(tmp_path):
    """Register gta5 (8 training images) and HELD_OUT (4 new scenes of the same domain)."""
    held_out = register_all_datasets(_toy_root(tmp_path / "heldout", seed=1, num_images=4))
    dicts = DatasetCatalog.get("gta5")
    assert all(str(held_out) in d["file_name"] for d in dicts)
    register_all_datasets(_toy_root(tmp_path / "train", seed=0, num_images=8))
    DatasetCatalog.remove(HELD_OUT)
    DatasetCatalog.register(HELD_OUT, lambda: [dict(d) for d in dicts])
    source = MetadataCatalog.get("gta5")
    MetadataCatalog.get(HELD_OUT).set(
        stuff_classes=source.stuff_classes,
        stuff_colors=source.stuff_colors,
        ignore_label=source.ignore_label,
        evaluator_type="sem_seg",
    )
    yield
    DatasetCatalog.remove(HELD_OUT)
    MetadataCatalog.remove(HELD_OUT)


def test_tiny_clouds_learns_toy_gta5(toy_gta5, tmp_path) -> None:
    def cfg_for(max_iter: int, out: str):
        cfg = load_config(
            str(REPO / "configs" / "toy" / "warmup_gta.yaml"),
            [
                "DATASETS.TEST", f"('{HELD_OUT}',)",
                "SOLVER.MAX_ITER", str(max_iter),
                "SOLVER.CHECKPOINT_PERIOD", "1000",
                "OUTPUT_DIR", str(tmp_path / out),
            ],
        )  # fmt: skip
        cfg.freeze()
        return cfg

    untrained = run(cfg_for(1, "untrained"), eval_only=True)[HELD_OUT]["sem_seg"]["mIoU"]
    trained = run(cfg_for(300, "trained"))[HELD_OUT]["sem_seg"]["mIoU"]
    # 19 classes: the untrained model scores ~1 mIoU; 300 iterations reach ~15 (600: ~26)
    assert trained > 8.0 and trained > 5 * untrained, (untrained, trained)
