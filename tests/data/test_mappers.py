"""Training and test mappers."""

import random

import numpy as np
import pytest
import torch

from clouds.config import get_cfg
from clouds.data.mappers import SemSegTestMapper, SemSegTrainMapper
from clouds.utils.io import ImageReadError, write_png_atomic

PALETTE = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250]], dtype=np.uint8)


def _seed_all(seed: int) -> None:
    """Seed every generator the training mapper draws from (torch, NumPy, Python)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _write(tmp_path, label: np.ndarray, name: str = "a") -> dict:
    image_file, label_file = tmp_path / f"{name}.png", tmp_path / f"{name}_label.png"
    write_png_atomic(PALETTE[label], image_file)
    write_png_atomic(label.astype(np.uint8), label_file)
    h, w = label.shape
    return {
        "file_name": str(image_file),
        "sem_seg_file_name": str(label_file),
        "height": h,
        "width": w,
    }


def _mapper(**kwargs) -> SemSegTrainMapper:
    args = {
        "resize": True,
        "target_size": (16, 32),
        "scale_range": (0.5, 2.0),
        "crop_size": (16, 32),
        "ignore_label": 255,
        "flip": True,
        "color_aug": None,
    }
    args.update(kwargs)
    return SemSegTrainMapper(**args)


def test_train_mapper_keeps_image_and_label_aligned(tmp_path) -> None:
    label = np.zeros((32, 64), dtype=np.int64)
    label[:, 20:40] = 1
    label[16:, 40:] = 2
    record = _write(tmp_path, label)
    mapper = _mapper(target_size=(32, 64))
    for seed in range(6):
        _seed_all(seed)
        out = mapper(record)
        image, sem_seg = out["image"], out["sem_seg"]
        assert image.shape == (3, 16, 32) and image.dtype == torch.uint8
        assert sem_seg.shape == (16, 32) and sem_seg.dtype == torch.int64
        # the colour of nearly every labelled pixel is its class colour (resizing blends
        # colours along class borders only)
        labelled = sem_seg != 255
        expected = PALETTE[sem_seg[labelled].numpy()].astype(int)
        pixels = image[:, labelled].T.numpy().astype(int)
        assert (np.abs(pixels - expected).max(axis=1) < 60).mean() > 0.85
        padded = sem_seg == 255  # padding: ignore label and black image
        assert (image[:, padded] == 0).all()


def test_small_images_are_padded_with_ignore(tmp_path) -> None:
    record = _write(tmp_path, np.ones((8, 8), dtype=np.int64))
    out = _mapper(target_size=(8, 8), scale_range=(1.0, 1.0), flip=False)(record)
    assert out["sem_seg"].shape == (16, 32)
    assert (out["sem_seg"][:8, :8] == 1).all() and (out["sem_seg"][8:] == 255).all()
    assert (out["image"][:, 8:] == 0).all()


def test_crop_avoids_single_category_crops(tmp_path) -> None:
    label = np.zeros((16, 128), dtype=np.int64)
    label[:, 100:] = 1  # most 16x32 crops hold class 0 only
    record = _write(tmp_path, label)
    kwargs = {"target_size": (16, 128), "scale_range": (1.0, 1.0), "flip": False}
    mixed = []
    for mapper in (_mapper(**kwargs), _mapper(single_category_max_area=0.75, **kwargs)):
        _seed_all(0)
        outs = [mapper(record)["sem_seg"] for _ in range(30)]
        mixed.append(np.mean([len(o.unique()) > 1 for o in outs]))
    assert mixed[1] > mixed[0] + 0.3


def test_crop_options_draw_their_extras_from_torch(tmp_path) -> None:
    """Independent offsets and redrawn crops leave NumPy's and Python's streams where the
    original's draws leave them (the later flip and ColorAugSSD draws stay the original's)."""
    label = np.zeros((16, 128), dtype=np.int64)
    label[:, 100:] = 1
    record = _write(tmp_path, label)
    kwargs = {"target_size": (16, 128), "scale_range": (1.0, 1.0), "color_aug": "detectron2"}
    options = {"independent_offsets": True, "single_category_max_area": 0.75}
    changed = 0
    for seed in range(6):
        streams, labels = [], []
        for mapper in (_mapper(**kwargs), _mapper(**options, **kwargs)):
            _seed_all(seed)
            labels.append(mapper(record)["sem_seg"])
            streams.append((np.random.uniform(), random.random()))
        assert streams[0] == streams[1]
        changed += int(not torch.equal(labels[0], labels[1]))
    assert changed > 0  # the options did move crops


def test_generated_images_are_used_whole_with_flip_only(tmp_path) -> None:
    label = np.zeros((20, 28), dtype=np.int64)
    label[:, :5] = 1
    record = _write(tmp_path, label)
    record["sem_seg_file_name"] = None
    original = torch.from_numpy(PALETTE[label]).permute(2, 0, 1)
    mapper = _mapper(color_aug="detectron2")
    flipped = jittered = 0
    for seed in range(12):
        _seed_all(seed)
        out = mapper(record)
        assert "sem_seg" not in out
        assert out["image_clean"].shape == out["image"].shape == (3, 20, 28)  # native size
        clean = out["image_clean"]
        assert torch.equal(clean, original) or torch.equal(clean, original.flip(-1))
        flipped += int(torch.equal(clean, original.flip(-1)))
        jittered += int(not torch.equal(clean, out["image"]))
    assert 0 < flipped < 12 and jittered > 0


@pytest.mark.parametrize("color_aug", ["detectron2", "torchvision"])
def test_photometric_jitter_changes_only_the_image(tmp_path, color_aug: str) -> None:
    record = _write(tmp_path, np.zeros((16, 32), dtype=np.int64))
    plain = _mapper(flip=False, scale_range=(1.0, 1.0))
    jitter = _mapper(flip=False, scale_range=(1.0, 1.0), color_aug=color_aug)
    changed = 0
    for seed in range(8):
        _seed_all(seed)
        a = plain(record)
        _seed_all(seed)
        b = jitter(record)
        assert torch.equal(a["sem_seg"], b["sem_seg"])
        changed += int(not torch.equal(a["image"], b["image"]))
    assert changed > 0


def test_resize_keeps_aspect_unless_forced(tmp_path) -> None:
    record = _write(tmp_path, np.zeros((20, 40), dtype=np.int64))
    kwargs = {"target_size": (16, 16), "scale_range": (1.0, 1.0), "crop_size": None}
    assert _mapper(**kwargs)(record)["sem_seg"].shape == (8, 16)  # fits inside 16x16
    assert _mapper(force_size=True, **kwargs)(record)["sem_seg"].shape == (16, 16)
    assert _mapper(resize=False, **kwargs)(record)["sem_seg"].shape == (20, 40)


def _crop_fractions(tmp_path, **kwargs) -> list[tuple[float, float]]:
    """(top / max_top, left / max_left) of crops of a 40x100 image whose label holds the row."""
    label = np.repeat(np.arange(40)[:, None], 100, axis=1)
    record = _write(tmp_path, label % 3)
    write_png_atomic(label.astype(np.uint8), record["sem_seg_file_name"])
    columns = np.repeat(np.arange(100)[None], 40, axis=0).astype(np.uint8)
    write_png_atomic(np.stack([columns] * 3, axis=2), record["file_name"])
    mapper = _mapper(scale_range=(1.0, 1.0), target_size=(40, 100), flip=False, **kwargs)
    out = []
    for seed in range(10):
        _seed_all(seed)
        sample = mapper(record)
        out.append((sample["sem_seg"][0, 0].item() / 24, sample["image"][0, 0, 0].item() / 68))
    return out


def test_crop_offsets_share_one_draw_unless_independent(tmp_path) -> None:
    shared = _crop_fractions(tmp_path)
    assert all(abs(top - left) <= 0.5 / 24 + 0.5 / 68 for top, left in shared)  # rounding
    independent = _crop_fractions(tmp_path, independent_offsets=True)
    assert max(abs(top - left) for top, left in independent) > 0.2


def test_errors_name_the_file(tmp_path) -> None:
    record = _write(tmp_path, np.zeros((16, 32), dtype=np.int64))
    wrong = _write(tmp_path, np.zeros((8, 8), dtype=np.int64), name="small")
    record["sem_seg_file_name"] = wrong["sem_seg_file_name"]
    with pytest.raises(ImageReadError, match="small_label.png"):
        _mapper()(record)
    missing = dict(record, file_name=str(tmp_path / "missing.png"))
    with pytest.raises(ImageReadError, match="missing.png"):
        _mapper()(missing)


def test_test_mapper_resizes_short_side_and_keeps_original_size(tmp_path) -> None:
    record = _write(tmp_path, np.zeros((20, 60), dtype=np.int64))
    out = SemSegTestMapper(min_size=10, max_size=100)(record)
    assert out["image"].shape == (3, 10, 30)
    assert (out["height"], out["width"]) == (20, 60)
    capped = SemSegTestMapper(min_size=40, max_size=90)(record)
    assert capped["image"].shape == (3, 30, 90)


def test_test_mapper_scores_at_test_size_against_nearest_resized_labels(tmp_path) -> None:
    """The original's MapperTest: short side resized, label nearest-resized to the same size."""
    label = np.arange(15).reshape(3, 5) % 3
    record = _write(tmp_path, label)
    out = SemSegTestMapper(min_size=6, max_size=0, score_at_test_size=True)(record)
    assert out["image"].shape == (3, 6, 10) and (out["height"], out["width"]) == (6, 10)
    assert out["sem_seg"].dtype == torch.int64
    assert out["sem_seg"].numpy().tolist() == np.repeat(np.repeat(label, 2, 0), 2, 1).tolist()
    # detectron2's rounding, int(x + 0.5): BDD 720x1280 and ACDC 1080x1920 -> 1024x1820
    mapper = SemSegTestMapper(min_size=1024, max_size=0)
    assert mapper.output_size(720, 1280) == mapper.output_size(1080, 1920) == (1024, 1820)
    assert mapper.output_size(1024, 2048) == (1024, 2048)


def test_from_config() -> None:
    cfg = get_cfg()
    mapper = SemSegTrainMapper.from_config(cfg)
    assert mapper.crop_size == (768, 768) and mapper.target_size == (1052, 1914)
    assert mapper.color_aug == "detectron2" and mapper.single_category_max_area == 1.0
    assert not mapper.force_size and not mapper.independent_offsets
    assert SemSegTestMapper.from_config(cfg).min_size == 1024


def test_student_image_is_the_jitter_of_the_teachers_clean_copy(tmp_path, monkeypatch) -> None:
    # a known "colour jitter" (inversion): the student's image must be exactly that function of
    # the clean copy, flipped or not, so both views share one geometry
    monkeypatch.setattr("clouds.data.mappers.color_aug_ssd", lambda image, params, rgb: 255 - image)
    rng = np.random.default_rng(0)
    image_file = tmp_path / "gen.png"
    pixels = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    write_png_atomic(pixels, image_file)
    record = {"file_name": str(image_file), "sem_seg_file_name": None, "height": 12, "width": 20}
    original = torch.from_numpy(pixels).permute(2, 0, 1)
    mapper = _mapper(color_aug="detectron2")
    flips = []
    for seed in range(10):
        _seed_all(seed)
        out = mapper(record)
        assert torch.equal(out["image"], 255 - out["image_clean"])
        flips.append(torch.equal(out["image_clean"], original.flip(-1)))
        assert flips[-1] or torch.equal(out["image_clean"], original)
    assert any(flips) and not all(flips)
