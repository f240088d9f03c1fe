"""Atomic writes and image / label reads with errors that name the file."""

from pathlib import Path

import numpy as np
import pytest

from clouds.utils.io import (
    ImageReadError,
    atomic_path,
    read_image,
    read_image_hw,
    read_label,
    write_png_atomic,
)


def test_atomic_path_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.png"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("crash while writing")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_write_and_read_back_rgb_and_16bit(tmp_path: Path) -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    write_png_atomic(rgb, tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", format="BGR"), rgb[:, :, ::-1])
    label16 = np.array([[0, 300], [65535, 7]], dtype=np.uint16)
    write_png_atomic(label16, tmp_path / "l.png")
    np.testing.assert_array_equal(read_label(tmp_path / "l.png"), label16)


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_image(corrupt)
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_label(corrupt)


def test_label_of_wrong_size_is_named(tmp_path: Path) -> None:
    write_png_atomic(np.zeros((4, 6), np.uint8), tmp_path / "lab.png")
    with pytest.raises(ImageReadError, match=r"lab\.png.*4x6.*5x6"):
        read_label(tmp_path / "lab.png", expected_hw=(5, 6))


def test_atomic_path_gives_normal_file_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "report.md") as tmp:
            Path(tmp).write_text("x")
    finally:
        os.umask(umask)
    # readable by others like any file the user creates (mkstemp would leave 0600)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_image_size_from_header_and_errors_name_the_file(tmp_path: Path) -> None:
    write_png_atomic(np.zeros((4, 7, 3), dtype=np.uint8), tmp_path / "a.png")
    assert read_image_hw(tmp_path / "a.png") == (4, 7)
    with pytest.raises(ImageReadError, match="Image file not found: .*nope.png"):
        read_image_hw(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="Cannot decode image .*bad.png"):
        read_image_hw(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="Cannot decode label map .*bad.png"):
        read_label(tmp_path / "bad.png")
