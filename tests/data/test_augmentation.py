"""The original CLOUDS's training augmentation against detectron2's own code, draw for draw.

Fixture ``tests/fixtures/clouds_data/detectron2_augmentation.pt`` was made outside this project
by running detectron2's code (facebookresearch/detectron2 at 02b5c4e: ``data/transforms`` and
PointRend's ``color_augmentation.py``) and the original CLOUDS ``MapperTrain`` (yasserben/CLOUDS
at bac4305) on top of it. Before every case the generators were seeded as detectron2's
``seed_all_rng(seed)`` does (``np.random.seed``, ``random.seed``, ``torch.manual_seed``); after
it one more ``np.random.uniform()`` and ``random.random()`` were recorded ("numpy", "python"),
so a test also sees how far each stream advanced.

- ``labelled`` / ``generated``: ``MapperTrain`` (built by its own ``from_config``: ResizeScale
  (0.5, 2.0) into 32x56, FixedSizeCrop with its crop size set to 24x24 instead of 768x768,
  ColorAugSSD, RandomFlip; generated images: RandomFlip then ColorAugSSD) on the 30x50
  ``image`` / ``label`` pair, RGB and BGR formats: its "image", "sem_seg" and "image_aug".
- ``geometry``: ``ResizeScale(0.5, 2.0, 1052x1914)`` then ``FixedSizeCrop((768, 768))`` on
  GTA, SYNTHIA and Cityscapes frame sizes: resized size and crop origin.
- ``color_cases``: ``ColorAugSSDTransform(img_format).apply_image`` on the 8x12
  ``color_input``, seeds 0..39 (RGB) and 0..7 (BGR).
"""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clouds.data.augmentation import (
    color_aug_ssd,
    crop_origin,
    crop_pad,
    draw_uniform,
    resize_scale_size,
    sample_color_aug_ssd,
)
from clouds.data.build import MappedDataset
from clouds.data.mappers import SemSegTrainMapper
from clouds.utils.io import write_png_atomic

FIXTURE = Path(__file__).parents[1] / "fixtures" / "clouds_data" / "detectron2_augmentation.pt"


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def _seed_all(seed: int) -> None:
    """Seed the global generators as detectron2's ``seed_all_rng(seed)`` does."""
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def _assert_streams_at(case: dict) -> None:
    """Each generator has made as many draws as in the original's case."""
    assert float(np.random.uniform()) == case["numpy"], "NumPy stream out of step"
    assert random.random() == case["python"], "Python random stream out of step"


def test_color_aug_ssd_draws_and_output_equal_detectron2(reference) -> None:
    image = reference["color_input"].numpy()
    for case in reference["color_cases"]:
        _seed_all(case["seed"])
        params = sample_color_aug_ssd()
        out = color_aug_ssd(image, params, rgb=case["format"] == "RGB")
        np.testing.assert_array_equal(out, case["output"].numpy(), err_msg=str(params))
        _assert_streams_at(case)


def test_color_aug_ssd_draws_ranges_and_probabilities() -> None:
    random.seed(0)
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
        _seed_all(case["seed"])
        size = resize_scale_size(*case["input"], (1052, 1914), draw_uniform(0.5, 2.0))
        assert list(size) == case["resized"], case
        u = draw_uniform()
        assert list(crop_origin(*size, (768, 768), (u, u))) == case["origin"], case
        _assert_streams_at(case)
    # 1046-row GTA frames keep their aspect: scaled like the 1052-row ones, not stretched
    assert resize_scale_size(1046, 1914, (1052, 1914), 1.0) == (1046, 1914)


def test_crop_pad_pads_bottom_and_right() -> None:
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = crop_pad(label, (0, 1), (4, 4), fill=255)
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[:3, :3], label[:, 1:])
    assert (out[3] == 255).all() and (out[:, 3] == 255).all()


def _records(reference: dict, tmp_path: Path) -> tuple[dict, dict]:
    image_file, label_file = tmp_path / "a.png", tmp_path / "a_label.png"
    write_png_atomic(reference["image"].numpy(), image_file)
    write_png_atomic(reference["label"].numpy(), label_file)
    labelled = {"file_name": str(image_file), "sem_seg_file_name": str(label_file)}
    return labelled, {"file_name": str(image_file), "sem_seg_file_name": None}


def _mapper(image_format: str) -> SemSegTrainMapper:
    """Ours with the original ``MapperTrain``'s augmentation (crop 24x24 as in the fixture)."""
    return SemSegTrainMapper(
        resize=True,
        target_size=(32, 56),
        scale_range=(0.5, 2.0),
        crop_size=(24, 24),
        ignore_label=255,
        flip=True,
        color_aug="detectron2",
        image_format=image_format,
    )


def _assert_labelled_equal(out: dict, case: dict) -> None:
    np.testing.assert_array_equal(out["image"].numpy(), case["image"].numpy(), str(case["seed"]))
    np.testing.assert_array_equal(out["sem_seg"].numpy(), case["sem_seg"].long().numpy())


def _assert_generated_equal(out: dict, case: dict) -> None:
    np.testing.assert_array_equal(out["image_clean"].numpy(), case["image"].numpy())
    np.testing.assert_array_equal(out["image"].numpy(), case["image_aug"].numpy())


def test_mapper_equals_original_mapper_from_the_same_seed(reference, tmp_path) -> None:
    labelled, generated = _records(reference, tmp_path)
    mappers = {fmt: _mapper(fmt) for fmt in ("RGB", "BGR")}
    for record, cases, check in (
        (labelled, reference["labelled"], _assert_labelled_equal),
        (generated, reference["generated"], _assert_generated_equal),
    ):
        for case in cases:
            _seed_all(case["seed"])
            check(mappers[case["format"]](record), case)
            _assert_streams_at(case)


def test_training_dataset_seeds_each_sample_as_seed_all_rng(reference, tmp_path) -> None:
    """``MappedDataset[(index, seed)]`` gives the original's sample after ``seed_all_rng(seed)``
    and leaves the global generators where they were."""
    labelled, generated = _records(reference, tmp_path)
    mapper = _mapper("RGB")
    dataset = MappedDataset([labelled, generated], mapper)
    _seed_all(99)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state())
    for index, cases, check in (
        (0, reference["labelled"], _assert_labelled_equal),
        (1, reference["generated"], _assert_generated_equal),
    ):
        for case in [c for c in cases if c["format"] == "RGB"]:
            check(dataset[(index, case["seed"])], case)
    np.testing.assert_array_equal(np.random.get_state()[1], before[0])
    assert random.getstate() == before[1]
    assert torch.equal(torch.get_rng_state(), before[2])
