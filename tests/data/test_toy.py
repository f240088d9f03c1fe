"""Toy datasets: real layouts, raw label encodings, seeding, ground truth and domain shift."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from clouds.data.conversion.mapillary import mapillary_to_train_id_lut
from clouds.data.datasets.cityscapes_meta import label_id_to_train_id_lut
from clouds.data.toy import TOY_DATASETS, make_toy_datasets, toy_sample, toy_scene

ROAD, SKY, VEGETATION = 0, 10, 8


def _raw_labels(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png") if not p.name.endswith("_labelTrainIds.png"))


def _first(root: Path, pattern: str) -> Path:
    files = sorted(root.glob(pattern))
    assert files, f"nothing matches {pattern} under {root}"
    return files[0]


def test_raw_layouts_and_label_encodings(toy_root: Path, toy_spec: dict) -> None:
    h, w = toy_spec["size"]
    n = toy_spec["num_images"]
    assert len(list((toy_root / "gta" / "images").glob("*.png"))) == n
    gta_label = Image.open(toy_root / "gta" / "labels" / "00001.png")
    assert gta_label.mode == "P" and gta_label.size == (w, h)
    assert set(np.unique(np.asarray(gta_label))) <= set(range(34))

    cs = _first(toy_root / "cityscapes" / "gtFine" / "val", "*/*_gtFine_labelIds.png")
    assert Image.open(cs).mode == "L"
    assert (toy_root / "cityscapes" / "leftImg8bit" / "val" / cs.parent.name).is_dir()

    synthia = cv2.imread(
        str(toy_root / "synthia" / "GT" / "LABELS" / "0000000.png"), cv2.IMREAD_UNCHANGED
    )
    assert synthia.dtype == np.uint16 and synthia.shape == (h, w, 3)
    assert set(np.unique(synthia[:, :, 2])) <= set(range(23))  # class IDs, first channel

    mapillary = Image.open(
        _first(toy_root / "mapillary_vistas" / "training" / "labels", "*[!s].png")
    )
    assert mapillary.mode == "P"
    assert _first(toy_root / "mapillary_vistas" / "validation" / "images", "*.jpg")

    assert _first(toy_root / "bdd100k" / "images" / "10k" / "val", "*.jpg")
    assert _first(toy_root / "bdd100k" / "labels" / "sem_seg" / "masks" / "train", "*.png")
    for condition in ("fog", "night", "rain", "snow"):
        for split in ("train", "val"):
            assert _first(toy_root / "acdc" / "rgb_anon" / condition / split, "*/*_rgb_anon.png")
            assert _first(toy_root / "acdc" / "gt" / condition / split, "*/*_gt_labelTrainIds.png")
    assert len(list((toy_root / "stable_diffusion" / "toy" / "images").glob("*.png"))) == n


def test_converted_labels_are_the_scene_ground_truth(toy_root: Path, toy_spec: dict) -> None:
    kwargs = {"seed": toy_spec["seed"], "size": toy_spec["size"]}
    gta = toy_scene("gta", "train", 1, **kwargs).label
    raw = np.asarray(Image.open(toy_root / "gta" / "labels" / "00002.png"))
    np.testing.assert_array_equal(label_id_to_train_id_lut()[raw], gta)
    converted = np.asarray(Image.open(toy_root / "gta" / "labels" / "00002_labelTrainIds.png"))
    np.testing.assert_array_equal(converted, gta)

    synthia = toy_scene("synthia", "train", 0, **kwargs).label
    converted = np.asarray(
        Image.open(toy_root / "synthia" / "GT" / "LABELS" / "0000000_labelTrainIds.png")
    )
    # terrain, truck and train use SYNTHIA's own IDs 16 / 18 / 20, which the original maps back
    np.testing.assert_array_equal(converted, synthia)

    city = toy_scene("cityscapes", "val", 0, **kwargs).label
    path = toy_root / "cityscapes" / "gtFine" / "val" / "frankfurt"
    converted = np.asarray(Image.open(path / "frankfurt_000000_000019_gtFine_labelTrainIds.png"))
    np.testing.assert_array_equal(converted, city)

    for split, folder in (("train", "training"), ("val", "validation")):
        labels = toy_root / "mapillary_vistas" / folder / "labels"
        converted_all = {
            np.asarray(Image.open(p)).tobytes() for p in labels.glob("*_labelTrainIds.png")
        }
        for index in range(toy_spec["num_images"]):
            scene = toy_scene("mapillary", split, index, **kwargs).label
            assert scene.tobytes() in converted_all
        raw = np.asarray(Image.open(_raw_labels(labels)[0]))
        assert raw.max() < 66 and (mapillary_to_train_id_lut()[raw] != 255).any()


def test_seeded_and_deterministic(tmp_path: Path) -> None:
    a = make_toy_datasets(tmp_path / "a", seed=3, num_images=1, size=(32, 64))
    b = make_toy_datasets(tmp_path / "b", seed=3, num_images=1, size=(32, 64))
    c = make_toy_datasets(tmp_path / "c", seed=4, num_images=1, size=(32, 64))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files_a) == sum(len(d.splits) for d in TOY_DATASETS.values()) * 2 - 1
    for rel in files_a:
        np.testing.assert_array_equal(
            np.asarray(Image.open(a / rel)), np.asarray(Image.open(b / rel))
        )
    image = "gta/images/00001.png"
    assert not np.array_equal(np.asarray(Image.open(a / image)), np.asarray(Image.open(c / image)))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_images"):
        make_toy_datasets(tmp_path, num_images=0)
    with pytest.raises(ValueError, match="size"):
        make_toy_datasets(tmp_path, size=(8, 64))


def _class_means(key: str, n: int = 6) -> dict[int, np.ndarray]:
    sums: dict[int, list[np.ndarray]] = {}
    for i in range(n):
        scene, image = toy_sample(key, np.random.default_rng(i))
        for cls in (ROAD, SKY, VEGETATION):
            sums.setdefault(cls, []).append(image[scene.label == cls].astype(np.float64))
    return {cls: np.concatenate(v).mean(axis=0) for cls, v in sums.items()}


def test_domain_shift_keeps_classes_apart() -> None:
    """Class colours move between domains but classes stay distinguishable within each."""
    means = {key: _class_means(key) for key in ("gta", "cityscapes", "mapillary", "acdc_night")}
    for key, by_class in means.items():
        assert np.abs(by_class[SKY] - by_class[ROAD]).max() > 15, key
        assert np.abs(by_class[VEGETATION] - by_class[ROAD]).max() > 10, key
    for key in ("cityscapes", "mapillary", "acdc_night"):
        shift = max(np.abs(means[key][c] - means["gta"][c]).max() for c in (ROAD, SKY, VEGETATION))
        assert shift > 10, key
    assert means["acdc_night"][SKY].mean() < 0.5 * means["gta"][SKY].mean()


def test_scene_grammar() -> None:
    counts = np.zeros(256, dtype=np.int64)
    for i in range(40):
        scene, _ = toy_sample("gta", np.random.default_rng(i), (64, 128))
        label = scene.label
        counts += np.bincount(label.ravel(), minlength=256)
        assert not (label[scene.horizon :] == SKY).any(), "no sky below the horizon"
        assert not (label[: scene.horizon] == ROAD).any(), "no road above the horizon"
        assert (label[scene.horizon :] == ROAD).mean() > 0.02, "the road is visible"
    assert (counts[:19] > 0).all(), "every class appears in the toy scenes"
