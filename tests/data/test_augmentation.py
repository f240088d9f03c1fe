"""The original CLOUDS's training augmentation (detectron2 semantics) against detectron2's own code.

Fixture ``tests/fixtures/clouds_data/detectron2_augmentation.pt`` was made by running detectron2's
code (facebookresearch/detectron2 at 02b5c4e: ``data/transforms`` and PointRend's
``color_augmentation.py``, the classes the original's ``mapper_train.py`` builds) outside this
project, recording every random draw:

- ``color_cases``: ``ColorAugSSDTransform(img_format="RGB").apply_image`` on one 8x12 RGB image
  (``np.random.default_rng(0)`` plus saturated corner pixels), 40 calls with Python's ``random``
  seeded 0..39; the draws, read back as ColorAugSSDParams, and the outputs.
- ``geometry``: ``ResizeScale(0.5, 2.0, target)`` then ``FixedSizeCrop((768, 768), pad=True)``
  on GTA (1052x1914 and 1046x1914 frames), SYNTHIA (760x1280) and Cityscapes (1024x2048)
  sizes, ``np.random.RandomState(0..5)``: scale and crop draws, resized size, crop origin.
- ``pixel_cases``: the original's source chain ResizeScale(0.5, 2.0, 32x56) ->
  FixedSizeCrop(24x24, image pad 0, label pad 255) -> RandomFlip on a 30x50 image and label,
  ``np.random.RandomState(100..107)``: draws and output image / label.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from clouds.data import mappers
from clouds.data.augmentation import (
    ColorAugSSDParams,
    color_aug_ssd,
    crop_origin,
    crop_pad,
    resize_scale_size,
    sample_color_aug_ssd,
)
from clouds.data.mappers import SemSegTrainMapper
from clouds.utils.io import write_png_atomic

FIXTURE = Path(__file__).parents[1] / "fixtures" / "clouds_data" / "detectron2_augmentation.pt"


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def test_color_aug_ssd_equals_detectron2(reference) -> None:
    image = reference["color_input"].numpy()
    for case in reference["color_cases"]:
        out = color_aug_ssd(image, ColorAugSSDParams(**case["params"]), rgb=True)
        np.testing.assert_array_equal(out, case["output"].numpy(), err_msg=str(case["params"]))
    # BGR input is processed as is: the same result with channels reversed on both sides
    case = reference["color_cases"][0]
    bgr = color_aug_ssd(image[:, :, ::-1], ColorAugSSDParams(**case["params"]), rgb=False)
    np.testing.assert_array_equal(bgr[:, :, ::-1], case["output"].numpy())


def test_color_aug_ssd_draws_ranges_and_probabilities() -> None:
    torch.manual_seed(0)
    draws = [sample_color_aug_ssd() for _ in range(4000)]
    for name in ("brightness", "contrast", "saturation", "hue"):
        on = [getattr(d, name) for d in draws if getattr(d, name) is not None]
        assert len(on) / len(draws) == pytest.approx(0.5, abs=0.03), name
    assert np.mean([d.contrast_first for d in draws]) == pytest.approx(0.5, abs=0.03)
    brightness = [d.brightness for d in draws if d.brightness is not None]
    assert -32 <= min(brightness) < -31 and 31 < max(brightness) <= 32
    for name in ("contrast", "saturation"):
        values = [getattr(d, name) for d in draws if getattr(d, name) is not None]
        assert 0.5 <= min(values) < 0.51 and 1.49 < max(values) <= 1.5
    hues = {d.hue for d in draws if d.hue is not None}
    assert hues == set(range(-18, 19))


def test_resize_and_crop_geometry_equals_detectron2(reference) -> None:
    for case in reference["geometry"]:
        size = resize_scale_size(*case["input"], tuple(case["target"]), case["scale"])
        assert list(size) == case["resized"], case
        origin = crop_origin(*size, (768, 768), (case["u"], case["u"]))
        assert list(origin) == case["origin"], case
    # 1046-row GTA frames keep their aspect: scaled like the 1052-row ones, not stretched
    assert resize_scale_size(1046, 1914, (1052, 1914), 1.0) == (1046, 1914)


def test_crop_pad_pads_bottom_and_right() -> None:
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = crop_pad(label, (0, 1), (4, 4), fill=255)
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[:3, :3], label[:, 1:])
    assert (out[3] == 255).all() and (out[:, 3] == 255).all()


def test_mapper_source_chain_equals_detectron2(reference, tmp_path, monkeypatch) -> None:
    image_file, label_file = tmp_path / "a.png", tmp_path / "a_label.png"
    write_png_atomic(reference["pixel_image"].numpy(), image_file)
    write_png_atomic(reference["pixel_label"].numpy(), label_file)
    record = {"file_name": str(image_file), "sem_seg_file_name": str(label_file)}
    mapper = SemSegTrainMapper(
        resize=True,
        target_size=(32, 56),
        scale_range=(0.5, 2.0),
        crop_size=(24, 24),
        ignore_label=255,
        flip=True,
        color_aug=None,
    )
    for case in reference["pixel_cases"]:
        draws = iter([case["scale"], case["u"], case["flip_draw"]])
        monkeypatch.setattr(mappers, "uniform", lambda low=0.0, high=1.0, d=draws: next(d))
        out = mapper(record)
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), case["image"])
        np.testing.assert_array_equal(out["sem_seg"].numpy(), case["label"].long().numpy())
        assert next(draws, None) is None  # exactly the original's three draws
