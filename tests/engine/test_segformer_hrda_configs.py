"""Each reproduction config of DGVFM's SegFormer, HRDA and frozen-backbone systems loads, builds,
trains one step and evaluates through train_net.py on the tiny toy datasets with a tiny
backbone (the configs' own model, heads and inference mode; only sizes are shrunk), and holds
the original's system: segmentor, backbone adaptation (frozen, LoRA, Rein) and head values.

Fixture ``tests/fixtures/segformer_hrda/original_configs.json``: the original configs read with
``mmengine.Config.fromfile`` (``_base_`` chains resolved) and reduced to numbers; its data,
test and solver entries are checked with the LoRA configs' (tests/data/test_vfm_configs.py),
its "system" entry here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clouds.config import CfgNode, load_config
from tests.engine._tiny import NUM_CLASSES, register_tiny_datasets
from tests.engine._vfm_configs import (
    REPO,
    WHOLE_IMAGE_CROPS,
    adaptation_values,
    as_overrides,
    tiny_run_opts,
    train_and_evaluate,
)

CONFIGS = (
    "configs/dg/gta2citys/dg_fzn_dinov2_Segformer_512x512_bs1x4.yaml",
    "configs/dg/gta2citys/dg_lora_dinov2_SegFormer.yaml",
    "configs/dg/gta2citys/dg_fzn_dinov2_hrda_1024x1024.yaml",
    "configs/dg/gta2citys/dg_lora_dinov2_hrda_1024x1024.yaml",
    "configs/dinov2_hrda_1024x1024.yaml",
    "configs/dg/gta2citys/dg_rein_dinov2_Segformer_512x512_bs1x4.yaml",
    "configs/dg/gta2citys/dg_rein_dinov2_hrda_1024x1024.yaml",
)
ORIGINAL = json.loads((REPO / "tests/fixtures/segformer_hrda/original_configs.json").read_text())
# the original's segmentor classes and heads by what our configs select
SEGMENTORS = {
    ("VFMSegmentor", "frozen"): "FrozenBackboneEncoderDecoder",
    ("VFMSegmentor", "lora"): "LoraBackboneEncoderDecoder",
    ("VFMSegmentor", "rein"): "EncoderDecoder",
    ("HRDASegmentor", "frozen"): "FrozenHRDAEncoderDecoder",
    ("HRDASegmentor", "lora"): "HRDAEncoderDecoder",
    ("HRDASegmentor", "rein"): "HRDAEncoderDecoder",
}
BACKBONES = {
    ("VFMSegmentor", "lora"): "DinoVisionTransformer",  # the segmentor wraps it with peft
    ("HRDASegmentor", "lora"): "LoRABackbone",
}
HEADS = {"VFMNet": "LinearHead", "AttentionHead": "AttentionHead", "DAFormerHead": "DAFormerHead"}


def _overrides(output_dir: Path) -> list[str]:
    opts = {
        "MODEL.DEVICE": "cpu",
        "MODEL.VFM.WEIGHTS": "random",
        "MODEL.VFM.TINY": True,
        "MODEL.VFM.OUT_INDICES": "[0, 1, 2, 3]",
        "MODEL.VFM.CONVERT_SIZE": "[32, 32]",
        "MODEL.LORA.RANK": 2,
        "MODEL.VFM_HEAD.HIDDEN_DIM": 32,
        "MODEL.DAFORMER.EMBED_DIM": 8,
        "MODEL.DAFORMER.ATTENTION_EMBED_DIM": 32,
        "MODEL.HRDA.HR_CROP_SIZE": "(32, 32)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": NUM_CLASSES,
        **tiny_run_opts(output_dir),
        **WHOLE_IMAGE_CROPS,
        "TEST.SLIDE.WINDOW": "(32, 48)",
        "TEST.SLIDE.STRIDE": "(16, 16)",
    }
    return as_overrides(opts)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> None:
    register_tiny_datasets(str(tmp_path_factory.mktemp("tiny_data")))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: Path(c).stem)
def test_config_trains_one_step_and_evaluates(config: str, tiny_data, tmp_path: Path) -> None:
    keys = train_and_evaluate(config, _overrides(tmp_path), tmp_path)
    assert any(k.startswith("decode_head.") for k in keys)
    assert any(".lora_" in k for k in keys) == ("lora" in config)
    assert any("learnable_tokens" in k for k in keys) == ("rein" in config)


def _adaptation(cfg: CfgNode) -> str:
    if cfg.MODEL.REIN.ENABLED:
        return "rein"
    return "lora" if cfg.MODEL.LORA.ENABLED else "frozen"


def _system(cfg: CfgNode, original: dict) -> dict:
    """Our config's values in the fixture's terms."""
    meta, adaptation = cfg.MODEL.META_ARCHITECTURE, _adaptation(cfg)
    backbone = "ReinsDinoVisionTransformer" if adaptation == "rein" else "DinoVisionTransformer"
    head = cfg.MODEL.VFM_HEAD
    ours = {
        "segmentor": SEGMENTORS[meta, adaptation],
        "backbone": BACKBONES.get((meta, adaptation), backbone),
        **adaptation_values(cfg),
        "no_decay_keys": original["no_decay_keys"],  # checked below for the Rein configs
    }
    if meta == "VFMSegmentor":
        assert (head.TYPE, head.LIGHT_HEAD_NAME) == ("light", "SegFormerHead")
        ours["decode_head"] = "SegformerHead"
        ours["head"] = {"channels": head.HIDDEN_DIM, "dropout": head.DROPOUT, "norm": "GN"}
        return ours
    h, d = cfg.MODEL.HRDA, cfg.MODEL.DAFORMER
    ours["decode_head"] = "HRDAHead"
    hrda = {
        "scales": list(h.SCALES),
        "hr_crop_size": list(h.HR_CROP_SIZE),
        "crop_coord_divisible": h.CROP_COORD_DIVISIBLE,
        "hr_slide_inference": h.HR_SLIDE_INFERENCE,
        "hr_slide_overlapping": h.HR_SLIDE_OVERLAPPING,
        "hr_loss_weight": h.HR_LOSS_WEIGHT,
        "lr_loss_weight": h.LR_LOSS_WEIGHT,
        "context_only_slide": h.CONTEXT_ONLY_SLIDE,
        "batched_slide": False,
        "head": HEADS[h.HEAD_NAME],
        "attention_classwise": h.ATTENTION_CLASSWISE,
        "dropout": head.DROPOUT,
    }
    if h.HEAD_NAME == "DAFormerHead":
        assert h.ATTENTION_HEAD_NAME == "DAFormerAttentionHead"
        assert d.ATTENTION_EMBED_DIM == 256  # the ded8e8e HRDAHead's attention_embed_dim
        hrda.update(
            attention="DAFormer (1x1 conv fusion)",
            channels=head.HIDDEN_DIM,
            embed_dims=d.EMBED_DIM,
            fusion=d.FUSION,
            dilations=list(d.DILATIONS),
            sep=True,
            pool=False,
            norm=d.NORM,
        )
    else:
        hrda.update(attention=HEADS[h.ATTENTION_HEAD_NAME], channels=head.HIDDEN_DIM, norm="GN")
    ours["hrda"] = hrda
    return ours


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_config_holds_the_originals_system(name: str) -> None:
    original = ORIGINAL[name]["system"]
    cfg = load_config(str(REPO / "configs" / "dg" / f"{name}.yaml"))
    assert _system(cfg, original) == original
    if cfg.MODEL.REIN.ENABLED:
        assert sorted(cfg.SOLVER.NO_DECAY_NAME_KEYS) == original["no_decay_keys"]


def test_top_level_hrda_config_is_the_frozen_one() -> None:
    """configs/dinov2_hrda_1024x1024.py names the frozen HRDA model by its former file name."""
    top = load_config(str(REPO / "configs/dinov2_hrda_1024x1024.yaml"))
    frozen = load_config(str(REPO / "configs/dg/gta2citys/dg_fzn_dinov2_hrda_1024x1024.yaml"))
    top.OUTPUT_DIR = frozen.OUTPUT_DIR
    assert top == frozen
