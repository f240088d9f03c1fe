"""DGVFM data pipelines (clouds.data.vfm_pipelines, clouds.data.transforms.geometric).

Fixture ``tests/fixtures/dgvfm_train/train_pipeline_mmseg.pt``: the original's whole training
pipeline run outside this project on a 60x110 image/label (gradients + noise, six class boxes,
``np.random.default_rng(0)``): mmcv 2.1.0's ``imresize`` / ``imrescale`` (``Resize``) and mmseg
1.2.2's ``ResizeShortestEdge`` size rule, ``RandomCrop`` (40x40, cat_max_ratio 0.75), the
``RandomFlip`` choice and ``PhotoMetricDistortion``, their sources taken from the releases; four
runs with ``Resize((160, 90))`` and four with ``RandomChoiceResize`` over short sides
(30, 45, 60, 75), long side <= 150 (seeds 100-103); every numpy draw recorded, and the RGB
outputs saved.

Fixture ``tests/fixtures/dgvfm_train/resize_sizes.json``: output sizes computed outside this
project by mmcv 2.1.0's own ``rescale_size`` / ``_scale_size`` (``mmcv/image/geometric.py``,
i.e. ``Resize(scale, keep_ratio=True)``) for the test scales of the original configs, and by
mmseg 1.2.2's ``ResizeShortestEdge._get_output_shape`` followed by that resize, for the GTA
light-head short sides 256..1024 (max 2048), on the native sizes of GTA5, Cityscapes, BDD100K,
ACDC and a few Mapillary images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import clouds.data.vfm_pipelines as pipelines_module
from clouds.config import ConfigError, load_config
from clouds.data.transforms.geometric import (
    keep_ratio_size,
    random_crop_box,
    shortest_edge_size,
)
from clouds.data.transforms.photometric import PhotoMetricDistortion
from clouds.data.vfm_pipelines import VFMTestMapper, VFMTrainMapper
from clouds.utils.io import write_png_atomic

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "dgvfm_train"


def test_train_pipeline_equals_mmseg_from_the_same_seed(tmp_path: Path) -> None:
    """Each run of the fixture was made right after ``np.random.seed(100 + i)`` (four runs per
    mode); seeded alike, ours makes the same draws in the same order, and so the same output."""
    data = torch.load(FIXTURES / "train_pipeline_mmseg.pt", weights_only=True)
    write_png_atomic(data["image"].numpy(), tmp_path / "img.png")
    write_png_atomic(data["label"].numpy(), tmp_path / "lab.png")
    d = {"file_name": str(tmp_path / "img.png"), "sem_seg_file_name": str(tmp_path / "lab.png")}
    common = {"crop_size": (40, 40), "cat_max_ratio": 0.75, "photometric": PhotoMetricDistortion()}
    mappers = {
        "fixed": VFMTrainMapper(scale=(160, 90), **common),
        "short": VFMTrainMapper(
            scale=(1, 1), short_edges=(30, 45, 60, 75), max_long_edge=150, **common
        ),
    }
    assert any(len(r["draws"]) > 12 for r in data["runs"])  # some crops were redrawn
    for i, run in enumerate(data["runs"]):
        np.random.seed(100 + i % 4)
        out = mappers[run["mode"]](d)
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), run["image"].numpy())
        np.testing.assert_array_equal(out["sem_seg"].numpy(), run["label"].numpy())


def test_resize_sizes_equal_mmcv() -> None:
    sizes = json.loads((FIXTURES / "resize_sizes.json").read_text())
    for case in sizes["keep_ratio"]:
        assert list(keep_ratio_size(*case["image"], case["scale"])) == case["out"], case
    for case in sizes["shortest_edge"]:
        got = shortest_edge_size(*case["image"], case["short"], case["max_long"])
        assert list(got) == case["out"], case


@pytest.mark.parametrize(
    "config", sorted(p.relative_to(ROOT) for p in (ROOT / "configs" / "dg").rglob("dg_*.yaml"))
)
def test_each_test_pipeline_output_size(config: Path, tmp_path) -> None:
    """Every test set of every reproduction config: the mapper's image size is mmcv's."""
    cfg = load_config(str(ROOT / config))
    native = {"cityscapes": (1024, 2048), "bdd": (720, 1280), "acdc": (1080, 1920)}
    native["mapillary"] = (3024, 4032)
    sizes = json.loads((FIXTURES / "resize_sizes.json").read_text())["keep_ratio"]
    expected = {(tuple(c["image"]), tuple(c["scale"])): tuple(c["out"]) for c in sizes}
    for name, scale in zip(cfg.DATASETS.TEST, cfg.INPUT.VFM_PIPELINE.TEST_SCALES):
        mapper = VFMTestMapper.from_config(cfg, name)
        hw = native[name.removeprefix("dg_").removesuffix("100k_val").split("_")[0]]
        assert mapper.output_size(*hw) == expected[(hw, tuple(scale))], (config, name)
    # one real image through the mapper of the first test set
    small = np.random.default_rng(0).integers(0, 255, (18, 32, 3), dtype=np.uint8)
    write_png_atomic(small, tmp_path / "a.png")
    out = VFMTestMapper.from_config(cfg, cfg.DATASETS.TEST[0])(
        {"file_name": str(tmp_path / "a.png")}
    )
    assert tuple(out["image"].shape[1:]) == keep_ratio_size(
        18, 32, cfg.INPUT.VFM_PIPELINE.TEST_SCALES[0]
    )
    assert (out["height"], out["width"]) == (18, 32) and out["image"].dtype == torch.uint8


def test_test_scales_must_match_datasets() -> None:
    cfg = load_config(str(ROOT / "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.yaml"))
    with pytest.raises(ConfigError, match="not in DATASETS.TEST"):
        VFMTestMapper.from_config(cfg, "bdd_val")
    cfg.INPUT.VFM_PIPELINE.TEST_SCALES = []
    with pytest.raises(ConfigError, match="one \\(W, H\\) per DATASETS.TEST"):
        VFMTestMapper.from_config(cfg, "cityscapes_val")
    cfg.DATASETS.TEST = ("gta5", "cityscapes_val")
    cfg.INPUT.VFM_PIPELINE.TEST_SCALES = [[64, 32]]  # one scale serves every test set
    assert VFMTestMapper.from_config(cfg, "cityscapes_val").scale == (64, 32)
    cfg.INPUT.VFM_PIPELINE.TEST_SCALES = [[64, 32], [32, 16], [16, 8]]
    with pytest.raises(ConfigError, match="one \\(W, H\\) per DATASETS.TEST"):
        VFMTestMapper.from_config(cfg, "gta5")


def _sample(tmp_path: Path, height: int, width: int) -> dict:
    """An image/label pair: class 0 left half, class 1 right half, class 5 a 20x20 block."""
    image = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    label = np.zeros((height, width), dtype=np.uint8)
    label[:, width // 2 :] = 1
    label[:20, width - 20 :] = 5
    write_png_atomic(image, tmp_path / "img.png")
    write_png_atomic(label, tmp_path / "lab.png")
    return {"file_name": str(tmp_path / "img.png"), "sem_seg_file_name": str(tmp_path / "lab.png")}


def _mapper(**kwargs: object) -> VFMTrainMapper:
    args = {"scale": (128, 64), "crop_size": (32, 32), "cat_max_ratio": 0.75, "photometric": None}
    return VFMTrainMapper(**{**args, **kwargs})


def test_train_pipeline_fixed_resize_and_crop(tmp_path) -> None:
    d = _sample(tmp_path, 40, 60)
    np.random.seed(0)
    out = _mapper()(d)
    assert out["image"].shape == (3, 32, 32) and out["sem_seg"].shape == (32, 32)
    assert out["image"].dtype == torch.uint8 and out["sem_seg"].dtype == torch.int64
    # a crop larger than the image is clipped, not padded (the model pads, as mmseg)
    out = _mapper(crop_size=(100, 100))(d)
    assert out["image"].shape == (3, 64, 100)
    # image and label are resized each from its own size (a few GTA5 frames differ), as mmcv
    write_png_atomic(np.zeros((38, 60), dtype=np.uint8), tmp_path / "short_label.png")
    out = _mapper()(dict(d, sem_seg_file_name=str(tmp_path / "short_label.png")))
    assert out["image"].shape == (3, 32, 32) and out["sem_seg"].shape == (32, 32)


def test_train_pipeline_short_edge_choice(tmp_path) -> None:
    d = _sample(tmp_path, 40, 60)
    mapper = _mapper(short_edges=(20, 50), max_long_edge=70, crop_size=(200, 200))
    shapes = {tuple(mapper(d)["sem_seg"].shape) for _ in range(30)}
    assert shapes == {(20, 30), (47, 70)}  # 50 x 1.5 = 75 > 70: long side capped


def test_crop_box_retries_dominated_crops() -> None:
    label = np.zeros((100, 100), dtype=np.uint8)
    label[:, 90:] = 1  # only crops touching the right strip hold two classes
    np.random.seed(0)
    boxes = [random_crop_box(label, (20, 20), cat_max_ratio=0.75) for _ in range(200)]
    # two classes under 75% need x1 >= 96: 5 offsets of 81; 11 draws: 1 - (76/81)^11 = 0.50
    share = np.mean([x1 >= 96 for _, _, _, x1 in boxes])
    assert 0.35 < share < 0.65
    assert all(y1 - y0 == 20 and x1 - x0 == 20 for y0, y1, x0, x1 in boxes)


def test_rare_class_recrop(tmp_path, monkeypatch) -> None:
    d = _sample(tmp_path, 64, 64)  # class 5: a 20x20 corner block
    plain = _mapper(scale=(64, 64), cat_max_ratio=1.0)
    rare = _mapper(scale=(64, 64), cat_max_ratio=1.0, rare_class_min_crop_pixels=100)
    np.random.seed(0)
    # one 32x32 crop holds > 100 px of it with probability 0.16; 11 draws: 0.85
    hits_plain = np.mean([(plain(d)["sem_seg"] == 5).sum() > 100 for _ in range(200)])
    hits_rare = np.mean(
        [(rare(dict(d, rare_class=5))["sem_seg"] == 5).sum() > 100 for _ in range(200)]
    )
    assert hits_plain < 0.25 and 0.75 < hits_rare < 0.95
    # an unreachable threshold: the first crop and exactly 10 redraws, the last one kept
    calls = []
    impossible = _mapper(cat_max_ratio=1.0, rare_class_min_crop_pixels=10_000)
    original = impossible._resize_and_crop
    monkeypatch.setattr(impossible, "_resize_and_crop", lambda *a: calls.append(1) or original(*a))
    impossible(dict(d, rare_class=5))
    assert len(calls) == 11
    calls.clear()
    impossible(d)  # no rare class: one crop
    assert len(calls) == 1


def test_unlabelled_images_whole_with_a_clean_copy(tmp_path) -> None:
    """Generated images (self-training): native size, no crop; "image_clean" is the flipped image
    before the photometric distortion, "image" the same image after it; no label."""
    d = dict(_sample(tmp_path, 40, 60), sem_seg_file_name=None)
    mapper = _mapper(photometric=lambda image: 255 - image)  # a stand-in distortion
    original = torch.from_numpy(np.asarray(pipelines_module.read_image(d["file_name"])))
    flips = set()
    np.random.seed(0)
    for _ in range(12):
        out = mapper(d)
        assert "sem_seg" not in out
        assert out["image"].shape == out["image_clean"].shape == (3, 40, 60)
        clean = out["image_clean"].permute(1, 2, 0)
        flipped = torch.equal(clean, original.flip(1))
        assert flipped or torch.equal(clean, original)
        flips.add(flipped)
        assert torch.equal(out["image"], 255 - out["image_clean"])
        assert torch.equal(
            _mapper(photometric=None, flip=False)(d)["image"].permute(1, 2, 0), original
        )
    assert flips == {True, False}
