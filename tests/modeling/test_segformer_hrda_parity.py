"""The SegFormer head, the frozen-backbone segmentor and HRDA (LinearHead / AttentionHead and
DAFormer heads) equal the original's: one training step and test-time logits.

Fixtures ``tests/fixtures/segformer_hrda/<case>.pt``: the original's own modules (tpy001/VFMSeg @
6b019b9 on mmsegmentation 1.2.2, run outside this project) built from its configs
``dg_fzn_dinov2_Segformer_512x512_bs1x4`` (``FrozenBackboneEncoderDecoder`` + mmseg's
``SegformerHead``), ``dg_lora_dinov2_hrda_1024x1024`` (``HRDAEncoderDecoder``, LoRA backbone,
``LinearHead`` context head, ``AttentionHead`` attention) and ``dg_fzn_dinov2_hrda_1024x1024``
(``FrozenHRDAEncoderDecoder`` with ``DAFormerHead`` context and attention heads; that config names
its heads for the ``HRDAHead`` of an earlier commit, so the generator passed the two head dicts
as the config describes them and set the head's output stride to the DAFormer head's real one,
16, where 6b019b9 hard-codes 4) at tiny widths (ViT width 32, depth 4; heads 32 channels;
crops 64 or 128, HRDA detail crop 64). Parameters and BatchNorm statistics come from
:func:`original_state`, loaded into ours as an original checkpoint; the step runs in float64 after seeding torch / NumPy / ``random``
(losses, gradient digests, AdamW update digests, the NumPy crop box of HRDA), then the model in
test mode predicts a seeded random image with the config's slide inference (sub-sampled logits
and their norm).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clouds.config import CfgNode, load_config
from clouds.modeling import build_model
from clouds.modeling.checkpoint.mmengine import load_mmengine_state, map_original_state_dict
from clouds.modeling.meta_arch.hrda_segmentor import random_crop_box
from tests.modeling.dgvfm_train_utils import (
    check_digests,
    check_prediction,
    original_state,
    seed_all,
    train_step,
    unpack_digests,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "segformer_hrda"
TOLERANCE = 1e-4
LOSS_NAMES = {
    "decode.loss_ce": "loss_sem_seg",
    "decode.loss_seg": "loss_seg",
    "decode.hr.loss_seg": "loss_hr_seg",
}
_TINY = (
    "MODEL.DEVICE", "cpu", "MODEL.VFM.WEIGHTS", "random", "MODEL.VFM.TINY", "True",
    "MODEL.VFM.TINY_WIDTH", "32", "MODEL.VFM.TINY_HEADS", "2", "MODEL.VFM.TINY_DEPTH", "4",
    "MODEL.VFM.OUT_INDICES", "[0, 1, 2, 3]", "MODEL.VFM.CONVERT_SIZE", "[64, 64]",
    "MODEL.LORA.RANK", "4", "MODEL.LORA.ALPHA", "8", "MODEL.VFM_HEAD.HIDDEN_DIM", "32",
)  # fmt: skip
_HRDA = (
    "INPUT.CROP.SIZE", "(128, 128)", "MODEL.HRDA.HR_CROP_SIZE", "(64, 64)",
    "MODEL.DAFORMER.EMBED_DIM", "32", "MODEL.DAFORMER.ATTENTION_EMBED_DIM", "32",
    "TEST.SLIDE.WINDOW", "(128, 128)", "TEST.SLIDE.STRIDE", "(85, 85)",
)  # fmt: skip
CASES = {
    "fzn_segformer": (
        "configs/dg/gta2citys/dg_fzn_dinov2_Segformer_512x512_bs1x4.yaml",
        ("INPUT.CROP.SIZE", "(64, 64)", "TEST.SLIDE.WINDOW", "(64, 64)", "TEST.SLIDE.STRIDE", "(43, 43)"),
    ),
    "lora_hrda": ("configs/dg/gta2citys/dg_lora_dinov2_hrda_1024x1024.yaml", _HRDA),
    "fzn_hrda": ("configs/dg/gta2citys/dg_fzn_dinov2_hrda_1024x1024.yaml", _HRDA),
}  # fmt: skip


def _config(name: str, extra: tuple[str, ...] = ()) -> CfgNode:
    path, overrides = CASES[name]
    return load_config(str(REPO / path), [*_TINY, *overrides, *extra])


def _model(name: str, record: dict, extra: tuple[str, ...] = ()):
    """Our model of ``name`` holding the fixture's state, loaded as an original checkpoint
    (:func:`load_mmengine_state`: every trainable entry present, nothing unexpected; the
    original's unused ``decode_head.conv_seg`` of HRDA left out), and our key -> original key."""
    cfg = _config(name, extra)
    model = build_model(cfg)
    state = original_state(record["keys"], record["shapes"], int(record["state_seed"]))
    ours = model.state_dict()
    state |= {k: torch.tensor(0) for k in ours if k.endswith("num_batches_tracked")}
    load_mmengine_state(model, state, f"fixture {name}")
    to_original = {}
    for key in state:
        mapped, _ = map_original_state_dict({key: state[key]}, set(ours))
        to_original |= {our_key: key for our_key in mapped}
    loaded = {to_original[k] for k in ours if k in to_original}
    unused = {"decode_head.conv_seg.weight", "decode_head.conv_seg.bias"} - set(ours)
    kept = {k for k in state if not k.endswith(("num_batches_tracked", "mask_token"))}
    assert not kept - loaded - unused
    return model.double().train(), cfg, to_original


def _predict(model, expected: dict) -> None:
    logits_fn = getattr(model, "window_logits", None) or model.light_logits
    check_prediction(model.inference_settings, expected, TOLERANCE, logits_fn=logits_fn)


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_step_and_prediction_equal_the_originals(name: str) -> None:
    record = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    model, cfg, to_original = _model(name, record)
    if record["crop_boxes"]:
        seed_all(int(record["step_seed"]))
        box = random_crop_box(*cfg.INPUT.CROP.SIZE, cfg.MODEL.HRDA.HR_CROP_SIZE, 8)
        assert [list(box)] == record["crop_boxes"]
    result = train_step(model, cfg, int(record["step_seed"]), to_original)
    assert set(result.losses) - {"total"} == {LOSS_NAMES[k] for k in record["losses"]}
    for original_name, value in record["losses"].items():
        assert abs(result.losses[LOSS_NAMES[original_name]] / value - 1) < TOLERANCE
    assert abs(result.losses["total"] / record["total"] - 1) < TOLERANCE
    trainable = {to_original[k] for k, p in model.named_parameters() if p.requires_grad}
    assert set(result.grads) == trainable
    check_digests(result.grads, unpack_digests(record["grads"]), "gradient", TOLERANCE)
    check_digests(result.updates, unpack_digests(record["updates"]), "AdamW update", TOLERANCE)
    model.eval()
    _predict(model, record["predict"])
    if "predict_context_only" in record:  # the Rein HRDA config's test mode
        model.context_only_slide = True
        model.inference_settings = type(model.inference_settings)(
            mode="slide", window=(64, 64), stride=(43, 43)
        )
        _predict(model, record["predict_context_only"])
