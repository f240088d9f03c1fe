"""The mmdet-style Mask2Former head in the VFM segmentor: Rein's linked queries reach it, its
settings are checked (the numbers against the original: test_mask2former_mmdet_parity.py)."""

from __future__ import annotations

import pytest
import torch

from clouds.config import ConfigError
from clouds.modeling import build_model
from clouds.modeling.heads.mask2former import Mask2FormerHead
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

TINY_HEAD = {
    "MODEL.VFM_HEAD.TYPE": "mask2former",
    "MODEL.VFM.RESIZE_FEATURES": True,
    "MODEL.LORA.ENABLED": False,
    "MODEL.REIN.ENABLED": True,
    "MODEL.REIN.TYPE": "LoRAReins",
    "MODEL.REIN.TOKEN_LENGTH": 4,
    "MODEL.REIN.LORA_DIM": 2,
    "MODEL.REIN.QUERY_DIMS": 32,
    "MODEL.VFM_HEAD.REPLACE_QUERY_FEAT": True,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 32,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 32,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 1,
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": 2,
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD": 32,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 32,
    "MODEL.MASK_FORMER.NHEADS": 2,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 32,
    "MODEL.MASK_FORMER.DEC_LAYERS": 3,
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 64,
}


def _cfg(**changes: object):
    opts = TINY_HEAD | changes
    return tiny_vfm_cfg("DINOv2", [str(x) for kv in opts.items() for x in kv])


def _batch() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
    label = torch.randint(0, 5, (8, 8), generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1)
    return [{"image": image, "sem_seg": label}]


def test_reins_linked_queries_are_the_heads_queries() -> None:
    model = build_model(_cfg())
    head = model.decode_head
    assert isinstance(head, Mask2FormerHead)
    assert not hasattr(head.transformer_decoder, "query_embed")
    assert not hasattr(head.transformer_decoder, "query_feat")
    losses = model(_batch())
    sum(losses.values()).backward()
    # the link's projection only feeds the queries: its gradient comes through the head
    assert model.backbone.reins.transform.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        before = model([{"image": _batch()[0]["image"]}])[0]["sem_seg"]
        model.backbone.reins.transform.weight.mul_(2.0)
        after = model([{"image": _batch()[0]["image"]}])[0]["sem_seg"]
    assert not torch.allclose(before, after)


def test_without_rein_the_head_learns_its_queries() -> None:
    model = build_model(
        _cfg(**{"MODEL.REIN.ENABLED": False, "MODEL.VFM_HEAD.REPLACE_QUERY_FEAT": False})
    )
    decoder = model.decode_head.transformer_decoder
    assert decoder.query_embed.weight.shape == decoder.query_feat.weight.shape == (100, 32)
    sum(model(_batch()).values()).backward()
    assert decoder.query_embed.weight.grad.abs().sum() > 0


def test_settings_the_head_cannot_honour_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="REPLACE_QUERY_FEAT needs Rein's linked queries"):
        build_model(_cfg(**{"MODEL.REIN.LINK_TOKEN_TO_QUERY": False}))
    with pytest.raises(ConfigError, match="QUERY_DIMS 64 must equal"):
        build_model(_cfg(**{"MODEL.REIN.QUERY_DIMS": 64}))
    with pytest.raises(ConfigError, match="LINK_TOKEN_TO_QUERY links Rein's tokens.*'light'"):
        build_model(_cfg(**{"MODEL.VFM_HEAD.TYPE": "light"}))


def test_a_linked_head_called_without_queries_says_so() -> None:
    model = build_model(_cfg())
    features = model.backbone(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="built for Rein's linked queries"):
        model.decode_head(features)
