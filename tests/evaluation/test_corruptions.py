"""ImageNet-C corruptions seeded per image: reproducible, NumPy's global state untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clouds.evaluation.corruptions import (
    CORRUPTIONS,
    CorruptingMapper,
    corrupt_image,
    corruption_seed,
)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)


def test_the_fifteen_imagenet_c_corruptions_are_those_of_the_package() -> None:
    from imagecorruptions import get_corruption_names

    assert tuple(get_corruption_names("common")) == CORRUPTIONS


@pytest.mark.parametrize("corruption", ["gaussian_noise", "impulse_noise", "frost"])
def test_same_seed_same_pixels_other_seed_other_pixels(corruption: str) -> None:
    image = _image()
    first = corrupt_image(image, corruption, 3, seed=7)
    np.random.seed(123)  # whatever the global generator holds
    again = corrupt_image(image, corruption, 3, seed=7)
    other = corrupt_image(image, corruption, 3, seed=8)
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, image)


def test_the_global_numpy_generator_is_restored() -> None:
    np.random.seed(5)
    expected = np.random.random(3)
    np.random.seed(5)
    corrupt_image(_image(), "shot_noise", 2, seed=1)
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_seeds_differ_per_image_corruption_and_severity() -> None:
    base = corruption_seed(0, 0, "fog", 1)
    others = [
        corruption_seed(1, 0, "fog", 1),
        corruption_seed(0, 1, "fog", 1),
        corruption_seed(0, 0, "snow", 1),
        corruption_seed(0, 0, "fog", 2),
    ]
    assert base == corruption_seed(0, 0, "fog", 1)
    assert base not in others and 0 <= base < 2**32


def test_bad_names_severities_and_small_images_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown corruption 'rain'"):
        corrupt_image(_image(), "rain", 1, seed=0)
    with pytest.raises(ValueError, match="severity"):
        corrupt_image(_image(), "fog", 6, seed=0)
    with pytest.raises(ValueError, match="at least 32x32"):
        corrupt_image(_image()[:20], "fog", 1, seed=0)


def test_the_mapper_corrupts_only_the_image_seeded_by_its_index() -> None:
    images = {"a.png": _image(0), "b.png": _image(0)}  # same pixels, other index

    def mapper(d: dict) -> dict:
        image = torch.from_numpy(images[d["file_name"]]).permute(2, 0, 1)
        return {**d, "image": image, "height": 40, "width": 48}

    wrapped = CorruptingMapper(
        mapper,
        corruption="gaussian_noise",
        severity=2,
        run_seed=0,
        image_index={"a.png": 0, "b.png": 1},
    )
    a, b = wrapped({"file_name": "a.png", "extra": 1}), wrapped({"file_name": "b.png"})
    expected = corrupt_image(
        images["a.png"], "gaussian_noise", 2, corruption_seed(0, 0, "gaussian_noise", 2)
    )
    np.testing.assert_array_equal(a["image"].permute(1, 2, 0).numpy(), expected)
    assert a["extra"] == 1 and (a["height"], a["width"]) == (40, 48)
    assert a["image"].dtype == torch.uint8 and not torch.equal(a["image"], b["image"])
