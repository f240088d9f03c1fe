"""Demo input edges: a video argument is a file path (never an FFmpeg protocol such as
``concat:``), and the output folder's files are never taken as inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from clouds.visualization.demo_outputs import collect_inputs, read_video_frames


def test_video_argument_is_a_file_path_not_a_protocol(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with av.open("written.mov", mode="w") as container:
        stream = container.add_stream("png", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "rgb24"
        for value in (0, 255):
            frame = np.full((16, 32, 3), value, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    name = "concat:clip.mov"  # FFmpeg would read "clip.mov" through its concat protocol
    Path("written.mov").rename(name)
    Path("clip.mov").write_bytes(b"not the video that was asked for")
    frames = list(read_video_frames(Path(name)))
    assert len(frames) == 2 and frames[0].shape == (16, 32, 3)
    assert frames[0].mean() < 30 < 225 < frames[1].mean()


def test_outputs_are_never_read_back_as_inputs(tmp_path: Path) -> None:
    out = tmp_path  # images and outputs in one folder
    for name in ("a.png", "a_overlay.png", "a_pred.png", "a_legend.png"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / name)
    (out / "city").mkdir()  # outputs of an image found in a subfolder
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "city" / "a_pred.png")
    found = collect_inputs([str(out), str(out / "*.png")], exclude=out)
    assert [(item.path, item.name) for item in found] == [(out.resolve() / "a.png", "a")]
    assert len(collect_inputs([str(out)])) == 5  # without an output folder, all are images
    with pytest.raises(FileNotFoundError, match="besides the outputs in"):
        collect_inputs([str(out / "a_*.png")], exclude=out)


def test_folders_are_searched_recursively_keeping_subfolders(tmp_path: Path) -> None:
    for name in ("val/frankfurt/a.png", "val/lindau/a.JPG", "val/lindau/deep/b.png", "val/c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name, format="PNG")
    found = collect_inputs([str(tmp_path / "val"), str(tmp_path / "val/*/a.png")])
    names = {item.name: item.path.relative_to(tmp_path).as_posix() for item in found}
    assert names == {
        "frankfurt/a": "val/frankfurt/a.png",
        "lindau/a": "val/lindau/a.JPG",
        "lindau/deep/b": "val/lindau/deep/b.png",
    }
    with pytest.raises(ValueError, match="share the output name 'a'"):
        collect_inputs([str(tmp_path / "val/frankfurt"), str(tmp_path / "val/lindau")])
