"""mmsegmentation's ``PhotoMetricDistortion``, written for RGB uint8 arrays.

Each step runs with probability 0.5, in this order: brightness (add ``U(-32, 32)``), contrast
(multiply by ``U(0.5, 1.5)``) either first or last (a fair coin, "mode"), saturation (multiply
the HSV S channel by ``U(0.5, 1.5)``), hue (add an integer in ``[-18, 18)`` to the OpenCV H
channel, modulo 180). Every step casts to float32, clips to [0, 255] and truncates back to
uint8, as mmseg does. There is no channel swap. The random draws are taken from NumPy's global
generator in mmseg's order with mmseg's calls (``randint(2)``, ``uniform``, ``randint(-d, d)``),
so one NumPy state gives mmseg's distortion; they are kept in a :class:`PhotometricDraw` so a
distortion can be drawn without being applied, or replayed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from clouds.config import CfgNode

__all__ = ["PhotoMetricDistortion", "PhotometricDraw"]


@dataclass(frozen=True)
class PhotometricDraw:
    """The random choices of one distortion; ``None`` means the step is skipped."""

    brightness: float | None  # additive delta
    contrast: float | None  # multiplicative factor
    contrast_first: bool  # contrast before (True) or after (False) the HSV steps
    saturation: float | None  # factor of the S channel
    hue: int | None  # shift of the OpenCV H channel (0..179)


def _convert(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``clip(values * alpha + beta, 0, 255)`` in float32, truncated to uint8."""
    out = values.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0, 255).astype(np.uint8)


class PhotoMetricDistortion:
    """Random brightness, contrast, saturation and hue, as mmseg's transform of that name.

    Args:
        brightness_delta: brightness deltas are drawn from ``U(-delta, delta)``.
        contrast_range: (low, high) of the contrast factor.
        saturation_range: (low, high) of the saturation factor.
        hue_delta: hue shifts are integers in ``[-hue_delta, hue_delta)`` (numpy's
            ``randint`` excludes its upper bound, so mmseg never shifts by ``+hue_delta``).
    """

    def __init__(
        self,
        *,
        brightness_delta: float = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: int = 18,
    ) -> None:
        for name, (low, high) in (("contrast", contrast_range), ("saturation", saturation_range)):
            if not 0 <= low <= high:
                raise ValueError(f"{name} range must be 0 <= low <= high, got ({low}, {high})")
        if brightness_delta < 0 or hue_delta < 0:
            raise ValueError(
                f"brightness_delta and hue_delta must be >= 0, got {brightness_delta}, {hue_delta}"
            )
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.saturation_range = (float(saturation_range[0]), float(saturation_range[1]))
        self.hue_delta = int(hue_delta)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> PhotoMetricDistortion:
        p = cfg.INPUT.VFM_PIPELINE.PHOTOMETRIC
        return cls(
            brightness_delta=p.BRIGHTNESS_DELTA,
            contrast_range=tuple(p.CONTRAST_RANGE),
            saturation_range=tuple(p.SATURATION_RANGE),
            hue_delta=p.HUE_DELTA,
        )

    @staticmethod
    def _coin() -> bool:
        return bool(np.random.randint(2))

    @staticmethod
    def _uniform(low: float, high: float) -> float:
        return float(np.random.uniform(low, high))

    def sample(self) -> PhotometricDraw:
        """Draw the choices of one distortion, in mmseg's order of draws."""
        brightness = None
        if self._coin():
            brightness = self._uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = self._coin()
        contrast = self._uniform(*self.contrast_range) if contrast_first and self._coin() else None
        saturation = self._uniform(*self.saturation_range) if self._coin() else None
        hue = None
        if self._coin():
            d = self.hue_delta
            hue = int(np.random.randint(-d, d)) if d > 0 else 0
        if not contrast_first and self._coin():
            contrast = self._uniform(*self.contrast_range)
        return PhotometricDraw(brightness, contrast, contrast_first, saturation, hue)

    @staticmethod
    def apply(image: np.ndarray, draw: PhotometricDraw) -> np.ndarray:
        """Distort an (H, W, 3) uint8 RGB image with the given choices; returns a new array."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"PhotoMetricDistortion needs an (H, W, 3) uint8 image, got {image.dtype} "
                f"{image.shape}"
            )
        img = image
        if draw.brightness is not None:
            img = _convert(img, beta=draw.brightness)
        if draw.contrast_first and draw.contrast is not None:
            img = _convert(img, alpha=draw.contrast)
        if draw.saturation is not None:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=draw.saturation)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if draw.hue is not None:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int64) + draw.hue) % 180
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if not draw.contrast_first and draw.contrast is not None:
            img = _convert(img, alpha=draw.contrast)
        return img if img is not image else image.copy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Distort an (H, W, 3) uint8 RGB image with fresh random choices."""
        return self.apply(image, self.sample())
