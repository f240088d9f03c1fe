"""What ``demo/demo.py`` writes: colour predictions, overlays and legends of images and videos.

For an image ``<stem>.<ext>``: ``<stem>_pred.png`` (colour prediction), ``<stem>_overlay.png``
(colours blended over the image) and ``<stem>_legend.png`` (the classes present); an image found
in a subfolder of an input folder keeps that subfolder (``city/<stem>_pred.png``). For a video:
``<stem>_overlay.mp4`` (every frame overlaid, same frame rate) and ``<stem>_legend.png`` (the
classes present in any frame). Videos are read and written with PyAV.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from tqdm import tqdm

from clouds.utils.io import atomic_path, write_png_atomic
from clouds.visualization.visualizer import colorize, legend, overlay, present_classes

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClassStyle",
    "DemoInput",
    "collect_inputs",
    "image_output_paths",
    "read_video_frames",
    "save_image_outputs",
    "write_video_overlay",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ScoreFn = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class ClassStyle:
    """Class names and (K, 3) uint8 colours, plus the overlay opacity."""

    class_names: Sequence[str]
    colors: np.ndarray
    alpha: float = 0.5


@dataclass(frozen=True)
class DemoInput:
    """An image to predict and the name of its outputs: its path relative to the folder (or the
    fixed part of the glob pattern) it was found under, without the suffix ("city/frame" for
    ``val/city/frame.png`` found under ``val``; the bare stem for a file named directly)."""

    path: Path
    name: str


def _glob_root(pattern: str) -> Path:
    """The leading folders of a glob pattern, before its first wildcard part."""
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts))
    return Path(*fixed[: len(parts) - 1])


def _output_name(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` (posix, without suffix); its stem when ``root`` is None."""
    if root is None:
        return path.stem
    return path.relative_to(root).with_suffix("").as_posix()


def collect_inputs(specs: Sequence[str], exclude: Path | None = None) -> list[DemoInput]:
    """Image files named by ``specs``: files, folders (every image inside, subfolders included,
    sorted) or glob patterns, leaving out the demo's own outputs
    (``<name>_{pred,overlay,legend}.png``) inside the output folder ``exclude``, so that a run
    never reads back what an earlier one wrote. Images found in subfolders keep their relative
    folder in their output name, so ``val/frankfurt/a.png`` and ``val/lindau/a.png`` do not clash.

    Raises:
        FileNotFoundError: naming a spec that matches no image.
        ValueError: when two inputs would get the same output name.
    """
    found: list[DemoInput] = []
    for spec in specs:
        path = Path(os.path.expanduser(spec))
        if path.is_dir():
            root: Path | None = path
            matches = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
        elif path.is_file():
            root, matches = None, [path]
        else:
            root = _glob_root(str(path))
            matches = sorted(
                Path(p)
                for p in glob.glob(str(path), recursive=True)
                if Path(p).suffix.lower() in IMAGE_EXTENSIONS and Path(p).is_file()
            )
        if exclude is not None:
            matches = [p for p in matches if not _is_output(p, exclude)]
        if not matches:
            outside = f" (besides the outputs in {exclude})" if exclude is not None else ""
            raise FileNotFoundError(
                f"--input {spec!r} matches no image file{outside} ({IMAGE_EXTENSIONS})"
            )
        found.extend(DemoInput(p.resolve(), _output_name(p, root)) for p in matches)
    unique: dict[Path, DemoInput] = {}
    for item in found:
        unique.setdefault(item.path, item)
    by_name: dict[str, Path] = {}
    for item in unique.values():
        if item.name in by_name:
            raise ValueError(
                f"Inputs {by_name[item.name]} and {item.path} share the output name "
                f"{item.name!r}; their outputs would overwrite each other: run them separately"
            )
        by_name[item.name] = item.path
    return list(unique.values())


def _is_output(path: Path, output_dir: Path) -> bool:
    """Whether ``path`` is a file that :func:`save_image_outputs` writes into ``output_dir``
    (or one of its subfolders)."""
    kinds = image_output_paths(output_dir, "").keys()
    in_output = output_dir.resolve() in path.resolve().parents
    return in_output and any(path.name.endswith(f"_{kind}.png") for kind in kinds)


def image_output_paths(output_dir: Path, name: str) -> dict[str, Path]:
    """{"pred", "overlay", "legend"} -> the PNG paths written for an image whose output name
    is ``name`` (a stem, or a relative path without suffix: "city/frame")."""
    return {kind: output_dir / f"{name}_{kind}.png" for kind in ("pred", "overlay", "legend")}


def save_image_outputs(
    image: np.ndarray, pred: np.ndarray, output_dir: Path, name: str, style: ClassStyle
) -> dict[str, Path]:
    """Write the colour prediction, the overlay and the legend of one image.

    Args:
        image: (H, W, 3) uint8 RGB.
        pred: (H, W) predicted class ids.
    """
    paths = image_output_paths(output_dir, name)
    ids = present_classes(pred, len(style.class_names))
    write_png_atomic(colorize(pred, style.colors), paths["pred"])
    write_png_atomic(overlay(image, pred, style.colors, style.alpha), paths["overlay"])
    write_png_atomic(legend(style.class_names, style.colors, ids), paths["legend"])
    return paths


def read_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Frames of a video as (H, W, 3) uint8 RGB arrays, in order."""
    with open(path, "rb") as file, av.open(file) as container:  # a path, never a protocol
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def _video_info(path: Path) -> tuple[Fraction, int]:
    """(frame rate, frame count or 0 when the container does not say) of a video."""
    try:
        with open(path, "rb") as file, av.open(file) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            return Fraction(rate), int(stream.frames or 0)
    except av.error.FFmpegError as e:
        raise ValueError(f"Cannot read video {path}: {e}") from e


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height / width by one edge row / column (yuv420p needs even sizes)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def write_video_overlay(
    predict: ScoreFn, video: Path, output_dir: Path, style: ClassStyle
) -> dict[str, Path]:
    """Predict every frame of ``video``; write ``<stem>_overlay.mp4`` and ``<stem>_legend.png``.

    Args:
        predict: image (H, W, 3) uint8 RGB -> (K, H, W) scores.

    Returns:
        {"video": overlay video path, "legend": legend path}.
    """
    rate, total = _video_info(video)
    out_path = output_dir / f"{video.stem}_overlay.mp4"
    legend_path = output_dir / f"{video.stem}_legend.png"
    seen: set[int] = set()
    with atomic_path(out_path) as tmp, av.open(tmp, mode="w", format="mp4") as container:
        stream = None
        for frame in tqdm(read_video_frames(video), total=total or None, desc=video.name):
            pred = predict(frame).argmax(dim=0).numpy()
            seen.update(present_classes(pred, len(style.class_names)))
            blended = _even(overlay(frame, pred, style.colors, style.alpha))
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.height, stream.width = blended.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(blended, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"Video {video} has no frames")
        for packet in stream.encode():
            container.mux(packet)
    write_png_atomic(legend(style.class_names, style.colors, sorted(seen)), legend_path)
    return {"video": out_path, "legend": legend_path}
