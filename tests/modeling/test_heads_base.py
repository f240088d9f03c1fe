"""The head contracts (clouds.modeling.heads.base) that the meta-architectures check instead of
probing attributes: mask-classification heads for CLOUDS, decode and refinement heads for VFMs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clouds.config import ConfigError
from clouds.modeling import build_model
from clouds.modeling.heads.base import DecodeHead, MaskClassificationHead, RefinementHead
from clouds.modeling.heads.mask_former_head import MaskFormerHead
from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.heads.vfm_mask_head import VFMMaskHead
from clouds.modeling.heads.vfmnet import VFMNet
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from clouds.modeling.registry import SEM_SEG_HEADS_REGISTRY, VFM_HEAD_REGISTRY
from tests.modeling.dgvfm_heads_utils import tiny_mgrnet
from tests.modeling.model_utils import toy_config
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

NAMES = ["vfm0", "vfm1"]


class PlainTestHead(nn.Module):
    """A registered head that implements no contract."""

    @classmethod
    def from_config(cls, cfg, *args, **kwargs):
        return cls()


def test_registered_heads_implement_their_contracts() -> None:
    assert issubclass(MaskFormerHead, MaskClassificationHead)
    assert issubclass(VFMNet, DecodeHead) and issubclass(VFMMaskHead, DecodeHead)
    assert issubclass(MGRNet, RefinementHead)
    assert (VFMNet.size_divisibility_factor, VFMNet.has_own_losses) == (1, False)
    assert (VFMMaskHead.size_divisibility_factor, VFMMaskHead.has_own_losses) == (2, True)
    with pytest.raises(NotImplementedError, match="VFMNet is trained with the segmentor's loss"):
        VFMNet(in_features=NAMES, in_channels=32, num_classes=3).losses({}, torch.zeros(1, 4, 4))


@pytest.mark.parametrize(
    ("decoder", "uses_text", "num_classes"),
    [
        ("OriginalMultiScaleMaskedTransformerDecoder", False, 19),
        ("MultiScaleMaskedTransformerDecoder", True, None),
    ],
)
def test_mask_former_head_reports_its_classifier(
    decoder: str, uses_text: bool, num_classes: int | None
) -> None:
    model = build_model(toy_config(["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", decoder]))
    assert model.sem_seg_head.uses_text_classifier is uses_text
    assert model.sem_seg_head.num_classes == num_classes
    assert model.uses_text is uses_text


@pytest.mark.parametrize(("masked", "expected"), [(True, True), (False, False)])
def test_refinement_head_says_whether_training_masks_tokens(masked: bool, expected: bool) -> None:
    head = tiny_mgrnet(num_layers=1, mask_ratio=0.2 if masked else None)
    assert head.masks_tokens is expected


def test_multi_scale_training_masks_tokens_as_the_head_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "ms_masked"])).train()
    seen: list[bool] = []
    forward = type(model.aux_decoder).forward

    def recording(self, features, coarse_logits, *, mask=False):
        seen.append(mask)
        return forward(self, features, coarse_logits, mask=mask)

    monkeypatch.setattr(type(model.aux_decoder), "forward", recording)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    model([{"image": image, "sem_seg": torch.zeros(64, 64, dtype=torch.long)}])
    assert seen == [True]


def test_vfm_segmentor_refuses_heads_outside_the_contracts() -> None:
    light = VFMNet(in_features=NAMES, in_channels=32, num_classes=3)
    common = {"backbone": nn.Identity(), "pixel_mean": (0.0,) * 3, "pixel_std": (1.0,) * 3}
    with pytest.raises(TypeError, match="decode_head .* PlainTestHead.*DecodeHead contract"):
        VFMSegmentor(decode_head=PlainTestHead(), aux_decoder=None, **common)
    with pytest.raises(TypeError, match="aux_decoder .* VFMNet.*RefinementHead contract"):
        VFMSegmentor(decode_head=light, aux_decoder=light, **common)


def test_config_naming_a_head_outside_the_contract_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(VFM_HEAD_REGISTRY._obj_map, "PlainTestHead", PlainTestHead)
    monkeypatch.setitem(SEM_SEG_HEADS_REGISTRY._obj_map, "PlainTestHead", PlainTestHead)
    cfg = tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.LIGHT_HEAD_NAME", "PlainTestHead"])
    with pytest.raises(ConfigError, match="LIGHT_HEAD_NAME='PlainTestHead'.*DecodeHead contract"):
        build_model(cfg)
    cfg = tiny_vfm_cfg(
        "DINOv2",
        ["MODEL.VFM_HEAD.TYPE", "ms", "MODEL.VFM_HEAD.REFINE_HEAD_NAME", "PlainTestHead"],
    )
    with pytest.raises(ConfigError, match="REFINE_HEAD_NAME='PlainTestHead'.*RefinementHead"):
        build_model(cfg)
    with pytest.raises(ConfigError, match="SEM_SEG_HEAD.NAME='PlainTestHead'.*MaskClassification"):
        build_model(toy_config(["MODEL.SEM_SEG_HEAD.NAME", "PlainTestHead"]))


@pytest.mark.parametrize(
    "key", ["MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME", "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME"]
)
def test_mask_former_head_parts_unknown_by_name_are_config_errors(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}='Nope' is not registered \(known: "):
        build_model(toy_config([key, "Nope"]))
