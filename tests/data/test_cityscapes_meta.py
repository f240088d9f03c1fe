import numpy as np

from clouds.data.datasets.cityscapes_meta import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_COLORS,
    LABEL_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_LABEL_ID,
    cityscapes_metadata,
    label_id_to_train_id_lut,
    train_id_to_label_id_lut,
)

# Hand-copied from the Cityscapes benchmark's label table (id -> trainId, 255 = ignored).
EXPECTED_TRAIN_ID = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255,
    11: 2, 12: 3, 13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8,
    22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255, 30: 255, 31: 16,
    32: 17, 33: 18, -1: 255,
}  # fmt: skip


def test_train_classes_and_colors() -> None:
    assert CITYSCAPES_CLASSES == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
        "bus", "train", "motorcycle", "bicycle",
    )  # fmt: skip
    assert CITYSCAPES_COLORS[0] == (128, 64, 128)
    assert CITYSCAPES_COLORS[10] == (70, 130, 180)
    assert CITYSCAPES_COLORS[18] == (119, 11, 32)
    assert len(set(CITYSCAPES_COLORS)) == 19


def test_every_label_id_maps_to_its_train_id() -> None:
    assert LABEL_ID_TO_TRAIN_ID == EXPECTED_TRAIN_ID
    lut = label_id_to_train_id_lut()
    for label_id, train_id in EXPECTED_TRAIN_ID.items():
        if label_id >= 0:
            assert lut[label_id] == train_id, label_id
    assert (lut[34:] == 255).all()


def test_train_id_to_label_id_round_trip() -> None:
    assert TRAIN_ID_TO_LABEL_ID == (
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    )
    back = train_id_to_label_id_lut()
    train_ids = np.arange(19)
    np.testing.assert_array_equal(label_id_to_train_id_lut()[back[train_ids]], train_ids)
    assert back[255] == 0


def test_metadata() -> None:
    meta = cityscapes_metadata()
    assert meta["ignore_label"] == 255
    assert meta["evaluator_type"] == "sem_seg"
    assert meta["stuff_classes"] == list(CITYSCAPES_CLASSES)
    assert meta["stuff_colors"][13] == [0, 0, 142]
