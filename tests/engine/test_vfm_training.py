"""A tiny VFM + LoRA model (ms_masked) trains and evaluates through train_net.py on toy data."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest
import torch

from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from tests.engine._predictions import RecordedPredictions, assert_results_match
from tests.engine._tiny import NUM_CLASSES, SIZE, register_tiny_datasets

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "toy" / "dg_dinov2_ms_masked.yaml"


def _overrides(output_dir: Path, **extra: object) -> list[str]:
    opts = {
        "DATASETS.TRAIN": "('tiny_train',)",
        "DATASETS.TEST": "('tiny_val',)",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": NUM_CLASSES,
        "INPUT.INITIAL_HEIGHT": SIZE[0],
        "INPUT.INITIAL_WIDTH": SIZE[1],
        "INPUT.CROP.SIZE": f"({SIZE[0]}, {SIZE[1]})",
        "INPUT.MIN_SIZE_TEST": SIZE[0],
        "INPUT.MAX_SIZE_TEST": SIZE[1],
        "INPUT.VFM_PIPELINE.TRAIN_SCALE": f"({SIZE[1]}, {SIZE[0]})",
        "INPUT.VFM_PIPELINE.TEST_SCALES": f"[[{SIZE[1]}, {SIZE[0]}]]",
        "TEST.COARSE_TO_FINE.COARSE_SIZE": f"({SIZE[0] // 2}, {SIZE[1] // 2})",
        "TEST.COARSE_TO_FINE.SURE_RATIO": 1.1,
        "SOLVER.MAX_ITER": 4,
        "SOLVER.CHECKPOINT_PERIOD": 4,
        "SOLVER.LOG_PERIOD": 1,
        "OUTPUT_DIR": str(output_dir),
    }
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]


def _train_net(argv: list[str]) -> dict:
    namespace = runpy.run_path(str(REPO / "train_net.py"))
    args = namespace["default_argument_parser"]().parse_args(argv)
    return namespace["main"](args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, RecordedPredictions]:
    register_tiny_datasets(str(tmp_path_factory.mktemp("tiny_data")))
    out = tmp_path_factory.mktemp("vfm_run")
    with RecordedPredictions(VFMSegmentor) as recorded:
        results = _train_net(["--config-file", str(CONFIG), *_overrides(out)])
    return out, results, recorded


def test_trains_and_evaluates(trained) -> None:
    out, results, recorded = trained
    # the reported metrics are those of the model's predictions of the 4 val images, by hand
    assert_results_match(results["tiny_val"]["sem_seg"], recorded, 4, NUM_CLASSES)
    assert os.path.isfile(out / "model_final.ckpt")
    ckpt = torch.load(out / "model_final.ckpt", map_location="cpu", weights_only=True)
    keys = set(ckpt["state_dict"])
    assert ckpt["global_step"] == 4
    assert any(".lora_A." in k for k in keys) and any(k.startswith("aux_decoder.") for k in keys)
    frozen = [k for k in keys if k.startswith("backbone.") and ".lora_" not in k]
    assert not frozen, f"frozen VFM weights were checkpointed: {frozen[:5]}"


def test_eval_only_reproduces_the_final_evaluation(trained, tmp_path: Path) -> None:
    out, results, _ = trained
    argv = [
        "--config-file",
        str(CONFIG),
        "--eval-only",
        *_overrides(tmp_path, **{"MODEL.WEIGHTS": out / "model_final.ckpt"}),
    ]
    again = _train_net(argv)
    assert again["tiny_val"]["sem_seg"]["mIoU"] == pytest.approx(
        results["tiny_val"]["sem_seg"]["mIoU"]
    )


def test_weight_decay_as_the_originals_optimizer_constructor() -> None:
    """The original's PEFTOptimWrapperConstructor (custom key "norm" and norm_decay_mult 0,
    no other key matching a LoRA / head tensor): norm layers (GN, BN, LN) get 0, every other
    trainable tensor 0.05, the mask token included. configs/dg/Base-DG-VFM.yaml's solver keys."""
    from clouds.config import load_config
    from clouds.modeling import build_model
    from tests.engine._vfm_configs import norm_parameter_names, weight_decay_by_name
    from tests.modeling.vfm_test_utils import tiny_vfm_cfg

    base = load_config(str(REPO / "configs/dg/Base-DG-VFM.yaml"))
    model = build_model(tiny_vfm_cfg("DINOv2"))
    decay = weight_decay_by_name(model, base)
    norm_types = (torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.LayerNorm)
    norms = norm_parameter_names(model, norm_types)
    assert decay["aux_decoder.transformer_decoder.mask_token"] == 0.05
    assert decay["decode_head.output_upscaling.1.weight"] == 0.0
    assert all(decay[n] == (0.0 if n in norms else 0.05) for n in decay), decay
