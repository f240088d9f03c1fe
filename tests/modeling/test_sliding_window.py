"""Sliding-window inference: window layout, overlap averaging, one window == whole image."""

from __future__ import annotations

import torch

from clouds.modeling import build_model
from clouds.modeling.inference import slide_inference, window_boxes
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def test_windows_cover_the_image_and_touch_the_border() -> None:
    boxes = window_boxes(1024, 2048, (512, 512), (320, 320))
    rows = sorted({(y0, y1) for y0, _, y1, _ in boxes})
    cols = sorted({(x0, x1) for _, x0, _, x1 in boxes})
    assert rows == [(0, 512), (320, 832), (512, 1024)]
    assert cols[0] == (0, 512) and cols[-1] == (1536, 2048) and len(cols) == 6
    assert all(y1 - y0 == 512 and x1 - x0 == 512 for y0, x0, y1, x1 in boxes)
    covered = torch.zeros(1024, 2048, dtype=torch.bool)
    for y0, x0, y1, x1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_window_larger_than_image_is_clipped() -> None:
    assert window_boxes(40, 30, (64, 64), (32, 32)) == [(0, 0, 40, 30)]


def test_overlaps_are_averaged() -> None:
    """Each window predicts the constant (number of calls so far); overlaps get the mean."""
    calls: list[tuple[int, int]] = []

    def fn(window: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        calls.append(tuple(window.shape[-2:]))
        return torch.full((1, 2, *window.shape[-2:]), float(len(calls)))

    logits = slide_inference(fn, torch.zeros(1, 3, 8, 12), window=(8, 8), stride=(8, 2))
    assert calls == [(8, 8), (8, 8), (8, 8)]  # x0 = 0, 2, 4
    expected_row = torch.tensor([1, 1, 1.5, 1.5, 2, 2, 2, 2, 2.5, 2.5, 3, 3])
    assert torch.equal(logits[0, 0, 0], expected_row)
    assert logits.shape == (1, 2, 8, 12)


def test_pointwise_model_gives_the_same_result_everywhere() -> None:
    image = torch.randn(1, 3, 20, 36)
    fn = lambda x, size=None: torch.cat([x.sum(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # noqa: E731
    torch.testing.assert_close(
        slide_inference(fn, image, window=(16, 16), stride=(6, 10)), fn(image)
    )


def test_vfm_segmentor_one_window_equals_whole_image() -> None:
    images = [{"image": torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)}]
    whole = build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light"])).eval()
    slide = build_model(
        tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light", "TEST.MODE", "slide"])
    ).eval()
    slide.load_state_dict(whole.state_dict())
    assert slide.inference_settings.window == (32, 32)
    torch.testing.assert_close(slide(images)[0]["sem_seg"], whole(images)[0]["sem_seg"])
