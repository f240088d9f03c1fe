"""Training augmentations of the original CLOUDS, with detectron2's semantics and random streams.

The image functions work on (H, W, 3) uint8 images and (H, W) integer label maps and take their
random numbers as arguments; the ``draw_*`` / ``sample_*`` helpers make the draws from the
generators the original's code uses, with the same calls, so that from the same generator states
a sample comes out as the original's:

- :func:`draw_uniform`: ``np.random.uniform(low, high)``, NumPy's global generator, as
  detectron2's ``ResizeScale`` (the scale), ``FixedSizeCrop`` (the offset fraction) and
  ``RandomFlip`` (flip when < 0.5) draw.
- :func:`sample_color_aug_ssd`: Python's global ``random``, as PointRend's
  ``ColorAugSSDTransform`` draws (``randrange(2)`` coins, ``uniform``, ``randint``), in its order.
- :func:`torch_uniform`: torch's global generator, for the extra draws of our own options only.

The operations:

- :func:`resize_scale_size`: detectron2's ``ResizeScale``: the image is fitted, aspect kept,
  inside the target box (``INPUT.INITIAL_HEIGHT/WIDTH``) scaled by a random factor.
- :func:`crop_origin`: detectron2's ``FixedSizeCrop``: one uniform draw ``u`` places the crop at
  ``round(u * max_offset)`` along both axes; images smaller than the crop are padded after it.
- :func:`color_aug_ssd`: detectron2's ``ColorAugSSDTransform`` (PointRend): brightness
  ``+U(-32, 32)``, then contrast ``xU(0.5, 1.5)`` before or after saturation ``xU(0.5, 1.5)``
  and hue ``+randint(-18, 18)`` (OpenCV units, mod 180), each applied with probability 0.5,
  on the BGR 0-255 image, truncated to uint8 after each step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

__all__ = [
    "ColorAugSSDParams",
    "color_aug_ssd",
    "crop_origin",
    "crop_pad",
    "draw_uniform",
    "hflip",
    "resize_image",
    "resize_label",
    "resize_scale_size",
    "sample_color_aug_ssd",
    "torch_uniform",
]


def draw_uniform(low: float = 0.0, high: float = 1.0) -> float:
    """One draw of U(low, high) from NumPy's global generator (``np.random.uniform``)."""
    return float(np.random.uniform(low, high))


def torch_uniform(low: float = 0.0, high: float = 1.0) -> float:
    """One draw of U(low, high) from torch's global generator."""
    return float(torch.empty((), dtype=torch.float64).uniform_(low, high))


def resize_scale_size(
    height: int, width: int, target: tuple[int, int], scale: float
) -> tuple[int, int]:
    """Output (h, w) of detectron2's ``ResizeScale`` for an ``height`` x ``width`` image.

    The image is scaled by ``min(target_h * scale / height, target_w * scale / width)`` (aspect
    kept, it fits inside the scaled target box) and the sizes rounded half to even.
    """
    target_scaled = np.multiply(target, scale)
    factor = np.minimum(target_scaled[0] / height, target_scaled[1] / width)
    out = np.round(np.multiply((height, width), factor)).astype(int)
    return int(out[0]), int(out[1])


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with PIL's bilinear filter (detectron2's resize)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.array(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) label map -> (h, w), nearest neighbour as ``F.interpolate(mode="nearest")``."""
    if label.shape[:2] == tuple(size):
        return label
    tensor = torch.tensor(label, dtype=torch.float64)[None, None]
    return F.interpolate(tensor, size=tuple(size), mode="nearest")[0, 0].numpy().astype(label.dtype)


def crop_origin(
    height: int, width: int, crop: tuple[int, int], fractions: tuple[float, float]
) -> tuple[int, int]:
    """(top, left) of a ``crop`` window: ``round(fraction * max(0, size - crop))`` per axis.

    detectron2's ``FixedSizeCrop`` passes the same uniform draw for both axes.
    """
    max_offset = np.maximum(np.subtract((height, width), crop), 0)
    offset = np.round(np.multiply(max_offset, fractions)).astype(int)
    return int(offset[0]), int(offset[1])


def crop_pad(
    array: np.ndarray, origin: tuple[int, int], crop: tuple[int, int], fill: int
) -> np.ndarray:
    """Cut ``crop`` (h, w) at ``origin`` (clipped at the border), then pad the bottom and right
    with ``fill`` up to ``crop`` (detectron2's ``FixedSizeCrop(pad=True)``)."""
    top, left = origin
    out = array[top : top + crop[0], left : left + crop[1]]
    pad_h, pad_w = crop[0] - out.shape[0], crop[1] - out.shape[1]
    if pad_h or pad_w:
        widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (out.ndim - 2)
        out = np.pad(out, widths, constant_values=fill)
    return np.ascontiguousarray(out)


def hflip(array: np.ndarray) -> np.ndarray:
    """Mirror left-right."""
    return np.ascontiguousarray(array[:, ::-1])


@dataclass(frozen=True)
class ColorAugSSDParams:
    """The random draws of one ``ColorAugSSDTransform`` call; ``None`` = step skipped."""

    brightness: float | None  # added to every channel
    contrast_first: bool  # contrast before saturation and hue (else after them)
    contrast: float | None  # multiplies every channel
    saturation: float | None  # multiplies HSV saturation
    hue: int | None  # added to HSV hue, OpenCV units (0-179), modulo 180


def sample_color_aug_ssd(
    *,
    brightness_delta: float = 32.0,
    contrast_range: tuple[float, float] = (0.5, 1.5),
    saturation_range: tuple[float, float] = (0.5, 1.5),
    hue_delta: int = 18,
) -> ColorAugSSDParams:
    """Draw the parameters of one call from Python's global ``random``, each step on with
    probability 0.5, in the order ``ColorAugSSDTransform.apply_image`` draws them: brightness
    (``randrange(2)``, then its value when on), the order coin, then contrast, saturation and
    hue (coin, value when on), contrast coming after hue when the order coin is 0.
    """

    def step(low: float, high: float) -> float | None:
        return random.uniform(low, high) if random.randrange(2) else None

    brightness = step(-brightness_delta, brightness_delta)
    contrast_first = bool(random.randrange(2))
    contrast = step(*contrast_range) if contrast_first else None
    saturation = step(*saturation_range)
    hue = random.randint(-hue_delta, hue_delta) if random.randrange(2) else None
    if not contrast_first:
        contrast = step(*contrast_range)
    return ColorAugSSDParams(brightness, contrast_first, contrast, saturation, hue)


def _convert(array: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    return np.clip(array.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def _saturation(bgr: np.ndarray, alpha: float) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=alpha)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _hue(bgr: np.ndarray, delta: int) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + delta) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def color_aug_ssd(image: np.ndarray, params: ColorAugSSDParams, *, rgb: bool = True) -> np.ndarray:
    """Apply detectron2's ColorAugSSD with the given draws to an (H, W, 3) uint8 image.

    Args:
        image: the image, RGB when ``rgb`` (turned to BGR for OpenCV's HSV and back), else BGR.
        params: the draws (see :func:`sample_color_aug_ssd`).

    Returns:
        A new (H, W, 3) uint8 image in the input's channel order.
    """
    bgr = np.ascontiguousarray(image[:, :, ::-1] if rgb else image)
    if params.brightness is not None:
        bgr = _convert(bgr, beta=params.brightness)

    def contrast(img: np.ndarray) -> np.ndarray:
        return img if params.contrast is None else _convert(img, alpha=params.contrast)

    if params.contrast_first:
        bgr = contrast(bgr)
    if params.saturation is not None:
        bgr = _saturation(bgr, params.saturation)
    if params.hue is not None:
        bgr = _hue(bgr, params.hue)
    if not params.contrast_first:
        bgr = contrast(bgr)
    return np.ascontiguousarray(bgr[:, :, ::-1]) if rgb else bgr
