"""The original DGVFM tools' ``--cfg-options`` mapped onto our keys."""

from __future__ import annotations

import pytest

from clouds.config import ConfigError, load_config
from clouds.data.build import images_per_rank
from clouds.engine.dgvfm_commands import cfg_options_to_opts

CONFIG = "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.yaml"


def test_batch_size_option_is_per_gpu_as_in_mmseg() -> None:
    """``train_dataloader.batch_size=4`` with 2 GPUs trains on 8 images, as the original."""
    opts = cfg_options_to_opts(["train_dataloader.batch_size=4"])
    assert opts == ["SOLVER.IMS_PER_GPU", "4"]
    cfg = load_config(CONFIG, opts)
    assert images_per_rank(cfg, world_size=1) == 4
    assert images_per_rank(cfg, world_size=2) == 4


def test_mapped_and_upper_case_options_pass_unknown_lower_case_keys_are_refused() -> None:
    opts = cfg_options_to_opts(["train_cfg.max_iters=100", "SOLVER.BASE_LR=0.1"])
    assert opts == ["SOLVER.MAX_ITER", "100", "SOLVER.BASE_LR", "0.1"]
    with pytest.raises(ConfigError, match="model.decode_head.num_classes"):
        cfg_options_to_opts(["model.decode_head.num_classes=7"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cfg_options_to_opts(["train_cfg.max_iters"])
