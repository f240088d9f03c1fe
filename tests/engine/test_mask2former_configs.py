"""The DGVFM repository's Mask2Former configs (Rein, frozen and LoRA VFMs): each holds the
original's values, loads, builds, trains one step and evaluates through train_net.py on the tiny
toy datasets with a tiny backbone (the configs' own model, head and inference mode; only sizes
are shrunk).

Fixture ``tests/fixtures/mask2former_mmdet/original_configs.json``: the six original
``configs/dg/gta2citys/*mask2former*.py`` of tpy001/VFMSeg @ 6b019b9 read outside this project
with ``mmengine.Config.fromfile`` (mmengine 0.10.7, ``_base_`` chains resolved), reduced to the
numbers of ``tests/fixtures/dgvfm_train/original_configs.json`` (training data, test mode and
windows, optimiser, schedule, periods, seed) plus, under ``m2f``, the segmentor, backbone,
Rein, LoRA and Mask2Former head settings and the names of the optimiser's ``custom_keys``
without weight decay. The two top-level originals (``configs/rein_dinov2_mask2former_512x512_bs1x4.py``,
``configs/dinov2_mask2former_512x512_bs1x4.py``) name bases missing at that commit; ours take
the values of the moved files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clouds.config import CfgNode, load_config
from clouds.modeling import build_model
from tests.data.test_vfm_configs import _solver, _test, _train
from tests.engine._tiny import NUM_CLASSES, register_tiny_datasets
from tests.engine._vfm_configs import (
    REPO,
    WHOLE_IMAGE_CROPS,
    adaptation_values,
    as_overrides,
    norm_parameter_names,
    tiny_run_opts,
    train_and_evaluate,
    weight_decay_by_name,
)

ORIGINAL = json.loads((REPO / "tests/fixtures/mask2former_mmdet/original_configs.json").read_text())
TOP_LEVEL = {
    "configs/rein_dinov2_mask2former_512x512_bs1x4.yaml": "dg_rein_dinov2_mask2former_512x512_bs1x4",
    "configs/dinov2_mask2former_512x512_bs1x4.yaml": "dg_fzn_dinov2_mask2former_512x512",
}
CONFIGS = [f"configs/dg/{name}.yaml" for name in ORIGINAL] + list(TOP_LEVEL)
BACKBONES = {
    "ReinsDinoVisionTransformer": "DINOv2",
    "DinoVisionTransformer": "DINOv2",
    "ReinsEVA2": "EVA02",
    "ReinsCLIPVisionTransformer": "CLIPViT",
    "ReinsSAMViT": "SAMViT",
}
# the original's Rein backbones that resize their maps to strides 4-32 (DINOv2: resize_feat);
# its Rein CLIP has a trainable pyramid instead
RESIZING = ("ReinsEVA2", "ReinsSAMViT")


def _model(cfg: CfgNode) -> dict:
    """Our config's model in the fixture's terms."""
    mf, head, rein = cfg.MODEL.MASK_FORMER, cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.REIN
    assert cfg.MODEL.VFM_HEAD.TYPE == "mask2former" and cfg.MODEL.BACKBONE.FREEZE
    assert mf.HIDDEN_DIM == head.CONVS_DIM and not mf.PRE_NORM and mf.DROPOUT == 0.0
    assert head.DEFORMABLE_TRANSFORMER_ENCODER_DROPOUT == 0.0
    adaptation = adaptation_values(cfg)
    if adaptation["rein"] is not None:
        adaptation["rein"]["zero_mlp_delta_f"] = rein.ZERO_MLP_DELTA_F
    return {
        **adaptation,
        "decode_head": {
            "replace_query_feat": cfg.MODEL.VFM_HEAD.REPLACE_QUERY_FEAT,
            "num_queries": rein.TOKEN_LENGTH if rein.ENABLED else mf.NUM_OBJECT_QUERIES,
            "feat_channels": mf.HIDDEN_DIM,
            "out_channels": head.MASK_DIM,
            "enc_layers": head.TRANSFORMER_ENC_LAYERS,
            "enc_points": head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            "enc_heads": head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
            "enc_ffn": head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
            "dec_layers": mf.DEC_LAYERS - 1,
            "dec_heads": mf.NHEADS,
            "dec_ffn": mf.DIM_FEEDFORWARD,
            "loss_weights": [mf.CLASS_WEIGHT, mf.MASK_WEIGHT, mf.DICE_WEIGHT],
            "no_object_weight": mf.NO_OBJECT_WEIGHT,
            "num_points": mf.TRAIN_NUM_POINTS,
            "oversample_ratio": mf.OVERSAMPLE_RATIO,
            "importance_sample_ratio": mf.IMPORTANCE_SAMPLE_RATIO,
        },
    }


def _original_model(m2f: dict) -> dict:
    rein = m2f["rein"]
    head = {k: v for k, v in m2f["decode_head"].items() if k != "type"}
    if rein is not None:
        assert rein["link_token_to_query"] and m2f["decode_head"]["type"] == "ReinMask2FormerHead"
        assert rein["embed_dims"] in (1024, 1280) and rein["patch_size"] == 16
        rein = {
            "type": rein["type"],
            "token_length": rein["token_length"],
            "lora_dim": rein["lora_dim"],
            "link_token_to_query": True,
            "zero_mlp_delta_f": rein.get("zero_mlp_delta_f", False),
        }
        head["num_queries"] = rein["token_length"]  # the linked queries are the queries
    lora = m2f["lora"]
    if lora is not None:
        assert lora["target_modules"] == ["qkv"]
        lora = {"r": lora["r"], "alpha": lora["lora_alpha"], "dropout": lora["lora_dropout"]}
    return {"lora": lora, "rein": rein, "decode_head": head}


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_config_holds_the_originals_values(name: str) -> None:
    original = ORIGINAL[name]
    cfg = load_config(str(REPO / "configs" / "dg" / f"{name}.yaml"))
    assert _train(cfg, original["train"]) == original["train"]
    assert _test(cfg, original["test"]) == original["test"]
    assert _solver(cfg) == original["solver"]
    m2f = original["m2f"]
    assert _model(cfg) == _original_model(m2f)
    assert BACKBONES[m2f["backbone"]] == cfg.MODEL.BACKBONE.NAME
    assert (m2f["resize_feat"] or m2f["backbone"] in RESIZING) == cfg.MODEL.VFM.RESIZE_FEATURES
    # custom_keys without decay, "level_embed" narrowed to the one entry the original's matches
    keys = set(cfg.SOLVER.NO_DECAY_NAME_KEYS) - {"transformer_decoder.level_embed"}
    assert keys | {"level_embed"} == set(m2f["custom_keys"])


@pytest.mark.parametrize("config", list(TOP_LEVEL))
def test_top_level_config_is_its_dg_twin_on_three_test_sets(config: str) -> None:
    ours = load_config(str(REPO / config))
    twin = load_config(str(REPO / "configs/dg/gta2citys" / f"{TOP_LEVEL[config]}.yaml"))
    assert ours.MODEL == twin.MODEL and ours.SOLVER.BASE_LR == twin.SOLVER.BASE_LR
    assert ours.SOLVER.IMS_PER_GPU == 4 and ours.TEST.EVAL_PERIOD == 10000
    assert ours.DATASETS.TEST == ("dg_cityscapes_val", "dg_bdd100k_val", "dg_mapillary_val")
    assert ours.INPUT.VFM_PIPELINE.TEST_SCALES == [[1024, 512], [1280, 720], [1024, 512]]


def test_weight_decay_as_the_originals_custom_keys() -> None:
    """Norms, the decoder's query / level embeddings and Rein's tokens and scale get no weight
    decay; the pixel decoder's level embedding (the original's ``level_encoding``, matching no
    custom key), the initial queries and everything else decay."""
    config = "configs/dg/gta2citys/rein_sam-h_mask2former_512x512_bs1x4.yaml"
    cfg = load_config(str(REPO / config), [str(x) for x in _tiny_model_overrides(config)])
    model = build_model(cfg)
    decay = weight_decay_by_name(model, cfg)
    norms = norm_parameter_names(model, (torch.nn.GroupNorm, torch.nn.LayerNorm))
    assert decay["decode_head.pixel_decoder.transformer.level_embed"] == 0.05
    assert decay["decode_head.transformer_decoder.query_feat.weight"] == 0.05
    assert decay["decode_head.transformer_decoder.level_embed.weight"] == 0.0
    assert decay["backbone.reins.scale"] == 0.0
    no_decay = ("transformer_decoder.level_embed", "learnable_tokens", "reins.scale")
    expected = {n: 0.0 if n in norms or any(k in n for k in no_decay) else 0.05 for n in decay}
    assert decay == expected


def _tiny_model_overrides(config: str) -> list[object]:
    """A tiny random backbone (SAM: global attention in blocks 1, 2, 3, 5) and head."""
    backbone = load_config(str(REPO / config)).MODEL.BACKBONE.NAME
    out_indices = "[1, 2, 3, 5]" if backbone == "SAMViT" else "[0, 1, 2, 3]"
    return [
        *("MODEL.VFM.OUT_INDICES", out_indices),
        *("MODEL.DEVICE", "cpu", "MODEL.VFM.WEIGHTS", "random", "MODEL.VFM.TINY", True),
        *("MODEL.VFM.TINY_DEPTH", 6, "MODEL.VFM.CONVERT_SIZE", "[32, 32]"),
        *("MODEL.LORA.RANK", 2, "MODEL.REIN.TOKEN_LENGTH", 4, "MODEL.REIN.LORA_DIM", 2),
        *("MODEL.REIN.QUERY_DIMS", 32, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", NUM_CLASSES),
        *("MODEL.SEM_SEG_HEAD.CONVS_DIM", 32, "MODEL.SEM_SEG_HEAD.MASK_DIM", 32),
        *("MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", 1),
        *("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS", 2),
        *("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS", 2),
        *("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD", 32),
        *("MODEL.MASK_FORMER.HIDDEN_DIM", 32, "MODEL.MASK_FORMER.NHEADS", 2),
        *("MODEL.MASK_FORMER.DIM_FEEDFORWARD", 32, "MODEL.MASK_FORMER.DEC_LAYERS", 3),
        *("MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 4, "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", 64),
    ]


def _overrides(config: str, output_dir: Path) -> list[str]:
    opts = {
        **tiny_run_opts(output_dir),
        **WHOLE_IMAGE_CROPS,
        "TEST.SLIDE.WINDOW": "(32, 64)",  # stride-32 maps of 1x2: GroupNorm(32) of 32 channels
        "TEST.SLIDE.STRIDE": "(32, 32)",
    }
    return [str(x) for x in _tiny_model_overrides(config)] + as_overrides(opts)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> None:
    register_tiny_datasets(str(tmp_path_factory.mktemp("tiny_data")))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: Path(c).stem)
def test_config_trains_one_step_and_evaluates(config: str, tiny_data, tmp_path: Path) -> None:
    keys = train_and_evaluate(config, _overrides(config, tmp_path), tmp_path)
    assert "decode_head.transformer_decoder.cls_embed.weight" in keys
    assert any(".lora_" in k for k in keys) == ("lora" in config)
    assert any(k.startswith("backbone.reins.") for k in keys) == ("rein" in config)
