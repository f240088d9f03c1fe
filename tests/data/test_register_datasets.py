"""Dataset registration: every dataset from the converted toy tree, errors, generated sets."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clouds.data.catalog import DatasetCatalog, MetadataCatalog, UnknownDatasetError
from clouds.data.datasets import (
    DATASET_NAMES,
    DatasetNotFoundError,
    class_names,
    datasets_root,
    register_all_datasets,
)
from clouds.data.datasets.cityscapes_meta import CITYSCAPES_CLASSES
from clouds.data.datasets.loading import PairedLayout

KEYS = {"file_name", "sem_seg_file_name", "height", "width", "image_id"}


def test_names() -> None:
    assert len(DATASET_NAMES) == 17 + 15  # CLOUDS' and the DGVFM configs' (dg_*)
    assert {"dg_gta_train", "dg_bdd100k_val", "dg_mapillary_val"} <= set(DATASET_NAMES)
    assert {"gta5", "synthia", "cityscapes_val", "bdd_val", "mapillary_val"} <= set(DATASET_NAMES)
    assert "acdc_night_val" in DATASET_NAMES


@pytest.mark.parametrize("name", [n for n in DATASET_NAMES if not n.startswith("dg_")])
def test_every_dataset_loads_from_toy_data(toy_root: Path, toy_spec: dict, name: str) -> None:
    register_all_datasets(toy_root)
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == toy_spec["num_images"]
    assert len({d["image_id"] for d in dicts}) == len(dicts)
    for d in dicts:
        assert set(d) == KEYS
        image = Image.open(d["file_name"])
        assert (d["height"], d["width"]) == (image.height, image.width) == toy_spec["size"]
        label = np.asarray(Image.open(d["sem_seg_file_name"]))
        assert label.shape == toy_spec["size"]
        assert set(np.unique(label)) <= set(range(19)) | {255}
        assert d["image_id"] in Path(d["file_name"]).stem
    meta = MetadataCatalog.get(name)
    assert meta.stuff_classes == list(CITYSCAPES_CLASSES)
    assert len(meta.stuff_colors) == 19
    assert meta.ignore_label == 255
    assert meta.evaluator_type == "sem_seg"
    assert Path(dicts[0]["file_name"]).is_relative_to(meta.image_root)
    assert Path(dicts[0]["sem_seg_file_name"]).is_relative_to(meta.sem_seg_root)


def test_image_ids_follow_dataset_conventions(toy_root: Path) -> None:
    register_all_datasets(toy_root)
    assert DatasetCatalog.get("cityscapes_val")[0]["image_id"] == "frankfurt_000000_000019"
    assert DatasetCatalog.get("gta5")[0]["image_id"] == "00001"
    assert DatasetCatalog.get("acdc_fog_val")[0]["image_id"].endswith("_frame_000000")
    label = DatasetCatalog.get("cityscapes_val")[0]["sem_seg_file_name"]
    assert label.endswith("frankfurt_000000_000019_gtFine_labelTrainIds.png")


def test_registration_is_lazy_and_idempotent(tmp_path: Path) -> None:
    missing = tmp_path / "nothing_here"
    assert register_all_datasets(missing) == missing  # no disk access: no error yet
    assert register_all_datasets(missing) == missing  # calling again is fine
    assert set(DATASET_NAMES) <= set(DatasetCatalog.list())
    assert not missing.exists()
    with pytest.raises(DatasetNotFoundError) as err:
        DatasetCatalog.get("cityscapes_val")
    message = str(err.value)
    assert str(missing / "cityscapes" / "leftImg8bit" / "val") in message
    assert "datasets/README.md" in message


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert datasets_root() == tmp_path
    assert register_all_datasets() == tmp_path
    assert MetadataCatalog.get("bdd_val").image_root == str(tmp_path / "bdd100k/images/10k/val")
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert datasets_root() == Path("datasets")


def test_empty_folder_and_missing_label(toy_root: Path, tmp_path: Path) -> None:
    (tmp_path / "gta" / "images").mkdir(parents=True)
    register_all_datasets(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="holds no images") as err:
        DatasetCatalog.get("gta5")
    assert str(tmp_path / "gta" / "images") in str(err.value)

    shutil.copytree(toy_root / "gta", tmp_path / "gta", dirs_exist_ok=True)
    converted = tmp_path / "gta" / "labels" / "00002_labelTrainIds.png"
    converted.unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        DatasetCatalog.get("gta5")
    message = str(err.value)
    assert str(converted) in message and "1 of 3 images" in message
    assert "tools/convert_datasets/gta.py" in message and "datasets/README.md" in message


def test_generated_sets_resolve_on_demand(toy_root: Path, toy_spec: dict, tmp_path: Path) -> None:
    register_all_datasets(toy_root)
    assert "sd_toy" in DatasetCatalog
    dicts = DatasetCatalog.get("sd_toy")
    assert len(dicts) == toy_spec["num_images"]
    assert all(d["sem_seg_file_name"] is None for d in dicts)
    assert (dicts[0]["height"], dicts[0]["width"]) == toy_spec["size"]
    meta = MetadataCatalog.get("sd_toy")
    assert meta.image_root == str(toy_root / "stable_diffusion" / "toy" / "images")
    assert meta.stuff_classes == list(CITYSCAPES_CLASSES) and meta.sem_seg_root is None

    with pytest.raises(DatasetNotFoundError, match="stable_diffusion/sd_absent/images"):
        DatasetCatalog.get("sd_absent")
    with pytest.raises(UnknownDatasetError):
        DatasetCatalog.get("sd_../gta")

    other = tmp_path / "stable_diffusion" / "toy" / "images"
    other.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 16, 3), dtype=np.uint8)).save(other / "a.png")
    register_all_datasets(tmp_path)  # re-rooting forgets sets resolved under the old root
    assert [d["image_id"] for d in DatasetCatalog.get("sd_toy")] == ["a"]
    register_all_datasets(toy_root)
    assert len(DatasetCatalog.get("sd_toy")) == toy_spec["num_images"]


def _generated_images(folder: Path, names: list[str]) -> None:
    (folder / "images").mkdir(parents=True)
    for name in names:
        Image.fromarray(np.zeros((8, 16, 3), dtype=np.uint8)).save(folder / "images" / name)


def test_generated_set_names_follow_the_original_rule(tmp_path: Path) -> None:
    """Folder F of stable_diffusion/ is dataset "sd_" + F.replace("sd_", "") (original bac4305)."""
    sets = tmp_path / "stable_diffusion"
    _generated_images(sets / "sd_llama70b_v2", ["im_0_p0.png"])
    _generated_images(sets / "plain", ["im_0_p0.png", "im_1_p1.png"])
    _generated_images(sets / "a_sd_b", ["im_0_p0.png"])
    register_all_datasets(tmp_path)
    assert DatasetCatalog.get("sd_llama70b_v2")[0]["file_name"] == str(
        sets / "sd_llama70b_v2" / "images" / "im_0_p0.png"
    )
    assert len(DatasetCatalog.get("sd_plain")) == 2
    assert DatasetCatalog.get("sd_a_b")[0]["file_name"].startswith(str(sets / "a_sd_b"))
    for not_a_name in ("sd_sd_llama70b_v2", "sd_a_sd_b", "sd_"):
        assert not_a_name not in DatasetCatalog

    _generated_images(sets / "llama70b_v2", ["im_0_p0.png"])  # gives sd_llama70b_v2 too
    register_all_datasets(tmp_path / "elsewhere")
    register_all_datasets(tmp_path)
    with pytest.raises(ValueError, match="sd_llama70b_v2.*rename"):
        DatasetCatalog.get("sd_llama70b_v2")


def test_generated_set_reads_png_only_and_ignores_labels(tmp_path: Path) -> None:
    folder = tmp_path / "stable_diffusion" / "sd_x"
    _generated_images(
        folder, ["im_1_p1.png", "im_0_p0.png", "im_2_p2.jpg", ".im_3_p0.png.a.tmp.png"]
    )
    (folder / "labels").mkdir()
    label = np.zeros((8, 16), dtype=np.uint8)
    Image.fromarray(label).save(folder / "labels" / "im_0_p0_labelTrainIds.png")
    register_all_datasets(tmp_path)
    dicts = DatasetCatalog.get("sd_x")
    assert [d["image_id"] for d in dicts] == ["im_0_p0", "im_1_p1"]
    # still unlabelled: joint training pseudo-labels every generated image, as the original
    assert all(d["sem_seg_file_name"] is None for d in dicts)
    assert MetadataCatalog.get("sd_x").sem_seg_root is None


def test_generated_set_follows_the_originals_train_dict(tmp_path: Path) -> None:
    folder = tmp_path / "stable_diffusion" / "sd_x"
    _generated_images(folder, ["im_0_p0.png", "im_1_p1.png", "im_2_p2.png"])
    listed = [
        {"file_name": f"datasets/stable_diffusion/sd_x/images/{n}", "image_id": f"generated_{i}"}
        for i, n in enumerate(["im_2_p2.png", "im_0_p0.png"], start=1)
    ]
    (folder / "train_dict.json").write_text(json.dumps(listed))
    register_all_datasets(tmp_path)
    dicts = DatasetCatalog.get("sd_x")
    assert [Path(d["file_name"]) for d in dicts] == [
        folder / "images" / "im_2_p2.png",
        folder / "images" / "im_0_p0.png",
    ]
    (folder / "images" / "im_0_p0.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="train_dict.json lists 1 image.*im_0_p0.png"):
        DatasetCatalog.get("sd_x")


def test_paired_layout_keeps_sub_folders_and_strips_suffixes() -> None:
    nested = PairedLayout(
        Path("cs/leftImg8bit/val"),
        Path("cs/gtFine/val"),
        label_suffix="_gtFine_labelTrainIds.png",
        image_suffix="_leftImg8bit",
    )
    image = Path("cs/leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png")
    assert nested.image_id(image) == "lindau_000001_000019"
    assert nested.label_of(image) == Path(
        "cs/gtFine/val/lindau/lindau_000001_000019_gtFine_labelTrainIds.png"
    )
    flat = PairedLayout(Path("bdd/images"), Path("bdd/masks"), label_suffix=".png")
    assert flat.image_id(Path("bdd/images/ab-cd.jpg")) == "ab-cd"
    assert flat.label_of(Path("bdd/images/ab-cd.jpg")) == Path("bdd/masks/ab-cd.png")


def test_gta5_leaves_out_the_original_frames(toy_root: Path, tmp_path: Path) -> None:
    """The original's GTA5 list (datasets/gta_list/train_dict.json of yasserben/CLOUDS) holds
    24,904 of the 24,966 frames: 15188, 17705 and 20801-20860 are not in it."""
    from clouds.data.datasets.register_gta5 import GTA5_LEFT_OUT

    assert len(GTA5_LEFT_OUT) == 24966 - 24904
    assert {"15188", "17705", "20801", "20860"} <= GTA5_LEFT_OUT and "20861" not in GTA5_LEFT_OUT
    shutil.copytree(toy_root / "gta", tmp_path / "gta")
    for frame in ("15188", "20830", "20861"):
        for sub, suffix in (("images", ".png"), ("labels", "_labelTrainIds.png")):
            shutil.copy(
                tmp_path / "gta" / sub / f"00001{suffix}",
                tmp_path / "gta" / sub / f"{frame}{suffix}",
            )
    register_all_datasets(tmp_path)
    ids = [d["image_id"] for d in DatasetCatalog.get("gta5")]
    assert ids == ["00001", "00002", "00003", "20861"]
    all_ids = [d["image_id"] for d in DatasetCatalog.get("gta5_all")]
    assert all_ids == ["00001", "00002", "00003", "15188", "20830", "20861"]


def test_class_names_registers_the_builtin_datasets_when_nothing_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetadataCatalog, "_metadata", {})
    monkeypatch.setattr(DatasetCatalog, "_loaders", {})
    monkeypatch.setattr(DatasetCatalog, "_resolvers", [])
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert class_names("gta5") == list(CITYSCAPES_CLASSES)
    assert "acdc_fog_val" in DatasetCatalog
    assert MetadataCatalog.get("gta5").image_root.startswith(str(tmp_path))
    with pytest.raises(UnknownDatasetError, match="'not_a_dataset' has no 'stuff_classes'"):
        class_names("not_a_dataset")


def test_dgvfm_sets_read_the_original_layouts(tmp_path: Path) -> None:
    from clouds.data.conversion import GTA_CONVERSION
    from clouds.data.conversion.mapillary_dgvfm import convert_mapillary_dgvfm
    from clouds.data.datasets.register_dgvfm import register_dgvfm_datasets
    from clouds.data.toy import make_toy_datasets
    from clouds.data.toy.dgvfm_layout import add_dgvfm_layouts

    root = add_dgvfm_layouts(make_toy_datasets(tmp_path, num_images=2, size=(32, 64)))
    GTA_CONVERSION.convert(root)
    mapillary = root / "mapillary"
    convert_mapillary_dgvfm(mapillary, mapillary / "cityscapes_trainIdLabel")
    register_dgvfm_datasets(root)
    bdd = DatasetCatalog.get("dg_bdd100k_val")
    assert len(bdd) == 2 and bdd[0]["sem_seg_file_name"].endswith("_train_id.png")
    assert "/bdd100k/labels/val/" in bdd[0]["sem_seg_file_name"]
    label = DatasetCatalog.get("dg_mapillary_val")[0]["sem_seg_file_name"]
    assert "cityscapes_trainIdLabel/val/label/" in label
    assert len(DatasetCatalog.get("dg_gta_train")) == 2
