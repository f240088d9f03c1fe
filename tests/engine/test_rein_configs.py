"""Each Rein config of the original's (configs/dg/gta2citys/dg_rein_*.yaml) loads, builds, trains
one step and evaluates through train_net.py on the tiny datasets, with a tiny DINOv2 and Rein."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine._tiny import NUM_CLASSES, SIZE, register_tiny_datasets
from tests.engine._vfm_configs import as_overrides, tiny_run_opts, train_and_evaluate

# config -> its own tiny overrides (crops, multi-scale sub-crop, context-head widths)
CONFIGS = {
    "configs/dg/gta2citys/dg_rein_dinov2_linearhead.yaml": {
        "INPUT.CROP.SIZE": f"({SIZE[0]}, {SIZE[0]})",
        "INPUT.VFM_PIPELINE.TRAIN_SHORT_EDGES": f"[{SIZE[0]}]",
    },
    "configs/dg/gta2citys/dg_rein_dinov2_ms_1024x1024.yaml": {
        "INPUT.CROP.SIZE": "(64, 64)",
        "INPUT.VFM_PIPELINE.TRAIN_SCALE": "(128, 64)",
        "MODEL.VFM_HEAD.HIDDEN_DIM": 32,
        "MODEL.VFM_HEAD.REFINE_HEADS": 2,
        "MODEL.VFM_HEAD.REFINE_HEAD_DIM": 16,
        "MODEL.VFM_HEAD.SUB_CROP": 32,
        "MODEL.VFM_HEAD.SUB_CROP_GRID": 16,
        "TEST.COARSE_TO_FINE.COARSE_SIZE": f"({SIZE[0]}, {SIZE[1]})",
    },
}


def _overrides(output_dir: Path, extra: dict) -> list[str]:
    opts = {
        "MODEL.DEVICE": "cpu",
        "MODEL.VFM.WEIGHTS": "random",
        "MODEL.VFM.TINY": True,
        "MODEL.VFM.TINY_WIDTH": 32,
        "MODEL.VFM.TINY_DEPTH": 4,
        "MODEL.VFM.TINY_HEADS": 2,
        "MODEL.VFM.OUT_INDICES": "[0, 1, 2, 3]",
        "MODEL.VFM.CONVERT_SIZE": "[64, 64]",
        "MODEL.REIN.TOKEN_LENGTH": 4,
        "MODEL.REIN.LORA_DIM": 2,
        "MODEL.VFM_HEAD.HIDDEN_DIM": 128,
        **tiny_run_opts(output_dir),
        "DATALOADER.RARE_CLASS_MIN_PIXELS": 0,
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": NUM_CLASSES,
        "TEST.SLIDE.WINDOW": f"({SIZE[0]}, {SIZE[0]})",
        "TEST.SLIDE.STRIDE": f"({SIZE[0]}, {SIZE[0]})",
        "TEST.EVAL_PERIOD": 0,
        **extra,
    }
    return as_overrides(opts)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: Path(c).stem)
def test_rein_config_trains_one_step_and_evaluates(config: str, tmp_path: Path) -> None:
    register_tiny_datasets(str(tmp_path / "data"))
    run = tmp_path / "run"
    keys = train_and_evaluate(config, _overrides(run, CONFIGS[config]), run)
    assert any(k.startswith("backbone.reins.learnable_tokens_a") for k in keys)
    assert not [k for k in keys if k.startswith("backbone.vit.")], "frozen ViT checkpointed"
