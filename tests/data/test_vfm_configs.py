"""Each DGVFM reproduction config resolves to the original config's values.

Fixture ``tests/fixtures/dgvfm_train/original_configs.json``: the original configs of
tpy001/VFMSeg (``configs/dg/gta2citys/dg_lora_*.py``, ``configs/dg/citys2bdd/*.py`` and the
data-only ``configs/dg/datasets/dg_citys2ACDC_1024x1024.py``) read outside this project with
``mmengine.Config.fromfile`` (mmengine 0.10.4, ``_base_`` chains resolved), reduced to numbers:
training set, resize, crop, ``cat_max_ratio``, flip, PhotoMetricDistortion arguments (mmseg
1.2.2's defaults, which the configs keep), rare-class sampling, batch, padding, mean/std, test
sets with their ``Resize`` scales, test mode and its windows, LoRA, heads, optimiser, schedule,
periods and seed. Each original config lives at the same relative path here, as ``.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clouds.config import CfgNode, load_config
from clouds.data.build import images_per_rank

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = json.loads((ROOT / "tests/fixtures/dgvfm_train/original_configs.json").read_text())
# the SegFormer / HRDA / frozen systems (their "system" entry: tests/engine/test_segformer_hrda_configs.py)
ORIGINAL |= json.loads((ROOT / "tests/fixtures/segformer_hrda/original_configs.json").read_text())
# the Mask2Former configs named dg_* (all of them, with their "m2f" entry:
# tests/engine/test_mask2former_configs.py)
ORIGINAL |= {
    name: values
    for name, values in json.loads(
        (ROOT / "tests/fixtures/mask2former_mmdet/original_configs.json").read_text()
    ).items()
    if Path(name).name.startswith("dg_")
}
# the original's test modes and ours, by the original's names
MODES = {
    "ms_slide_inference": "coarse_to_fine",
    "slide": "slide",
    "hr_slide_inference": "hr_slide",
}
HEADS = {"MaskTransformerDecoder": "ms_masked", "TransformerDecoder": "ms", None: "light"}
# the fixture names the original's sets by our CLOUDS names; the configs read the dg_* sets
# (the original's layouts, clouds/data/datasets/register_dgvfm.py)
FIXTURE_NAMES = {"dg_gta_train": "gta5_all", "dg_bdd100k_val": "bdd_val"}


def _fixture_name(name: str) -> str:
    return FIXTURE_NAMES.get(name, name.removeprefix("dg_"))


def _train(cfg: CfgNode, original: dict) -> dict:
    i, p, d = cfg.INPUT, cfg.INPUT.VFM_PIPELINE, cfg.DATALOADER
    rcs = None
    if d.SAMPLER_TRAIN == "RareClassSampler":
        rcs = {
            "class_temp": d.RARE_CLASS_TEMPERATURE,
            "min_crop_ratio": d.RARE_CLASS_MIN_CROP_RATIO,
            "min_pixels": d.RARE_CLASS_MIN_PIXELS,
        }
    resize = {"scale": list(p.TRAIN_SCALE)}
    if p.TRAIN_SHORT_EDGES:
        resize = {"short_edges": list(p.TRAIN_SHORT_EDGES), "max_long_edge": p.TRAIN_MAX_LONG_EDGE}
    photometric = p.PHOTOMETRIC
    out = {
        "dataset": _fixture_name(cfg.DATASETS.TRAIN[0]),
        "batch": images_per_rank(cfg, world_size=1),  # per GPU, as mmseg's batch_size
        "rare_class_sampling": rcs,
        "resize": resize,
        "crop_size": list(i.CROP.SIZE) if i.CROP.ENABLED else None,
        "cat_max_ratio": i.CROP.SINGLE_CATEGORY_MAX_AREA,
        "flip_prob": 0.5 if i.FLIP else 0.0,
        "photometric": {
            "brightness_delta": photometric.BRIGHTNESS_DELTA,
            "contrast_range": list(photometric.CONTRAST_RANGE),
            "saturation_range": list(photometric.SATURATION_RANGE),
            "hue_delta": photometric.HUE_DELTA,
        }
        if i.COLOR_AUG_SSD
        else None,
    }
    if "pad" in original:  # the original's data preprocessor (its model configs hold it)
        pad_size = list(i.CROP.SIZE) if p.PAD_TO_CROP else None
        ignore = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        out["pad"] = {"size": pad_size, "pad_val": 0, "seg_pad_val": ignore}
        out["mean"], out["std"] = list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)
    return out


def _test(cfg: CfgNode, original: dict) -> dict:
    t = cfg.TEST
    scales = cfg.INPUT.VFM_PIPELINE.TEST_SCALES
    modes = MODES
    if cfg.MODEL.META_ARCHITECTURE == "MultiScaleSegmentor":  # its 'slide' is ms_slide_inference
        modes = {**MODES, "slide": "msfull_slide"}
    out = {
        "datasets": [[_fixture_name(n), list(s)] for n, s in zip(cfg.DATASETS.TEST, scales)],
        "mode": original["mode"] if modes.get(original["mode"]) == t.MODE else t.MODE,
        "crop_size": list(t.SLIDE.WINDOW),
        "stride": list(t.SLIDE.STRIDE),
        "threshold": t.COARSE_TO_FINE.CONFIDENCE,
        "conf": t.COARSE_TO_FINE.SURE_RATIO,
    }
    # keys a data-only or light-head original config does not set
    return {k: (None if original[k] is None else v) for k, v in out.items()}


def _model(cfg: CfgNode, original: dict) -> dict:
    heads = original["heads"]
    head_type = cfg.MODEL.VFM_HEAD.TYPE
    ours = {"decode_head": "LinearHead"}
    if cfg.MODEL.META_ARCHITECTURE == "MultiScaleSegmentor":  # MultiScaleEncoderDecoder
        assert cfg.MODEL.VFM_HEAD.LIGHT_HEAD_NAME == "DINOHead"
        ours = {
            "decode_head": "DINOhead",
            "scales": [1, 0.5],  # the segmentor's: the crop at full and half size
            "hr_crop_size": [cfg.MODEL.VFM_HEAD.SUB_CROP] * 2,
            "crop_coord_divisible": cfg.MODEL.VFM_HEAD.SUB_CROP_GRID,
        }
    elif head_type in ("ms", "ms_masked"):
        ours["aux_head"] = "VFMHead"
        ours["transformer"] = {v: k for k, v in HEADS.items()}[head_type]
        ours["mask_ratio"] = cfg.MODEL.VFM_HEAD.MASK_RATIO if head_type == "ms_masked" else None
        ours["hr_crop_size"] = [cfg.MODEL.VFM_HEAD.SUB_CROP] * 2
        ours["crop_coord_divisible"] = cfg.MODEL.VFM_HEAD.SUB_CROP_GRID
    assert HEADS[heads.get("transformer")] == head_type or "scales" in ours
    lora, rein = cfg.MODEL.LORA, cfg.MODEL.REIN
    if rein.ENABLED:  # the Rein configs: a frozen ViT (the Reins module sized by it), no LoRA
        assert not lora.ENABLED and cfg.MODEL.BACKBONE.FREEZE
        embed_dims, num_layers = {"DINOv2": (1024, 24)}[cfg.MODEL.BACKBONE.NAME]
        reins = {
            "type": rein.TYPE,
            "token_length": rein.TOKEN_LENGTH,
            "lora_dim": rein.LORA_DIM,
            "link_token_to_query": rein.LINK_TOKEN_TO_QUERY,
            "embed_dims": embed_dims,
            "num_layers": num_layers,
            "patch_size": cfg.MODEL.VFM.PATCH_SIZE,
        }
        return {"rein": reins, "heads": ours}
    assert lora.ENABLED
    return {"lora": {"r": lora.RANK, "alpha": lora.ALPHA, "dropout": lora.DROPOUT}, "heads": ours}


def _solver(cfg: CfgNode) -> dict:
    s = cfg.SOLVER
    assert s.OPTIMIZER == "ADAMW" and s.LR_SCHEDULER_NAME == "WarmupPolyLR"
    assert s.WARMUP_ITERS == 0 and s.BACKBONE_MULTIPLIER == 1.0
    # every trainable non-norm tensor (LoRA, heads, the mask token) decays as the original
    assert s.WEIGHT_DECAY_EMBED == s.WEIGHT_DECAY
    eps = torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults["eps"]
    return {
        "optimizer": "AdamW",
        "lr": s.BASE_LR,
        "weight_decay": s.WEIGHT_DECAY,
        "eps": eps,  # our optimiser keeps torch's default
        "betas": list(s.BETAS),
        "norm_decay_mult": s.WEIGHT_DECAY_NORM / s.WEIGHT_DECAY,
        "amp": s.AMP.ENABLED,
        "clip_grad": {"max_norm": s.CLIP_GRADIENTS.CLIP_VALUE}
        if s.CLIP_GRADIENTS.ENABLED
        else None,
        "schedule": {
            "type": "PolyLR",
            "power": s.POLY_LR_POWER,
            "eta_min": s.POLY_LR_CONSTANT_ENDING * s.BASE_LR,
            "begin": 0,
            "end": s.MAX_ITER,
        },
        "max_iters": s.MAX_ITER,
        "val_interval": cfg.TEST.EVAL_PERIOD,
        "checkpoint_interval": s.CHECKPOINT_PERIOD,
        "seed": cfg.SEED,
    }


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_reproduction_config_equals_original(name: str) -> None:
    original = ORIGINAL[name]
    cfg = load_config(str(ROOT / "configs" / "dg" / f"{name}.yaml"))
    assert cfg.INPUT.DATASET_MAPPER_NAME == "vfm_mmseg"
    assert not cfg.TEST.AMP.ENABLED
    assert _train(cfg, original["train"]) == original["train"]
    assert _test(cfg, original["test"]) == original["test"]
    if cfg.TEST.MODE == "coarse_to_fine":  # fixed in the original's ms_inference
        assert tuple(cfg.TEST.COARSE_TO_FINE.COARSE_SIZE) == (512, 1024)
    if "model" in original:
        assert _model(cfg, original["model"]) == original["model"]
    if "solver" in original:
        assert _solver(cfg) == original["solver"]


def test_every_reproduction_config_has_an_original() -> None:
    ours = {
        str(p.relative_to(ROOT / "configs" / "dg").with_suffix(""))
        for p in (ROOT / "configs" / "dg").rglob("dg_*.yaml")
    }
    leaves = {n for n in ours if not n.startswith("datasets/")} | {
        "datasets/dg_citys2ACDC_1024x1024"
    }
    assert leaves == set(ORIGINAL)
