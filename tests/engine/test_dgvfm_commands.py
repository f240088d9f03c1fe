"""The original DGVFM tools' ``--cfg-options`` mapped onto our keys."""

from __future__ import annotations

import re

import pytest

from clouds.config import ConfigError, load_config
from clouds.data.build import images_per_rank
from clouds.engine.dgvfm_commands import cfg_options_to_opts, reproduced_dgvfm_configs
from clouds.utils.io import PROJECT_ROOT

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


# The training configs of tpy001/VFMSeg @ 6b019b9 (configs/dg/*/ and the top-level ones; its
# configs/uda and configs/unused are out of scope), by path without the .py suffix.
ORIGINAL_TRAINING_CONFIGS = {
    *(
        f"dg/gta2citys/{name}"
        for name in (
            "dg_fzn_dinov2_Segformer_512x512_bs1x4",
            "dg_fzn_dinov2_hrda_1024x1024",
            "dg_fzn_dinov2_mask2former_512x512",
            "dg_lora_clip_linearhead",
            "dg_lora_clip_ms_masked",
            "dg_lora_dinov2_SegFormer",
            "dg_lora_dinov2_hrda_1024x1024",
            "dg_lora_dinov2_linearhead",
            "dg_lora_dinov2_mask2former",
            "dg_lora_dinov2_ms_1024x1024",
            "dg_lora_dinov2_ms_masked",
            "dg_lora_eva02_linearhead",
            "dg_lora_eva02_ms_masked",
            "dg_lora_sam_linearhead",
            "dg_lora_sam_ms_masked",
            "dg_rein_dinov2_Segformer_512x512_bs1x4",
            "dg_rein_dinov2_hrda_1024x1024",
            "dg_rein_dinov2_linearhead",
            "dg_rein_dinov2_mask2former_512x512_bs1x4",
            "dg_rein_dinov2_ms_1024x1024",
            "dg_rein_eva02_mask2former_512x512_bs1x4",
            "rein_clip-L_mask2former_512x512_bs1x4",
            "rein_sam-h_mask2former_512x512_bs1x4",
        )
    ),
    "dg/citys2bdd/dg_lora_dinov2_ms_masked",
    "dinov2_hrda_1024x1024",
    "dinov2_mask2former_512x512_bs1x4",
    "rein_dinov2_mask2former_512x512_bs1x4",
}


def _brace_expanded(text: str) -> set[str]:
    """Words of ``text`` with ``a_{x,y}_b`` expanded to ``a_x_b``, ``a_y_b``."""
    names = set()
    for word in re.findall(r"`([^`\s]+)`", text):
        match = re.fullmatch(r"(.*)\{(.*)\}(.*)", word)
        parts = match.group(2).split(",") if match else [""]
        names |= {f"{match.group(1)}{p}{match.group(3)}" if match else word for p in parts}
    return names


def test_every_original_training_config_has_its_twin_and_a_row_in_getting_started() -> None:
    configs = PROJECT_ROOT / "configs"
    ours = {str(p.relative_to(configs).with_suffix("")) for p in reproduced_dgvfm_configs()}
    assert ours == ORIGINAL_TRAINING_CONFIGS
    guide = (PROJECT_ROOT / "GETTING_STARTED.md").read_text()
    table = guide.split("### Every training config of the DGVFM repository")[1].split("\n\n")[2]
    assert _brace_expanded(table) >= ORIGINAL_TRAINING_CONFIGS
