"""The one reader of weight files: every bad file is one line naming the key, the file, what was
seen and what to do, found from the header alone; torch's unsafe-loading advice never shows."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from clouds.cli_errors import UserFileError, user_error_code
from clouds.utils.weights_file import (
    OPEN_CLIP_FORMATS,
    TORCH,
    PickledObjectsError,
    WeightsFileError,
    check_weights_file,
    load_safetensors_weights,
    load_torch_weights,
    pipeline_weight_files,
    reading_weights,
)

KEY = "MODEL.VFM.WEIGHTS"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A whole file of each format, written as the real tools write them."""
    torch.save({"w": torch.arange(500.0)}, tmp_path / "zip.pth")
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(4.0)}, legacy, _use_new_zipfile_serialization=False)
    save_file({"w": torch.arange(500.0)}, tmp_path / "model.safetensors")
    return {
        "zip": tmp_path / "zip.pth",
        "legacy": legacy,
        "safetensors": tmp_path / "model.safetensors",
    }


def _cut(path: Path, keep: float) -> Path:
    out = path.with_name(f"cut_{path.name}")
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def test_whole_files_pass_with_their_format(files: dict[str, Path]) -> None:
    formats = {name: check_weights_file(path, key=KEY).format for name, path in files.items()}
    assert formats == {"zip": "torch zip", "legacy": "torch legacy", "safetensors": "safetensors"}
    assert load_torch_weights(files["legacy"], key=KEY)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert load_safetensors_weights(files["safetensors"], key=KEY)["w"].shape == (500,)


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda f, d: _cut(f["zip"], 0.5), "is truncated or corrupt: the zip directory"),
        (lambda f, d: _cut(f["safetensors"], 0.6), "is truncated: its header describes 2.1 kB"),
        (lambda f, d: _cut(f["legacy"], 0.02), "is truncated (7 bytes seen)"),
        (lambda f, d: _write(d, b""), "is empty (0 bytes; an interrupted download?)"),
        (lambda f, d: _write(d, b"<!DOCTYPE html><html>sign in"), "is a web page (28 bytes)"),
        (
            lambda f, d: _write(d, b"version https://git-lfs.github.com/spec/v1\n"),
            "Git LFS pointer",
        ),
        (lambda f, d: _write(d, pickle.dumps({"w": 1}, protocol=4)), "plain Python pickle"),
        (lambda f, d: _write(d, b"\x1f\x8b\x08\x00" + bytes(40)), "compressed archive"),
        (lambda f, d: _write(d, b"hello, not weights"), "not a weights file of a known format"),
    ],
    ids=["zip-cut", "safetensors-cut", "legacy-cut", "empty", "html", "lfs", "pickle", "gz", "txt"],
)
def test_bad_files_are_one_line_naming_key_and_file(files, tmp_path, make, expected) -> None:
    path = make(files, tmp_path)
    with pytest.raises(WeightsFileError) as info:
        check_weights_file(path, key=KEY, todo="Download X again")
    message = str(info.value)
    assert message.startswith(f"{KEY} {path} ") and expected in message
    assert message.endswith("Download X again.") and "\n" not in message
    assert user_error_code(info.value) == 1


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "weights.pth"
    path.write_bytes(data)
    return path


def test_wrong_format_missing_file_and_folder(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(
        WeightsFileError, match=r"is a \.safetensors file \(2\.1 kB\); K reads a Py"
    ):
        check_weights_file(files["safetensors"], key="K", formats=TORCH)
    with pytest.raises(UserFileError, match=f"K file not found: {tmp_path / 'no.pt'}"):
        check_weights_file(tmp_path / "no.pt", key="K")
    with pytest.raises(WeightsFileError, match="is a folder; expected"):
        check_weights_file(tmp_path, key="K")
    numpy_zip = tmp_path / "w.npz"
    import numpy as np

    np.savez(numpy_zip, w=np.zeros(3))
    assert check_weights_file(numpy_zip, key="K", formats=OPEN_CLIP_FORMATS).format == "numpy zip"
    with pytest.raises(WeightsFileError, match="NumPy .npz archive"):
        check_weights_file(numpy_zip, key="K")


def test_pickled_objects_are_refused_without_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"w": torch.zeros(2), "path": Path("x")}, path)
    with pytest.raises(PickledObjectsError) as info:
        load_torch_weights(path, key="MODEL.WEIGHTS")
    assert info.value.refused.endswith("PosixPath") and "weights_only" not in str(info.value)


def test_a_failure_inside_a_third_party_reader_names_the_key(files: dict[str, Path]) -> None:
    """A file that passes the header check but fails to read (corrupt inside) is named too."""
    data = bytearray(files["zip"].read_bytes())
    start = data.index(b"data.pkl") + 40  # inside the pickle, the zip directory intact
    data[start : start + 8] = b"\xff" * 8
    corrupt = files["zip"].with_name("corrupt.pth")
    corrupt.write_bytes(bytes(data))
    check_weights_file(corrupt, key=KEY)  # the header alone cannot tell
    with pytest.raises(WeightsFileError) as info:
        load_torch_weights(corrupt, key=KEY)
    assert str(info.value).startswith(f"{KEY} {corrupt} is truncated or corrupt (")
    assert "weights_only" not in str(info.value)
    reading = reading_weights(corrupt, key=KEY)
    with (
        pytest.raises(WeightsFileError, match=f"^{KEY} {corrupt} is truncated or corrupt"),
        reading,
    ):
        torch.load(corrupt, weights_only=True)
    with pytest.raises(ZeroDivisionError), reading_weights(files["zip"], key=KEY):
        raise ZeroDivisionError  # other errors are not the file's
    legacy_cut = _cut(files["legacy"], 0.6)  # the legacy format has no directory to check
    with pytest.raises(WeightsFileError, match=f"^{KEY} {legacy_cut} is truncated or corrupt"):
        load_torch_weights(legacy_cut, key=KEY)


def test_pipeline_folder_weight_files_are_checked(tmp_path: Path, files) -> None:
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "X", "unet": ["diffusers", "U"]}')
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(files["safetensors"].read_bytes())
    (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")  # unread
    assert pipeline_weight_files(folder, key="--model-id") == [str(unet)]
    unet.write_bytes(files["safetensors"].read_bytes()[:-300])
    with pytest.raises(WeightsFileError, match=f"^--model-id {unet} is truncated"):
        pipeline_weight_files(folder, key="--model-id")
    (folder / "model_index.json").unlink()
    with pytest.raises(UserFileError, match="has no model_index.json"):
        pipeline_weight_files(folder, key="--model-id")
