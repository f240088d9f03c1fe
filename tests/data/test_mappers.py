"""Training and test mappers."""

import numpy as np
import pytest
import torch

from clouds.config import get_cfg
from clouds.data.mappers import SemSegTestMapper, SemSegTrainMapper
from clouds.utils.io import ImageReadError, write_png_atomic

PALETTE = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250]], dtype=np.uint8)


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
        "initial_size": (16, 32),
        "scale_range": (0.5, 2.0),
        "crop_size": (16, 32),
        "single_category_max_area": 1.0,
        "ignore_label": 255,
        "flip": True,
        "color_aug": False,
    }
    args.update(kwargs)
    return SemSegTrainMapper(**args)


def test_train_mapper_keeps_image_and_label_aligned(tmp_path) -> None:
    label = np.zeros((32, 64), dtype=np.int64)
    label[:, 20:40] = 1
    label[16:, 40:] = 2
    record = _write(tmp_path, label)
    mapper = _mapper(initial_size=(32, 64))
    for seed in range(6):
        torch.manual_seed(seed)
        out = mapper(record)
        image, sem_seg = out["image"], out["sem_seg"]
        assert image.shape == (3, 16, 32) and image.dtype == torch.uint8
        assert sem_seg.shape == (16, 32) and sem_seg.dtype == torch.int64
        for c in range(3):  # the colour of each labelled pixel is its class colour
            pixels = image[:, sem_seg == c].T.numpy().astype(int)
            if len(pixels):
                # (resizing blends colours along class borders only)
                assert (np.abs(pixels - PALETTE[c]).max(axis=1) < 60).mean() > 0.75
        padded = sem_seg == 255  # padding: ignore label and black image
        assert (image[:, padded] == 0).all()


def test_small_images_are_padded_with_ignore(tmp_path) -> None:
    record = _write(tmp_path, np.ones((8, 8), dtype=np.int64))
    out = _mapper(initial_size=(8, 8), scale_range=(1.0, 1.0), flip=False)(record)
    assert out["sem_seg"].shape == (16, 32)
    assert (out["sem_seg"][:8, :8] == 1).all() and (out["sem_seg"][8:] == 255).all()
    assert (out["image"][:, 8:] == 0).all()


def test_crop_avoids_single_category_crops(tmp_path) -> None:
    label = np.zeros((16, 128), dtype=np.int64)
    label[:, 100:] = 1  # most 16x32 crops hold class 0 only
    record = _write(tmp_path, label)
    kwargs = {"initial_size": (16, 128), "scale_range": (1.0, 1.0), "flip": False}
    mixed = []
    for mapper in (_mapper(**kwargs), _mapper(single_category_max_area=0.75, **kwargs)):
        torch.manual_seed(0)
        outs = [mapper(record)["sem_seg"] for _ in range(30)]
        mixed.append(np.mean([len(o.unique()) > 1 for o in outs]))
    assert mixed[1] > mixed[0] + 0.3


def test_unlabelled_images_keep_a_clean_copy(tmp_path) -> None:
    record = _write(tmp_path, np.zeros((16, 32), dtype=np.int64))
    record["sem_seg_file_name"] = None
    torch.manual_seed(1)
    out = _mapper(color_aug=True)(record)
    assert "sem_seg" not in out
    assert out["image_clean"].shape == out["image"].shape == (3, 16, 32)


def test_photometric_jitter_changes_only_the_image(tmp_path) -> None:
    record = _write(tmp_path, np.zeros((16, 32), dtype=np.int64))
    plain = _mapper(flip=False, scale_range=(1.0, 1.0))
    jitter = _mapper(flip=False, scale_range=(1.0, 1.0), color_aug=True)
    changed = 0
    for seed in range(8):
        torch.manual_seed(seed)
        a = plain(record)
        torch.manual_seed(seed)
        b = jitter(record)
        assert torch.equal(a["sem_seg"], b["sem_seg"])
        changed += int(not torch.equal(a["image"], b["image"]))
    assert changed > 0


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


def test_from_config() -> None:
    cfg = get_cfg()
    mapper = SemSegTrainMapper.from_config(cfg)
    assert mapper.crop_size == (768, 768) and mapper.initial_size == (1052, 1914)
    assert SemSegTestMapper.from_config(cfg).min_size == 1024
