"""colorize / overlay / legend: exact colours, ignore handling, open-vocabulary palettes."""

from __future__ import annotations

import numpy as np
import pytest

from clouds.data.catalog import Metadata
from clouds.visualization.visualizer import (
    class_colors,
    colorize,
    colors_for_names,
    legend,
    overlay,
    present_classes,
)

COLORS = np.array([[128, 64, 128], [70, 130, 180], [0, 0, 142]], dtype=np.uint8)
LABEL = np.array([[0, 1, 2], [2, 255, 0]])


def test_colorize_uses_class_colours_and_ignore_colour() -> None:
    rgb = colorize(LABEL, COLORS, ignore_color=(1, 2, 3))
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [128, 64, 128]
    assert rgb[0, 1].tolist() == [70, 130, 180]
    assert rgb[1, 0].tolist() == [0, 0, 142]
    assert rgb[1, 1].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="expects an \\(H, W\\) label"):
        colorize(np.zeros((2, 2, 1), dtype=np.int64), COLORS)


def test_overlay_blends_labelled_pixels_only() -> None:
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    out = overlay(image, LABEL, COLORS, alpha=0.25)
    # 0.75 * 100 + 0.25 * (128, 64, 128) = (107, 91, 107)
    assert out[0, 0].tolist() == [107, 91, 107]
    assert out[1, 1].tolist() == [100, 100, 100]  # ignore keeps the image
    assert np.array_equal(overlay(image, LABEL, COLORS, alpha=1.0)[0], colorize(LABEL, COLORS)[0])
    with pytest.raises(ValueError, match="same size"):
        overlay(image[:1], LABEL, COLORS)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, LABEL, COLORS, alpha=1.5)


def test_class_colors_extend_open_vocabulary_lists() -> None:
    meta = Metadata(stuff_classes=["road", "sky", "car", "giraffe", "tram"], stuff_colors=COLORS)
    palette = class_colors(meta)
    assert palette.shape == (5, 3)
    assert np.array_equal(palette[:3], COLORS)
    assert len({tuple(c) for c in palette.tolist()}) == 5  # generated colours are distinct
    assert np.array_equal(class_colors(meta), palette)  # deterministic
    no_colors = class_colors({"stuff_classes": ["a", "b"]})
    assert no_colors.shape == (2, 3)
    free = colors_for_names(["zebra", "car", "road"], meta)
    assert free[1].tolist() == [0, 0, 142] and free[2].tolist() == [128, 64, 128]
    assert free[0].tolist() not in COLORS.tolist()


def test_legend_lists_present_classes() -> None:
    names = ["road", "sky", "car"]
    assert present_classes(LABEL, 3) == [0, 1, 2]
    assert present_classes(np.array([[2, 255]]), 3) == [2]
    two = legend(names, COLORS, [0, 2])
    three = legend(names, COLORS)
    assert two.dtype == np.uint8 and two.ndim == 3
    assert three.shape[0] > two.shape[0]
    colours = {tuple(c) for c in two.reshape(-1, 3).tolist()}
    assert (128, 64, 128) in colours and (0, 0, 142) in colours
    assert (70, 130, 180) not in colours
    with pytest.raises(ValueError, match="class id 5"):
        legend(names, COLORS, [5])
