"""tools/make_submission.py on toy test splits laid out as the real ones (no labels): the zips
follow the servers' rules, checked here rule by rule, independently of the tool's own check."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clouds.data.datasets.cityscapes_meta import train_id_to_label_id_lut
from clouds.evaluation.submission import ACDC, CITYSCAPES, SubmissionZip, check_submission
from clouds.utils.io import write_png_atomic
from tests.tools._tiny_eval import tiny_opts, tiny_weights, tool

# (relative path under the datasets root, (H, W)); sizes differ to check "size = input size"
CITYSCAPES_TEST = [
    ("cityscapes/leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png", (40, 64)),
    ("cityscapes/leftImg8bit/test/bielefeld/bielefeld_000321_000019_leftImg8bit.png", (40, 64)),
]
ACDC_TEST = [
    ("acdc/rgb_anon/fog/test/GOPR0475/GOPR0475_frame_000041_rgb_anon.png", (36, 64)),
    ("acdc/rgb_anon/night/test/GOPR0355/GOPR0355_frame_000138_rgb_anon.png", (36, 64)),
    ("acdc/rgb_anon/night/test/GP010397/GP010397_frame_000001_rgb_anon.png", (36, 64)),
]
CITYSCAPES_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


@pytest.fixture(scope="module")
def test_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A datasets root holding only the test splits, in the original folder layouts."""
    root = tmp_path_factory.mktemp("test_splits")
    rng = np.random.default_rng(0)
    for relative, size in CITYSCAPES_TEST + ACDC_TEST:
        write_png_atomic(rng.integers(0, 256, (*size, 3), dtype=np.uint8), root / relative)
    return root


def _entries(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        out = {}
        for info in archive.infolist():
            with Image.open(io.BytesIO(archive.read(info))) as image:
                assert image.format == "PNG" and image.mode == "L", info.filename
                out[info.filename] = np.asarray(image)
    return out


def test_zips_follow_the_server_rules(
    test_splits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(test_splits))
    weights = tiny_weights(tmp_path / "tiny.ckpt", tiny_opts(40, 64))
    out = tmp_path / "submission"
    argv = ["--output-dir", str(out), "--dataset", "cityscapes_test"]
    argv += ["--dataset", "acdc_fog_test", "--dataset", "acdc_night_test"]
    torch.manual_seed(0)
    assert tool("make_submission").main(argv + tiny_opts(40, 64, **{"MODEL.WEIGHTS": weights})) == 0
    assert sorted(p.name for p in out.iterdir()) == ["acdc_test.zip", "cityscapes_test.zip"]

    cityscapes = _entries(out / "cityscapes_test.zip")
    assert sorted(cityscapes) == ["berlin_000000_000019.png", "bielefeld_000321_000019.png"]
    acdc = _entries(out / "acdc_test.zip")
    assert sorted(acdc) == sorted(Path(p).name for p, _ in ACDC_TEST)  # flat, input names
    sizes = {Path(p).name: s for p, s in ACDC_TEST}
    for name, array in acdc.items():
        assert array.dtype == np.uint8 and array.shape == sizes[name]
        assert set(np.unique(array)) <= set(range(19))
    for array in cityscapes.values():
        assert array.shape == (40, 64) and set(np.unique(array)) <= CITYSCAPES_IDS
    # the random model predicts several classes: label IDs, not train IDs
    assert len(set(np.unique(np.concatenate([a.ravel() for a in cityscapes.values()])))) > 1


def test_cityscapes_label_ids_and_acdc_train_ids(tmp_path: Path) -> None:
    train_ids = np.arange(19, dtype=np.int64).reshape(1, 19).repeat(2, axis=0)
    with SubmissionZip(tmp_path / "cs.zip", CITYSCAPES) as archive:
        archive.add("x/aachen_000001_000019_leftImg8bit.png", train_ids)
    with SubmissionZip(tmp_path / "acdc.zip", ACDC) as archive:
        archive.add("x/GOPR0475_frame_000041_rgb_anon.png", train_ids)
    cs = _entries(tmp_path / "cs.zip")["aachen_000001_000019.png"]
    np.testing.assert_array_equal(cs[0], train_id_to_label_id_lut()[:19])
    np.testing.assert_array_equal(
        _entries(tmp_path / "acdc.zip")["GOPR0475_frame_000041_rgb_anon.png"][0], np.arange(19)
    )


def test_the_check_names_every_broken_rule(tmp_path: Path) -> None:
    images = ["a/GOPR0475_frame_000041_rgb_anon.png", "a/GOPR0475_frame_000042_rgb_anon.png"]
    sizes = {images[0]: (4, 19), images[1]: (4, 19)}
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        buffer = io.BytesIO()
        Image.fromarray(np.full((4, 19), 200, dtype=np.uint8), mode="L").save(buffer, "PNG")
        archive.writestr("GOPR0475_frame_000041_rgb_anon.png", buffer.getvalue())
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((4, 19, 3), dtype=np.uint8)).save(buffer, "PNG")
        archive.writestr("extra.png", buffer.getvalue())
    with pytest.raises(ValueError) as error:
        check_submission(path, ACDC, images, sizes)
    message = str(error.value)
    assert "missing predictions: GOPR0475_frame_000042_rgb_anon.png" in message
    assert "unexpected files: extra.png" in message
    assert "values [200] outside the allowed IDs" in message
    with pytest.raises(ValueError, match=r"\{city\}_\{seq:06d\}"):
        CITYSCAPES.file_name("berlin_19_leftImg8bit.png")
