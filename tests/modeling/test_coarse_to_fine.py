"""Coarse-to-fine inference refines exactly the unsure windows and keeps the rest."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clouds.modeling import build_model
from clouds.modeling.inference import coarse_to_fine_inference, is_unsure, window_boxes
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

H, W = 32, 64
WINDOW, STRIDE = (16, 16), (16, 16)  # 2 x 4 windows, no overlap


def _coarse_fn(unsure_columns: slice):
    """Confident class-0 logits at any size, near-uniform ones in ``unsure_columns`` of the
    full-resolution image (the coarse stage runs at half size, so columns are halved)."""

    def fn(small: torch.Tensor) -> torch.Tensor:
        h, w = small.shape[-2:]
        logits = torch.zeros(1, 3, h, w)
        logits[:, 0] = 10.0
        cols = slice(unsure_columns.start * w // W, unsure_columns.stop * w // W)
        logits[:, 0, :, cols] = 0.1
        return logits

    return fn


def _coarse_full(unsure_columns: slice) -> torch.Tensor:
    """The stage-1 logits upsampled to full resolution, as coarse_to_fine computes them."""
    small = _coarse_fn(unsure_columns)(torch.zeros(1, 3, H // 2, W // 2))
    return F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)


class _CountingRefiner:
    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, window: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls.append((window, context))
        out = torch.zeros_like(context)
        out[:, 2] = 5.0 + len(self.calls)
        return out


def _run(refiner: _CountingRefiner, unsure: slice, image: torch.Tensor, stride=STRIDE):
    return coarse_to_fine_inference(
        _coarse_fn(unsure),
        refiner,
        image,
        coarse_size=(H // 2, W // 2),
        window=WINDOW,
        stride=stride,
        confidence=0.968,
        sure_ratio=0.8,
    )


def test_only_unsure_windows_are_refined() -> None:
    image = torch.randn(1, 3, H, W)
    refiner = _CountingRefiner()
    logits = _run(refiner, slice(16, 32), image)
    # the windows of columns 16..32 (two rows) are unsure; the six others are kept
    assert len(refiner.calls) == 2
    for window, context in refiner.calls:
        assert window.shape == (1, 3, 16, 16) and context.shape == (1, 3, 16, 16)
    torch.testing.assert_close(refiner.calls[0][0], image[..., 0:16, 16:32])
    assert (logits[0, 2, :, 16:32] > 5).all()
    assert (logits[0, :, :, 16:32].argmax(0) == 2).all()
    coarse = _coarse_full(slice(16, 32))
    assert torch.equal(logits[..., :16], coarse[..., :16])
    assert torch.equal(logits[..., 32:], coarse[..., 32:])


def test_context_is_the_upsampled_coarse_prediction() -> None:
    refiner = _CountingRefiner()
    _run(refiner, slice(48, 64), torch.randn(1, 3, H, W))
    assert len(refiner.calls) == 2
    assert torch.equal(refiner.calls[0][1], _coarse_full(slice(48, 64))[..., 0:16, 48:64])
    assert torch.equal(refiner.calls[1][1], _coarse_full(slice(48, 64))[..., 16:32, 48:64])


def test_sure_image_is_not_refined() -> None:
    refiner = _CountingRefiner()
    logits = _run(refiner, slice(0, 0), torch.randn(1, 3, H, W))
    assert not refiner.calls
    assert torch.equal(logits, _coarse_full(slice(0, 0)))


def test_overlapping_refined_windows_are_averaged() -> None:
    refiner = _CountingRefiner()
    logits = _run(refiner, slice(0, W), torch.randn(1, 3, H, W), stride=(16, 8))
    boxes = window_boxes(H, W, WINDOW, (16, 8))
    assert len(refiner.calls) == len(boxes) == 14
    # column 8..16 of the first row is covered by windows 1 and 2 (values 6 and 7)
    assert torch.allclose(logits[0, 2, 0, 8:16], torch.full((8,), 6.5))
    assert torch.allclose(logits[0, 2, 0, 0:8], torch.full((8,), 6.0))


@pytest.mark.parametrize("ratio, expected", [(0.5, False), (0.9, True)])
def test_is_unsure_threshold(ratio: float, expected: bool) -> None:
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0, :3] = 10.0  # 12 of 16 pixels confident
    assert is_unsure(logits, confidence=0.968, sure_ratio=ratio) is expected


def test_vfm_segmentor_runs_coarse_to_fine() -> None:
    cfg = tiny_vfm_cfg(
        "DINOv2",
        [
            "MODEL.VFM_HEAD.TYPE",
            "ms_masked",
            "TEST.MODE",
            "coarse_to_fine",
            "TEST.COARSE_TO_FINE.SURE_RATIO",
            "1.1",
        ],
    )
    model = build_model(cfg).eval()
    calls = []
    refine = model.refined_logits
    model.refined_logits = lambda *args: calls.append(args) or refine(*args)
    out = model(
        [
            {
                "image": torch.randint(0, 256, (3, 32, 64), dtype=torch.uint8),
                "height": 64,
                "width": 128,
            }
        ]
    )
    assert out[0]["sem_seg"].shape == (5, 64, 128)
    torch.testing.assert_close(out[0]["sem_seg"].sum(0), torch.ones(64, 128))
    assert len(calls) == 2  # every window counts as unsure with SURE_RATIO > 1
