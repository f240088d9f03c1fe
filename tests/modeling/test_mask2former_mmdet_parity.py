"""The mmdet-style Mask2Former head equals the DGVFM repository's (tpy001/VFMSeg @ 6b019b9).

Fixture ``tests/fixtures/mask2former_mmdet/heads.pt``: the ORIGINAL heads run outside this
project (mmsegmentation 1.2.2, mmdet 3.3.0, mmcv-lite 2.1.0 with its pure-PyTorch deformable
attention): ``rein`` is ``ReinMask2FormerHead(replace_query_feat=True)`` fed (queries (6, 32),
maps), ``plain`` mmseg's ``Mask2FormerHead`` (learned queries, the frozen / LoRA configs' head),
both with the configs' layout at tiny widths: 4 maps of 16 channels at strides 4..32 of a 64x64
input, feat 32, 4 heads, 2 encoder layers (2 points), 2 decoder layers, 6 queries, 5 classes,
64 training points, the configs' loss weights, costs and class weights. The plain head shares
every common tensor with the Rein one. Each variant holds the original's ``state_dict`` (its own
key names), the training-mode predictions of every layer, every loss term of one step for two
label maps (255 bands) after ``torch.manual_seed(seed)``, the shapes of every ``torch.rand``
call of that step in order, 8 numbers drawn right after the backward pass, the gradients (whole
for tensors of at most 256 entries, else the first 128 entries and the norm) of the head's
tensors, the maps and the queries, and mmseg's ``predict`` for the first image at 48x40.

Measured: predictions and scores within 1e-6, losses within 5e-7, gradients within 1e-5 of each
tensor's largest entry, the same ``torch.rand`` calls and the same generator state after the
step (the matcher's and the point sampling's draws follow mmdet's layer order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from clouds.config import get_cfg
from clouds.modeling import build_model
from clouds.modeling.checkpoint import load_model_weights
from clouds.modeling.checkpoint.mmdet_mask2former import mask2former_key
from clouds.modeling.heads.mask2former import Mask2FormerHead
from clouds.modeling.shape_spec import ShapeSpec

FIXTURE = torch.load(
    Path(__file__).resolve().parents[1] / "fixtures" / "mask2former_mmdet" / "heads.pt",
    weights_only=True,
)
NAMES = ("vfm0", "vfm1", "vfm2", "vfm3")
# zero in exact arithmetic: the bias of a convolution right before a GroupNorm with one channel
# per group (32 groups of 32 channels)
ZERO_GRADIENT = {f"pixel_decoder.input_proj.{i}.0.bias" for i in range(3)}


def _unpack(packed: dict[str, Any]) -> dict[str, torch.Tensor]:
    sizes = [int(torch.tensor(s).prod()) for s in packed["shapes"]]
    parts = packed["flat"].split(sizes)
    return {n: p.view(s) for n, p, s in zip(packed["names"], parts, packed["shapes"])}


def _head_overrides(variant: str) -> dict[str, object]:
    """The fixture's head sizes (the Rein variant with its linked queries)."""
    linked = variant == "rein"
    return {
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 5,
        "MODEL.SEM_SEG_HEAD.CONVS_DIM": 32,
        "MODEL.SEM_SEG_HEAD.MASK_DIM": 32,
        "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 2,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS": 2,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": 4,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD": 32,
        "MODEL.MASK_FORMER.HIDDEN_DIM": 32,
        "MODEL.MASK_FORMER.NHEADS": 4,
        "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 32,
        "MODEL.MASK_FORMER.DEC_LAYERS": 3,
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 6,
        "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": FIXTURE[variant]["num_points"],
        "MODEL.REIN.ENABLED": linked,
        "MODEL.REIN.QUERY_DIMS": 32,
        "MODEL.REIN.TOKEN_LENGTH": 6,
        "MODEL.VFM_HEAD.REPLACE_QUERY_FEAT": linked,
    }


def _head(variant: str) -> Mask2FormerHead:
    linked = variant == "rein"
    cfg = get_cfg()
    cfg.merge_from_list([str(x) for kv in _head_overrides(variant).items() for x in kv])
    shapes = {n: ShapeSpec(channels=16, stride=s) for n, s in zip(NAMES, (4, 8, 16, 32))}
    head = Mask2FormerHead.from_config(cfg, shapes)
    original = _unpack(FIXTURE["rein"]["state_dict"]) | _unpack(FIXTURE[variant]["state_dict"])
    if not linked:
        original.pop("querys2feat.weight"), original.pop("querys2feat.bias")
    ours = {
        mask2former_key(f"decode_head.{k}").removeprefix("decode_head."): v
        for k, v in original.items()
    }
    result = head.load_state_dict(ours, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys == ["criterion.empty_weight"]  # a buffer: the class weights
    return head


def _inputs(variant: str) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
    rein = FIXTURE["rein"]
    maps = {n: f.clone().requires_grad_() for n, f in zip(NAMES, rein["features"])}
    queries = rein["queries"].clone().requires_grad_() if variant == "rein" else None
    return maps, queries, rein["labels"].long()


def _close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = theirs.abs().max().clamp(min=1e-6)
    assert (ours - theirs).abs().max() <= rtol * scale + 1e-6, float((ours - theirs).abs().max())


@pytest.mark.parametrize("variant", ["rein", "plain"])
def test_forward_losses_and_gradients_equal_the_originals(variant: str) -> None:
    expected = FIXTURE[variant]
    head = _head(variant).train()
    maps, queries, labels = _inputs(variant)

    with torch.no_grad():
        predictions = head.predict(maps, queries)
    assert len(predictions) == len(expected["class_logits"]) == 3
    for (logits, masks), their_logits, their_masks in zip(
        predictions, expected["class_logits"], expected["mask_logits"]
    ):
        _close(logits, their_logits)
        _close(masks, their_masks)

    calls: list[list[int]] = []
    rand = torch.rand

    def recording_rand(*size: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(list(size[0]) if len(size) == 1 else list(size))
        return rand(*size, **kwargs)

    torch.manual_seed(expected["seed"])
    torch.rand = recording_rand
    try:
        losses = head.losses(maps, labels, queries)
    finally:
        torch.rand = rand
    assert calls == expected["rand_calls"]
    assert list(losses) == [
        f"{p}loss_{t}" for p in ("d0.", "d1.", "") for t in ("cls", "mask", "dice")
    ]
    assert set(losses) == set(expected["losses"])
    for name, value in losses.items():
        _close(value, expected["losses"][name], rtol=1e-5)
    sum(losses.values()).backward()
    assert torch.equal(torch.rand(8), expected["drawn_after"])

    grads = {
        mask2former_key(f"decode_head.{k}").removeprefix("decode_head."): v
        for k, v in _unpack(expected["grads"]["full"]).items()
    }
    firsts = _unpack(expected["grads"]["first"])
    norms = _unpack(expected["grads"]["norm"])
    params = dict(head.named_parameters())
    for name, grad in grads.items():
        if name in ZERO_GRADIENT:  # rounding noise on both sides
            assert params[name].grad.abs().max() < 1e-6 and grad.abs().max() < 1e-6
        else:
            _close(params[name].grad, grad, rtol=1e-4)
    for name, first in firsts.items():
        ours = params[mask2former_key(f"decode_head.{name}").removeprefix("decode_head.")].grad
        assert list(ours.shape) == expected["grads"]["shape"][name]
        _close(ours.flatten()[: first.numel()], first, rtol=1e-4)
        assert ours.norm() == pytest.approx(float(norms[name]), rel=1e-4)
    assert len(grads) + len(firsts) == sum(p.grad is not None for p in params.values())
    for ours, theirs in zip(maps.values(), expected["feature_grads"]):
        _close(ours.grad, theirs, rtol=1e-4)
    if queries is not None:
        _close(queries.grad, expected["query_grad"], rtol=1e-4)


@pytest.mark.parametrize("variant", ["rein", "plain"])
def test_semantic_inference_equals_mmseg_predict(variant: str) -> None:
    head = _head(variant).eval()
    maps, queries, _ = _inputs(variant)
    with torch.no_grad():
        scores = head.logits_at({n: m[:1] for n, m in maps.items()}, (48, 40), queries)
    _close(scores, FIXTURE[variant]["scores_48x40"])


def test_original_checkpoint_loads_through_model_weights(tmp_path: Path) -> None:
    """An mmengine checkpoint of the original's frozen-DINOv2 Mask2Former segmentor (its key
    names: ``backbone.<ViT>``, ``decode_head.<mmdet head>``) initialises our model: every head
    entry lands on its tensor, the model predicts with it."""
    cfg = get_cfg()
    overrides = {
        **_head_overrides("plain"),
        "MODEL.META_ARCHITECTURE": "VFMSegmentor",
        "MODEL.DEVICE": "cpu",
        "MODEL.BACKBONE.NAME": "DINOv2",
        "MODEL.VFM.TINY": True,
        "MODEL.VFM.TINY_WIDTH": 16,
        "MODEL.VFM.OUT_INDICES": "[0, 1, 2, 3]",
        "MODEL.VFM.RESIZE_FEATURES": True,
        "MODEL.LORA.ENABLED": False,
        "MODEL.VFM_HEAD.TYPE": "mask2former",
    }
    cfg.merge_from_list([str(x) for kv in overrides.items() for x in kv])
    model = build_model(cfg).eval()
    head_state = _unpack(FIXTURE["rein"]["state_dict"]) | _unpack(FIXTURE["plain"]["state_dict"])
    del head_state["querys2feat.weight"], head_state["querys2feat.bias"]
    state = {f"backbone.{k}": v for k, v in model.backbone.vit.state_dict().items()}
    state |= {f"decode_head.{k}": v for k, v in head_state.items()}
    path = tmp_path / "iter_40000.pth"
    torch.save({"meta": {"iter": 40000}, "state_dict": state}, path)
    load_model_weights(model, path)
    ours = model.state_dict()
    for key, value in head_state.items():
        assert torch.equal(ours[mask2former_key(f"decode_head.{key}")], value), key
    reference = _head("plain").eval()
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        features = model.backbone(model.normalize(image)[None])
        expected = reference.logits_at(features, (64, 64))
        got = model([{"image": image}])[0]["sem_seg"]
    assert torch.equal(got.argmax(0), expected[0].argmax(0))
