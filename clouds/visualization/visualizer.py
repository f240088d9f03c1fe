"""Colour label maps, overlay them on images and draw legends of the classes present.

Class names and colours come from dataset metadata (``stuff_classes``, ``stuff_colors``).
Open-vocabulary class lists may be longer than the colour list: the missing colours are drawn
from a fixed, well-spread palette so the same class index always gets the same colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "class_colors",
    "colorize",
    "colors_for_names",
    "legend",
    "overlay",
    "present_classes",
]

_GOLDEN_RATIO = 0.618033988749895


def class_colors(metadata: Any, num_classes: int | None = None) -> np.ndarray:
    """(K, 3) uint8 RGB colours of the classes of ``metadata``.

    Args:
        metadata: anything with ``stuff_classes`` and optionally ``stuff_colors``
            (a clouds Metadata or a mapping).
        num_classes: K; default ``len(stuff_classes)``. Classes past the metadata's colours
            get generated colours (deterministic: depend only on the class index).
    """
    classes = metadata.get("stuff_classes")
    given = metadata.get("stuff_colors")
    colors = [] if given is None else [tuple(int(c) for c in color) for color in given]
    k = len(classes or []) if num_classes is None else num_classes
    palette = np.zeros((k, 3), dtype=np.uint8)
    for index in range(k):
        palette[index] = colors[index] if index < len(colors) else _generated_color(index)
    return palette


def colors_for_names(names: Sequence[str], reference: Any) -> np.ndarray:
    """(len(names), 3) uint8 colours for a free class list (open vocabulary).

    A name that ``reference`` metadata knows keeps its colour there; other names get generated
    colours (by their position in ``names``).
    """
    known = dict(zip(reference.get("stuff_classes") or [], class_colors(reference).tolist()))
    palette = np.zeros((len(names), 3), dtype=np.uint8)
    for index, name in enumerate(names):
        palette[index] = known.get(name, _generated_color(index))
    return palette


def _generated_color(index: int) -> tuple[int, int, int]:
    hue = (index * _GOLDEN_RATIO) % 1.0
    value = 0.95 if index % 2 == 0 else 0.7
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, value)
    return round(255 * r), round(255 * g), round(255 * b)


def colorize(
    label: np.ndarray, colors: np.ndarray, ignore_color: Sequence[int] = (0, 0, 0)
) -> np.ndarray:
    """Colour a label map.

    Args:
        label: (H, W) integer class ids; ids outside [0, K) (e.g. 255) are "ignore".
        colors: (K, 3) uint8 RGB colours.
        ignore_color: RGB of ignored pixels.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"colorize expects an (H, W) label map, got shape {label.shape}")
    colors = np.asarray(colors, dtype=np.uint8)
    lut = np.concatenate([colors, np.asarray([ignore_color], dtype=np.uint8)])
    index = np.where((label >= 0) & (label < len(colors)), label, len(colors)).astype(np.int64)
    return lut[index]


def overlay(
    image: np.ndarray, label: np.ndarray, colors: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Blend the colours of ``label`` over ``image``; ignored pixels keep the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        label: (H, W) class ids (ids outside [0, K) are left uncoloured).
        colors: (K, 3) uint8 RGB colours.
        alpha: weight of the label colour, in [0, 1].

    Returns:
        (H, W, 3) uint8: ``round((1 - alpha) * image + alpha * colour)`` on labelled pixels.
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != label.shape:
        raise ValueError(
            f"overlay expects an (H, W, 3) image and an (H, W) label of the same size, got "
            f"{image.shape} and {label.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colorize(label, colors).astype(
        np.float32
    )
    out = np.rint(blended).clip(0, 255).astype(np.uint8)
    labelled = (label >= 0) & (label < len(colors))
    return np.where(labelled[..., None], out, image.astype(np.uint8))


def present_classes(label: np.ndarray, num_classes: int) -> list[int]:
    """Sorted class ids in [0, num_classes) that occur in the (H, W) ``label``."""
    values = np.unique(np.asarray(label))
    return [int(v) for v in values if 0 <= v < num_classes]


def legend(
    class_names: Sequence[str],
    colors: np.ndarray,
    class_ids: Sequence[int] | None = None,
    *,
    font_size: int = 14,
) -> np.ndarray:
    """Draw a legend: one row per class, a colour swatch and the class name.

    Args:
        class_names: K names.
        colors: (K, 3) uint8 RGB colours.
        class_ids: the classes to list (e.g. ``present_classes(pred, K)``); default all.
        font_size: text height in pixels.

    Returns:
        (H, W, 3) uint8 RGB image on a white background; H grows with the number of rows.
    """
    ids = list(range(len(class_names))) if class_ids is None else list(class_ids)
    for class_id in ids:
        if not 0 <= class_id < min(len(class_names), len(colors)):
            raise ValueError(
                f"class id {class_id} has no name/colour ({len(class_names)} names, "
                f"{len(colors)} colours)"
            )
    font = ImageFont.load_default(size=font_size)
    pad, row = 6, font_size + 8
    swatch = row - 4
    text_width = max((int(font.getlength(class_names[i])) for i in ids), default=0)
    width = pad * 3 + swatch + max(text_width, 40)
    height = pad * 2 + row * max(len(ids), 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if not ids:
        draw.text((pad, pad), "(none)", fill=(0, 0, 0), font=font)
    for position, class_id in enumerate(ids):
        top = pad + position * row
        color = tuple(int(c) for c in colors[class_id])
        draw.rectangle(
            [pad, top + 2, pad + swatch - 1, top + 2 + swatch - 1], fill=color, outline=(0, 0, 0)
        )
        draw.text((pad * 2 + swatch, top + 2), class_names[class_id], fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
