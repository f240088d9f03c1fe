"""Rein on the four VFMs against the original's ``Reins*`` backbones (tpy001/VFMSeg @ 6b019b9).

The fixtures of tests/fixtures/rein/ were made outside this project by the original's modules at
tiny sizes (width 32, 2 heads, 4 refined blocks, 6 tokens, query width 8, token rank 4): the
backbone of each ``rein_*`` config filled from the fixture's key list with
:func:`~tests.modeling.dgvfm_train_utils.original_state` (Rein's scale set to 1, so that the
refinement shows), run in float64 on a seeded input; then, in the original's training mode, one
step of the loss ``sum(mean(f^2) for f in features) + mean(queries^2)`` with the AdamW its config's
``PEFTOptimWrapperConstructor`` builds (no decay on ``learnable_tokens`` and ``reins.scale``).
They store feature, query, gradient and update digests and the weight decay of each parameter.

``step_dinov2_linearhead.pt``: the whole model of ``dg_rein_dinov2_linearhead`` (mmseg's
``EncoderDecoder``, ``ReinsDinoVisionTransformer`` with ``LoRAReins``, ``LinearHead``) at the same
tiny sizes (head as the LoRA fixtures of tests/fixtures/dgvfm_train), one training step on the
fixture batch after seeding (the head's loss called with the label map, as it is written: mmseg
1.2.2's ``EncoderDecoder.loss`` hands it data samples and fails), then its slide inference
(64 windows, stride 43) of a seeded image.

``step_dinov2_ms_1024x1024.pt``: the same for ``dg_rein_dinov2_ms_1024x1024``
(``MultiScaleEncoderDecoder`` with ``DINOhead``: head 32 channels, context transformer of 2 heads
of 16; crops 128, sub-crop 64 on a 16 px grid; the config lacks the ``train_cfg.log_config`` its
segmentor reads, so the generator gave it one and skipped the debug plot), its NumPy sub-crop box,
and its ``ms_slide_inference`` (128 windows, stride 128, stage 1 at 512x1024) of a seeded image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from clouds.config import load_config
from clouds.engine.solver import get_param_groups
from clouds.modeling import build_model
from clouds.modeling.backbone.vfm.base import VFMBackbone
from clouds.modeling.checkpoint.mmengine import map_original_state_dict
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.dgvfm_train_utils import (
    _tiny,
    check_prediction,
    digest,
    original_state,
    seed_all,
    train_step,
    unpack_digests,
)
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "rein"
FAMILIES = {"dinov2": "DINOv2", "eva02": "EVA02", "clip": "CLIPViT", "sam": "SAMViT"}
CASES = ["dinov2_lorareins", "dinov2_reins", "eva02_lorareins", "clip_lorareins", "sam_lorareins"]
# the original configs' paramwise custom keys with decay_mult 0
NO_DECAY = ["norm", "query_embed", "level_embed", "learnable_tokens", "reins.scale"]
TOLERANCE = 1e-6  # float64 runs, digests stored in float32
# tiny Rein of the fixtures
TINY_REIN = (
    "MODEL.REIN.TOKEN_LENGTH", "6", "MODEL.REIN.QUERY_DIMS", "8", "MODEL.REIN.LORA_DIM", "4",
)  # fmt: skip
# absolute floor: gradients that are zero up to rounding (a bias right before a BatchNorm)
FLOOR = 1e-15


def _close(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> bool:
    """Every part of two digests within TOLERANCE relative (FLOOR absolute)."""
    return all(
        float((ours[part].double() - expected.double()).norm())
        <= TOLERANCE * float(expected.double().norm()) + FLOOR
        for part, expected in theirs.items()
    )


def _record(case: str) -> dict:
    return torch.load(FIXTURES / f"forward_{case}.pt", map_location="cpu", weights_only=True)


def _our_backbone(case: str, record: dict) -> nn.Module:
    """Our backbone of ``case`` under ``.backbone`` (the original's names), fixture state, float64."""
    family = case.split("_")[0]
    cfg = tiny_vfm_cfg(
        FAMILIES[family],
        [
            "MODEL.LORA.ENABLED", "False", "MODEL.REIN.ENABLED", "True",
            "MODEL.REIN.TYPE", str(record["rein_type"]), "MODEL.REIN.TOKEN_LENGTH", "6",
            "MODEL.REIN.QUERY_DIMS", "8", "MODEL.REIN.LORA_DIM", "4",
            "MODEL.VFM.CONVERT_SIZE", "[64, 64]",
            "MODEL.VFM.RESIZE_FEATURES", str(family != "clip"),
        ],
    )  # fmt: skip
    holder = nn.Module()
    holder.backbone = BACKBONE_REGISTRY.get(FAMILIES[family]).from_config(cfg)
    state = original_state(record["keys"], record["shapes"], int(record["state_seed"]))
    state["backbone.reins.scale"] = torch.tensor(1.0)
    own = holder.state_dict()
    mapped, _ = map_original_state_dict(state, set(own))
    trainable = {k for k, p in holder.named_parameters() if p.requires_grad}
    assert trainable == set(record["trainable"])
    unknown = set(mapped) - set(own)
    assert not unknown, sorted(unknown)
    holder.load_state_dict(mapped, strict=False)
    return holder.double()


def _images(record: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(int(record["input_seed"]))
    return torch.randn(2, 3, *record["input_size"], generator=generator).double()


def _outputs(
    backbone: VFMBackbone, images: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    features = list(backbone(images).values())
    queries = backbone.link_queries()
    assert queries is not None
    return features, queries


@pytest.mark.parametrize("case", CASES)
def test_rein_forward_and_training_step_equal_the_originals(case: str) -> None:
    record = _record(case)
    holder = _our_backbone(case, record)
    images = _images(record)

    holder.eval()
    with torch.no_grad():
        features, queries = _outputs(holder.backbone, images)
    assert [list(f.shape) for f in features] + [list(queries.shape)] == record["shapes_out"]
    expected = unpack_digests(record["outputs"])
    ours = {f"feature{i}": digest(f"feature{i}", f) for i, f in enumerate(features)}
    ours["queries"] = digest("queries", queries)
    for key, theirs in expected.items():
        assert _close(ours[key], theirs), key

    holder.train()
    groups = get_param_groups(
        holder,
        base_lr=1e-4,
        weight_decay=0.05,
        weight_decay_norm=0.0,
        weight_decay_embed=0.05,
        backbone_multiplier=1.0,
        no_decay_keys=NO_DECAY,
    )
    decay = {name: g["weight_decay"] for g in groups for name in g["param_names"]}
    assert decay == record["weight_decay"]
    optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    features, queries = _outputs(holder.backbone, images)
    loss = sum(f.square().mean() for f in features) + queries.square().mean()
    assert abs(float(loss.detach()) - record["loss"]) < TOLERANCE * abs(record["loss"])
    loss.backward()
    params = {k: p for k, p in holder.named_parameters() if p.requires_grad}
    before = {k: p.detach().clone() for k, p in params.items()}
    optimizer.step()
    grads = unpack_digests(record["grads"])
    updates = unpack_digests(record["updates"])
    assert set(grads) == set(params) == set(updates)
    for key, param in params.items():
        assert _close(digest(key, param.grad), grads[key]), key
        assert _close(digest(key, param.detach() - before[key]), updates[key]), key


# config, fixture, extra overrides of the whole-model cases
MODEL_CASES = {
    "linearhead": (
        "dg_rein_dinov2_linearhead",
        (
            *_tiny(4, "[0, 1, 2, 3]", 1, "(64, 64)"),
            "TEST.SLIDE.WINDOW", "(64, 64)", "TEST.SLIDE.STRIDE", "(43, 43)",
        ),
    ),
    "ms_1024x1024": (
        "dg_rein_dinov2_ms_1024x1024",
        (
            *_tiny(4, "[0, 1, 2, 3]", 1, "(128, 128)", 64),
            "MODEL.VFM_HEAD.HIDDEN_DIM", "32", "MODEL.VFM_HEAD.REFINE_HEAD_DIM", "16",
            "MODEL.VFM_HEAD.SUB_CROP_GRID", "16",
            "TEST.SLIDE.WINDOW", "(128, 128)", "TEST.SLIDE.STRIDE", "(128, 128)",
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_rein_config_trains_and_predicts_as_the_original(case: str) -> None:
    config, overrides = MODEL_CASES[case]
    record = torch.load(FIXTURES / f"step_dinov2_{case}.pt", weights_only=True)
    cfg = load_config(str(REPO / f"configs/dg/gta2citys/{config}.yaml"), [*overrides, *TINY_REIN])
    model = build_model(cfg)
    state = original_state(record["keys"], record["shapes"], int(record["state_seed"]))
    state["backbone.reins.scale"] = torch.tensor(1.0)
    own = model.state_dict()
    mapped, _ = map_original_state_dict(state, set(own))
    assert not set(mapped) - set(own)
    model.load_state_dict(mapped, strict=False)
    model.double().train()
    assert {k for k, p in model.named_parameters() if p.requires_grad} == set(record["trainable"])
    if "crop_box" in record:
        seed_all(int(record["step_seed"]))
        y0, x0 = model.sample_sub_crop(*cfg.INPUT.CROP.SIZE)
        size = cfg.MODEL.VFM_HEAD.SUB_CROP
        assert [y0, y0 + size, x0, x0 + size] == record["crop_box"]
    result = train_step(model, cfg, int(record["step_seed"]))
    names = {"decode.loss_ce": "loss_sem_seg", "decode_lr.loss_ce": "loss_coarse"}
    names["decode_hr.loss_ce"] = "loss_refine"
    for name, value in record["losses"].items():
        assert abs(result.losses[names[name]] / value - 1) < TOLERANCE, name
    assert abs(result.losses["total"] / record["total"] - 1) < TOLERANCE
    assert set(result.grads) == set(record["with_grad"])
    grads, updates = unpack_digests(record["grads"]), unpack_digests(record["updates"])
    for key, grad in result.grads.items():
        assert _close(digest(key, grad), grads[key]), key
        assert _close(digest(key, result.updates[key]), updates[key]), key

    model.eval()
    check_prediction(
        model.inference_settings,
        record["predict"],
        TOLERANCE,
        logits_fn=model.light_logits,
        refine_fn=model.refined_logits,
    )
