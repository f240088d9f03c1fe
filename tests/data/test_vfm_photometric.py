"""mmseg's PhotoMetricDistortion (clouds.data.transforms.photometric): ranges and equality.

Fixture ``tests/fixtures/dgvfm_train/photometric_mmseg.pt``: the ``PhotoMetricDistortion`` class
of mmsegmentation 1.2.2 (``mmseg/datasets/transforms/transforms.py``, default arguments), run
outside this project with mmcv's ``bgr2hsv`` / ``hsv2bgr`` shimmed by the ``cv2.cvtColor`` calls
they make, on a 24x32 image (gradients + uniform noise from ``np.random.RandomState(0)``, plus
black, white, red and green pixels), fed in BGR as mmseg loads it; 24 distortions after
``np.random.seed(1234)``, each with the numpy draws it made recorded and decoded into
(brightness, contrast, contrast_first, saturation, hue). Stored: the RGB input, the draws and
the outputs converted back to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clouds.config import get_cfg
from clouds.data.transforms.photometric import PhotoMetricDistortion, PhotometricDraw

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dgvfm_train" / "photometric_mmseg.pt"


def test_equals_mmseg_on_recorded_draws() -> None:
    data = torch.load(FIXTURE, weights_only=True)
    image = data["input"].numpy()
    assert {d["hue"] is not None for d in data["draws"]} == {True, False}
    assert {d["contrast_first"] for d in data["draws"]} == {True, False}
    for draw, expected in zip(data["draws"], data["outputs"]):
        out = PhotoMetricDistortion.apply(image, PhotometricDraw(**draw))
        np.testing.assert_array_equal(out, expected.numpy(), err_msg=str(draw))


def test_draws_stay_in_mmseg_ranges() -> None:
    pmd = PhotoMetricDistortion.from_config(get_cfg())
    np.random.seed(0)
    draws = [pmd.sample() for _ in range(4000)]
    bright = np.array([d.brightness for d in draws if d.brightness is not None])
    contrast = np.array([d.contrast for d in draws if d.contrast is not None])
    saturation = np.array([d.saturation for d in draws if d.saturation is not None])
    hue = np.array([d.hue for d in draws if d.hue is not None])
    assert -32 <= bright.min() < -30 and 30 < bright.max() <= 32
    for factors in (contrast, saturation):
        assert 0.5 <= factors.min() < 0.52 and 1.48 < factors.max() <= 1.5
    assert set(hue.tolist()) == set(range(-18, 18))  # numpy randint: +18 is never drawn
    for values in (bright, contrast, saturation, hue):
        assert len(values) / len(draws) == pytest.approx(0.5, abs=0.04)
    first = np.mean([d.contrast_first for d in draws])
    assert first == pytest.approx(0.5, abs=0.04)


def test_no_channel_swap_and_exact_steps() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 10
    brighter = PhotoMetricDistortion.apply(image, PhotometricDraw(40.7, None, True, None, None))
    np.testing.assert_array_equal(brighter[0, 0], [240, 140, 50])  # float32 add, truncated
    clipped = PhotoMetricDistortion.apply(image, PhotometricDraw(None, 1.5, False, None, None))
    np.testing.assert_array_equal(clipped[0, 0], [255, 150, 15])
    same = PhotoMetricDistortion.apply(image, PhotometricDraw(None, None, True, None, None))
    np.testing.assert_array_equal(same, image)
    assert same is not image


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        PhotoMetricDistortion()(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="contrast"):
        PhotoMetricDistortion(contrast_range=(1.5, 0.5))
