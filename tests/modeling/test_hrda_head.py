"""HRDAHead: the scale-attention fusion of context and detail logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clouds.modeling.heads.attention_head import AttentionHead
from clouds.modeling.heads.hrda_head import HRDAHead, scale_box
from clouds.modeling.heads.segformer_head import SegFormerHead

NAMES = ["a", "b"]


def _fusion(scales: tuple[float, float] = (0.5, 1.0)) -> HRDAHead:
    head = SegFormerHead(in_features=NAMES, in_channels=[8, 8], channels=32, num_classes=3)
    attention = AttentionHead(in_features=NAMES, in_channels=8, channels=32, num_classes=3)
    return HRDAHead(head=head, scale_attention=attention, scales=scales, feature_stride=16).eval()


def _maps(h: int, w: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(1, 8, h, w, generator=g) for n in NAMES}


def test_scale_box_truncates_as_the_original() -> None:
    assert scale_box((8, 72, 56, 120), 8.0) == (1, 9, 7, 15)
    assert scale_box((12, 44, 0, 30), 4) == (3, 11, 0, 7)


def test_training_fusion_uses_the_detail_only_inside_its_crop() -> None:
    fusion = _fusion()
    context_maps, detail_maps = _maps(4, 4, 0), _maps(2, 2, 1)  # context 64 px, detail crop 32
    box = (32, 64, 32, 64)  # detail crop in the 128 px detail image
    fused, context, detail = fusion(context_maps, detail_maps, crop_box=box)
    assert fused.shape == (1, 3, 8, 8) and context.shape == (1, 3, 4, 4)
    up_plain = F.interpolate(
        fusion.head(context_maps), scale_factor=2.0, mode="bilinear", align_corners=False
    )
    # the crop is context pixel (1, 1) and fused pixels 2..3; bilinear x2 spreads it to 1..4
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[1:5, 1:5] = False
    torch.testing.assert_close(fused[..., outside], up_plain[..., outside])
    attention = torch.sigmoid(fusion.scale_attention(context_maps))
    assert not torch.allclose(fused[..., 2:4, 2:4], up_plain[..., 2:4, 2:4])
    plain = fusion.head(context_maps)
    torch.testing.assert_close(context[..., 1, 1], (1 - attention[..., 1, 1]) * plain[..., 1, 1])
    torch.testing.assert_close(context[..., 0, 0], plain[..., 0, 0])
    assert float(attention.min()) > 0
    torch.testing.assert_close(detail, fusion.head(detail_maps))


def test_test_fusion_from_window_logits() -> None:
    fusion = _fusion()
    windows = {n: torch.randn(3, 8, 2, 2) for n in NAMES}  # 3 windows of 32 px, batch 1
    boxes = [(0, 32, 0, 32), (0, 32, 16, 48), (0, 32, 32, 64)]
    merged = fusion.decode_windows(windows, boxes, batch_size=1)
    logits = fusion.head(windows)
    assert merged.shape == (1, 3, 2, 4)
    torch.testing.assert_close(merged[0, :, :, 0], logits[0, :, :, 0])
    torch.testing.assert_close(merged[0, :, :, 1], (logits[0, :, :, 1] + logits[1, :, :, 0]) / 2)
    fused, _, _ = fusion(_maps(1, 2, 0), merged)
    assert fused.shape == (1, 3, 2, 4)


def test_scales_order_and_contracts() -> None:
    with pytest.raises(ValueError, match="context <= detail"):
        _fusion((1.0, 0.5))
    head = _fusion().head
    with pytest.raises(TypeError, match="MODEL.HRDA.ATTENTION_HEAD_NAME"):
        HRDAHead(head=head, scale_attention=torch.nn.Identity(), scales=(0.5, 1), feature_stride=16)
