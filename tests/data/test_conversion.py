"""Label conversion against hand-checked values, bad files, idempotence and parallel runs."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from clouds.data.conversion import (
    CITYSCAPES_CONVERSION,
    GTA_CONVERSION,
    MAPILLARY_CONVERSION,
    SYNTHIA_CONVERSION,
    DatasetLayoutError,
)
from clouds.data.conversion.cli import conversion_main
from clouds.data.conversion.mapillary import MAPILLARY_CLASSES

# Cityscapes label ID -> train ID, written out by hand from the Cityscapes label table.
CITYSCAPES_EXPECTED = [
    255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7,
    8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18,
]  # fmt: skip

# SYNTHIA RAND-CITYSCAPES class ID -> train ID (16 shared classes; terrain 16, truck 18 and
# train 20 are not in SYNTHIA's labels and are ignored like void, parking-slot, road-work
# and lane-marking).
SYNTHIA_EXPECTED = {
    0: 255, 1: 10, 2: 2, 3: 0, 4: 1, 5: 4, 6: 8, 7: 5, 8: 13, 9: 7, 10: 11, 11: 18, 12: 17,
    13: 255, 14: 255, 15: 6, 16: 255, 17: 12, 18: 255, 19: 15, 20: 255, 21: 3, 22: 255,
}  # fmt: skip

# Mapillary Vistas v1.2 class name -> Cityscapes train ID for every mapped class.
MAPILLARY_EXPECTED = {
    "construction--barrier--curb": 1,
    "construction--barrier--fence": 4,
    "construction--barrier--guard-rail": 4,
    "construction--barrier--wall": 3,
    "construction--flat--bike-lane": 0,
    "construction--flat--crosswalk-plain": 0,
    "construction--flat--curb-cut": 1,
    "construction--flat--parking": 0,
    "construction--flat--pedestrian-area": 1,
    "construction--flat--rail-track": 0,
    "construction--flat--road": 0,
    "construction--flat--service-lane": 0,
    "construction--flat--sidewalk": 1,
    "construction--structure--bridge": 2,
    "construction--structure--building": 2,
    "construction--structure--tunnel": 2,
    "human--person": 11,
    "human--rider--bicyclist": 12,
    "human--rider--motorcyclist": 12,
    "human--rider--other-rider": 12,
    "marking--crosswalk-zebra": 0,
    "marking--general": 0,
    "nature--sand": 9,
    "nature--sky": 10,
    "nature--snow": 9,
    "nature--terrain": 9,
    "nature--vegetation": 8,
    "object--support--pole": 5,
    "object--support--traffic-sign-frame": 7,
    "object--support--utility-pole": 5,
    "object--traffic-light": 6,
    "object--traffic-sign--front": 7,
    "object--vehicle--bicycle": 18,
    "object--vehicle--bus": 15,
    "object--vehicle--car": 13,
    "object--vehicle--motorcycle": 17,
    "object--vehicle--on-rails": 16,
    "object--vehicle--truck": 14,
}


def _image(path: Path, hw: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*hw, 3), dtype=np.uint8)).save(path)


def _palette_png(values: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(values.astype(np.uint8))
    img.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    assert img.mode == "P"
    img.save(path)


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_cityscapes_every_label_id(tmp_path: Path) -> None:
    values = np.arange(40, dtype=np.uint8).reshape(4, 10)  # ids 0..33 and unknown 34..39
    base = "aachen_000000_000019"
    label = tmp_path / "gtFine" / "train" / "aachen" / f"{base}_gtFine_labelIds.png"
    label.parent.mkdir(parents=True)
    Image.fromarray(values).save(label)
    _image(tmp_path / "leftImg8bit" / "train" / "aachen" / f"{base}_leftImg8bit.png", (4, 10))
    result = CITYSCAPES_CONVERSION.convert(tmp_path)
    assert (result.converted, result.failures) == (1, [])
    out = _read(label.with_name(f"{base}_gtFine_labelTrainIds.png"))
    np.testing.assert_array_equal(out.ravel(), CITYSCAPES_EXPECTED + [255] * 6)


def test_gta_palette_label_every_label_id(tmp_path: Path) -> None:
    values = np.arange(34, dtype=np.uint8).reshape(2, 17)
    _palette_png(values, tmp_path / "gta" / "labels" / "00001.png")
    _image(tmp_path / "gta" / "images" / "00001.png", (2, 17))
    result = GTA_CONVERSION.convert(tmp_path)  # the datasets root holding gta/ works too
    assert (result.converted, result.failures) == (1, [])
    out = _read(tmp_path / "gta" / "labels" / "00001_labelTrainIds.png")
    np.testing.assert_array_equal(out.ravel(), CITYSCAPES_EXPECTED)


def test_synthia_16bit_first_channel(tmp_path: Path) -> None:
    classes = np.array([list(range(23)) + [1000]], dtype=np.uint16)  # 1000: not a class
    instances = np.full_like(classes, 3)  # a wrong-channel read would give 3 everywhere
    label = tmp_path / "GT" / "LABELS" / "0000000.png"
    label.parent.mkdir(parents=True)
    # cv2 writes BGR: channel 2 is the file's first channel.
    assert cv2.imwrite(str(label), np.stack([np.zeros_like(classes), instances, classes], axis=2))
    _image(tmp_path / "RGB" / "0000000.png", (1, 24))
    result = SYNTHIA_CONVERSION.convert(tmp_path)
    assert (result.converted, result.failures) == (1, [])
    out = _read(label.with_name("0000000_labelTrainIds.png"))
    expected = [SYNTHIA_EXPECTED[i] for i in range(23)] + [255]
    np.testing.assert_array_equal(out.ravel(), expected)


def test_mapillary_every_class(tmp_path: Path) -> None:
    assert len(MAPILLARY_CLASSES) == 66
    assert MAPILLARY_CLASSES[65] == "void--unlabeled"
    values = np.arange(66, dtype=np.uint8).reshape(6, 11)
    for split in ("training", "validation"):
        _palette_png(values, tmp_path / split / "labels" / "key.png")
        _image(tmp_path / split / "images" / "key.jpg", (6, 11))
    result = MAPILLARY_CONVERSION.convert(tmp_path)
    assert (result.converted, result.failures) == (2, [])
    expected = [MAPILLARY_EXPECTED.get(name, 255) for name in MAPILLARY_CLASSES]
    assert expected.count(255) == 66 - 38
    for split in ("training", "validation"):
        out = _read(tmp_path / split / "labels" / "key_labelTrainIds.png")
        np.testing.assert_array_equal(out.ravel(), expected)


def _gta_tree(root: Path, n: int) -> list[Path]:
    labels = []
    for i in range(n):
        name = f"{i + 1:05d}.png"
        _palette_png(np.full((4, 6), 7, dtype=np.uint8), root / "labels" / name)
        _image(root / "images" / name, (4, 6))
        labels.append(root / "labels" / name)
    return labels


def test_bad_files_are_named_and_the_rest_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _gta_tree(tmp_path, 4)
    (tmp_path / "labels" / "00002.png").write_bytes(b"not a png")  # unreadable label
    _image(tmp_path / "images" / "00003.png", (5, 6))  # label 00003 is mis-sized
    (tmp_path / "images" / "00004.png").write_bytes(b"\x89PNG broken")  # corrupt image
    code = conversion_main(GTA_CONVERSION, [str(tmp_path), "--nproc", "1"])
    err = capsys.readouterr().err
    assert code == 1
    for name in ("labels/00002.png", "labels/00003.png", "images/00004.png"):
        assert name in err, err
    assert "4x6" in err and "5x6" in err
    assert (tmp_path / "labels" / "00001_labelTrainIds.png").is_file()
    for stem in ("00002", "00003", "00004"):
        assert not (tmp_path / "labels" / f"{stem}_labelTrainIds.png").exists()
    assert not list(tmp_path.rglob("*.tmp*")), "no temporary files left behind"


def test_rerun_skips_up_to_date_outputs(tmp_path: Path) -> None:
    labels = _gta_tree(tmp_path, 3)
    first = GTA_CONVERSION.convert(tmp_path)
    assert (first.converted, first.skipped) == (3, 0)
    second = GTA_CONVERSION.convert(tmp_path)
    assert (second.converted, second.skipped) == (0, 3)
    output = tmp_path / "labels" / "00001_labelTrainIds.png"
    stamp = output.stat().st_mtime - 10
    os.utime(output, (stamp, stamp))  # the raw label is now newer than its output
    third = GTA_CONVERSION.convert(tmp_path)
    assert (third.converted, third.skipped) == (1, 2)
    assert GTA_CONVERSION.convert(tmp_path, force=True).converted == 3
    assert len(labels) == 3


def test_parallel_conversion_matches_serial(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(6):
        name = f"{i + 1:05d}.png"
        _palette_png(rng.integers(0, 34, (8, 8)), tmp_path / "labels" / name)
        _image(tmp_path / "images" / name, (8, 8))
    result = GTA_CONVERSION.convert(tmp_path, nproc=2)
    assert (result.converted, result.failures) == (6, [])
    lut = np.array(CITYSCAPES_EXPECTED + [255] * 222, dtype=np.uint8)
    for i in range(6):
        raw = _read(tmp_path / "labels" / f"{i + 1:05d}.png")
        out = _read(tmp_path / "labels" / f"{i + 1:05d}_labelTrainIds.png")
        np.testing.assert_array_equal(out, lut[raw])


def test_missing_or_empty_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DatasetLayoutError, match="datasets/README.md"):
        SYNTHIA_CONVERSION.convert(tmp_path / "nowhere")
    assert conversion_main(MAPILLARY_CONVERSION, [str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(DatasetLayoutError, match="No gta label files"):
        GTA_CONVERSION.convert(tmp_path)


def test_colour_label_is_refused(tmp_path: Path) -> None:
    _image(tmp_path / "labels" / "00001.png", (4, 6))  # an RGB image where a label should be
    _image(tmp_path / "images" / "00001.png", (4, 6))
    result = GTA_CONVERSION.convert(tmp_path)
    assert len(result.failures) == 1
    assert "labels/00001.png is a RGB image" in result.failures[0]
