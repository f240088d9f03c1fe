"""Resizes and crops of mmsegmentation / mmcv, on (H, W[, C]) numpy arrays.

Sizes follow mmcv exactly (``int(x + 0.5)`` rounding, the scale factor of ``rescale_size``);
images are resized with OpenCV's bilinear filter and labels with nearest neighbour, as mmcv's
``imresize`` does with its default cv2 backend. Random draws come from NumPy's global generator,
with mmseg's calls in mmseg's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "keep_ratio_size",
    "random_crop_box",
    "resize_image",
    "resize_label",
    "shortest_edge_scale",
    "shortest_edge_size",
]


def keep_ratio_size(height: int, width: int, scale: Sequence[int]) -> tuple[int, int]:
    """(h, w) of mmcv's ``Resize(scale, keep_ratio=True)``: the largest size that fits the long
    side into ``max(scale)`` and the short side into ``min(scale)``."""
    if len(scale) != 2 or min(scale) <= 0:
        raise ValueError(f"A resize scale must be two positive sizes (W, H), got {scale}")
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def shortest_edge_scale(height: int, width: int, short: int, max_long: int) -> tuple[int, int]:
    """The (W, H) scale mmseg's ``ResizeShortestEdge(short, max_size=max_long)`` hands to its
    keep-ratio resize: short side ``short``, shrunk so the long side is at most ``max_long``."""
    size = float(short)
    scale = size / min(height, width)
    new_h, new_w = (size, scale * width) if height < width else (scale * height, size)
    if max(new_h, new_w) > max_long:
        shrink = max_long / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_w + 0.5), int(new_h + 0.5)


def shortest_edge_size(height: int, width: int, short: int, max_long: int) -> tuple[int, int]:
    """(h, w) of mmseg's ``ResizeShortestEdge``: :func:`shortest_edge_scale`, then the
    keep-ratio resize's own rounding."""
    return keep_ratio_size(height, width, shortest_edge_scale(height, width, short, max_long))


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 -> (h, w, C) with OpenCV's bilinear filter (no antialiasing)."""
    if tuple(image.shape[:2]) == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) label map -> (h, w) with OpenCV's nearest neighbour."""
    if tuple(label.shape[:2]) == tuple(size):
        return label
    return cv2.resize(label, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _draw_box(height: int, width: int, crop: tuple[int, int]) -> tuple[int, int, int, int]:
    top = int(np.random.randint(0, max(height - crop[0], 0) + 1))
    left = int(np.random.randint(0, max(width - crop[1], 0) + 1))
    return top, min(top + crop[0], height), left, min(left + crop[1], width)


def random_crop_box(
    label: np.ndarray,
    crop: tuple[int, int],
    *,
    image_hw: tuple[int, int] | None = None,
    cat_max_ratio: float = 1.0,
    ignore_label: int = 255,
    tries: int = 10,
) -> tuple[int, int, int, int]:
    """A random crop box (y0, y1, x0, x1) as mmseg's ``RandomCrop``.

    The box is ``crop`` (h, w) inside the image (``image_hw``, default the label's size),
    clipped when the image is smaller. With ``cat_max_ratio < 1`` a box is redrawn (up to
    ``tries`` times) while it holds fewer than two labelled classes or one class covers
    ``cat_max_ratio`` or more of its labelled pixels; the last redraw is kept unchecked, as mmseg
    does.
    """
    height, width = image_hw or label.shape[:2]
    box = _draw_box(height, width, crop)
    if cat_max_ratio < 1.0:
        for _ in range(tries):
            window = label[box[0] : box[1], box[2] : box[3]]
            counts = np.bincount(window[window != ignore_label].ravel().astype(np.int64))
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            box = _draw_box(height, width, crop)
    return box
