"""Label conversion against hand-checked values and the original's, bad files, idempotence and
parallel runs."""

import json
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
from clouds.data.conversion.mapillary import (
    MAPILLARY_CLASSES,
    MAPILLARY_COLORS,
    mapillary_to_train_id_lut,
)

# Cityscapes label ID -> train ID, written out by hand from the Cityscapes label table.
CITYSCAPES_EXPECTED = [
    255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7,
    8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18,
]  # fmt: skip

# Raw value -> train ID of the original CLOUDS's tools/convert_datasets/{gta,synthia,mapillary}.py,
# read off by running its convert_to_train_id outside this project on label files holding every
# raw value (GTA 0..33, SYNTHIA 0..22 in the 16-bit file's first channel, Mapillary 0..65).
ORIGINAL_MAPS = json.loads(
    (
        Path(__file__).parents[1] / "fixtures" / "clouds_data" / "original_label_maps.json"
    ).read_text()
)


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
    assert ORIGINAL_MAPS["gta"] == CITYSCAPES_EXPECTED


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
    # the original's mapping, ids 16 / 18 / 20 (terrain, truck, train) -> 9 / 14 / 16 included
    expected = ORIGINAL_MAPS["synthia"] + [255]
    assert [expected[i] for i in (16, 18, 20)] == [9, 14, 16]
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
    expected = ORIGINAL_MAPS["mapillary"]
    assert expected.count(255) == 66 - 25
    assert expected[MAPILLARY_CLASSES.index("object--manhole")] == 0  # road
    for split in ("training", "validation"):
        out = _read(tmp_path / split / "labels" / "key_labelTrainIds.png")
        np.testing.assert_array_equal(out.ravel(), expected)


# Label value -> (name, palette colour) as listed in Mapillary Vistas v1.2's own config.json,
# written out by hand, and the Cityscapes train ID a CLOUDS conversion gives it (255: ignored).
MAPILLARY_V12_PINNED = {
    2: ("construction--barrier--curb", (196, 196, 196), 1),
    7: ("construction--flat--bike-lane", (128, 64, 255), 255),
    13: ("construction--flat--road", (128, 64, 128), 0),
    14: ("construction--flat--service-lane", (110, 110, 110), 255),
    19: ("human--person", (220, 20, 60), 11),
    21: ("human--rider--motorcyclist", (255, 0, 100), 12),
    23: ("marking--crosswalk-zebra", (200, 128, 128), 255),
    24: ("marking--general", (255, 255, 255), 0),
    27: ("nature--sky", (70, 130, 180), 10),
    41: ("object--manhole", (100, 128, 160), 0),
    47: ("object--support--utility-pole", (0, 0, 80), 5),
    49: ("object--traffic-sign--back", (192, 192, 192), 255),
    50: ("object--traffic-sign--front", (220, 220, 0), 7),
    55: ("object--vehicle--car", (0, 0, 142), 13),
    58: ("object--vehicle--on-rails", (0, 80, 100), 16),
    62: ("object--vehicle--wheeled-slow", (0, 0, 192), 255),
    64: ("void--ego-vehicle", (120, 10, 10), 255),
    65: ("void--unlabeled", (0, 0, 0), 255),
}


def test_mapillary_v12_indices_pinned_from_the_dataset_config() -> None:
    lut = mapillary_to_train_id_lut()
    for index, (name, colour, train_id) in MAPILLARY_V12_PINNED.items():
        assert MAPILLARY_CLASSES[index] == name, index
        assert MAPILLARY_COLORS[index] == colour, name
        assert lut[index] == train_id, name
    assert (lut[66:] == 255).all()


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
