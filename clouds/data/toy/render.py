"""Render a toy scene as an RGB image in the look of one domain.

Every class has a base colour and a texture (windows on buildings, tiles on sidewalks,
speckle on vegetation, stripes on fences and walls, a gradient in the sky...), so images
carry class information in every domain. A :class:`DomainStyle` shifts that appearance the
way real datasets differ: the palette is rotated and re-saturated, textures change scale,
and lighting, sensor noise, blur and weather (fog, night, rain, snow) are applied on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clouds.data.datasets.cityscapes_meta import IGNORE_LABEL, NUM_CLASSES
from clouds.data.toy.scene import Scene

__all__ = ["WEATHERS", "DomainStyle", "render_scene"]

WEATHERS = ("clear", "fog", "night", "rain", "snow")

_FLAT, _HSTRIPES, _VSTRIPES, _WINDOWS, _TILES, _SPECKLE, _GRADIENT = range(7)

# Per train ID (then one entry for the ignore label): base RGB colour, texture, strength.
_APPEARANCE: tuple[tuple[tuple[float, float, float], int, float], ...] = (
    ((0.35, 0.35, 0.38), _SPECKLE, 0.06),  # road
    ((0.62, 0.56, 0.55), _TILES, 0.15),  # sidewalk
    ((0.55, 0.42, 0.33), _WINDOWS, 0.35),  # building
    ((0.72, 0.66, 0.52), _HSTRIPES, 0.15),  # wall
    ((0.52, 0.45, 0.32), _VSTRIPES, 0.35),  # fence
    ((0.28, 0.28, 0.30), _FLAT, 0.0),  # pole
    ((0.12, 0.12, 0.08), _WINDOWS, -1.5),  # traffic light (lit lamps)
    ((0.92, 0.78, 0.12), _FLAT, 0.0),  # traffic sign
    ((0.20, 0.48, 0.14), _SPECKLE, 0.35),  # vegetation
    ((0.55, 0.62, 0.30), _SPECKLE, 0.15),  # terrain
    ((0.55, 0.72, 0.95), _GRADIENT, 0.2),  # sky
    ((0.78, 0.30, 0.32), _FLAT, 0.0),  # person
    ((0.85, 0.25, 0.12), _HSTRIPES, 0.15),  # rider
    ((0.12, 0.20, 0.62), _WINDOWS, 0.2),  # car
    ((0.40, 0.40, 0.55), _HSTRIPES, 0.15),  # truck
    ((0.20, 0.55, 0.60), _WINDOWS, 0.25),  # bus
    ((0.55, 0.60, 0.65), _WINDOWS, 0.3),  # train
    ((0.25, 0.12, 0.35), _FLAT, 0.0),  # motorcycle
    ((0.55, 0.10, 0.20), _VSTRIPES, 0.3),  # bicycle
    ((0.10, 0.10, 0.10), _FLAT, 0.0),  # ignore (ego vehicle)
)


@dataclass(frozen=True)
class DomainStyle:
    """The look of one toy domain.

    Attributes:
        hue_shift: rotation of the class palette around the grey axis, in degrees.
        saturation: palette saturation factor.
        brightness: overall gain.
        contrast: contrast factor around mid-grey.
        tint: per-channel RGB gain (colour cast of the camera or the light).
        texture_period: pixels per texture cycle (window grid, tiles, stripes).
        noise: standard deviation of per-pixel sensor noise (0..1 scale).
        color_jitter: per-image standard deviation of the relative class-colour jitter.
        blur: Gaussian blur sigma in pixels (0: none).
        weather: one of :data:`WEATHERS`.
        horizon_range: horizon row range as fractions of the height (camera pose).
    """

    hue_shift: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    texture_period: int = 4
    noise: float = 0.02
    color_jitter: float = 0.05
    blur: float = 0.0
    weather: str = "clear"
    horizon_range: tuple[float, float] = (0.4, 0.55)

    def __post_init__(self) -> None:
        if self.weather not in WEATHERS:
            raise ValueError(f"Unknown weather {self.weather!r}; expected one of {WEATHERS}")
        if self.texture_period < 2:
            raise ValueError(f"texture_period must be >= 2, got {self.texture_period}")


def _palette(style: DomainStyle, rng: np.random.Generator) -> np.ndarray:
    """(NUM_CLASSES + 1, 3) class colours after the domain's palette shift and jitter."""
    colors = np.array([color for color, _, _ in _APPEARANCE], dtype=np.float64)
    angle = np.deg2rad(style.hue_shift)
    axis = np.ones(3) / np.sqrt(3.0)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    colors = colors @ rotation.T
    grey = colors.mean(axis=1, keepdims=True)
    colors = grey + style.saturation * (colors - grey)
    colors *= 1.0 + rng.normal(0.0, style.color_jitter, size=colors.shape)
    return np.clip(colors * np.asarray(style.tint) * style.brightness, 0.0, 1.0)


def _texture_fields(h: int, w: int, period: int, rng: np.random.Generator) -> np.ndarray:
    """(7, H, W) texture fields in about [-1, 1], indexed by the texture constants."""
    yy, xx = np.mgrid[0:h, 0:w]
    half = max(1, period // 2)
    fields = np.zeros((7, h, w), dtype=np.float64)
    fields[_HSTRIPES] = (yy // half) % 2 * 2.0 - 1.0
    fields[_VSTRIPES] = (xx // half) % 2 * 2.0 - 1.0
    fields[_WINDOWS] = np.where((yy % period < half) & (xx % period < half), -1.0, 0.3)
    fields[_TILES] = np.where((yy % period == 0) | (xx % period == 0), -1.0, 0.0)
    fields[_SPECKLE] = np.clip(rng.standard_normal((h, w)), -2.0, 2.0) / 2.0
    fields[_GRADIENT] = yy / max(h - 1, 1) * 2.0 - 1.0
    return fields


def _weather(image: np.ndarray, scene: Scene, weather: str, rng: np.random.Generator) -> np.ndarray:
    """Apply fog, night, rain or snow to an (H, W, 3) float image in [0, 1]."""
    h, w, _ = image.shape
    rows = np.arange(h, dtype=np.float64)[:, None, None]
    if weather == "fog":
        amount = 0.25 + 0.6 * np.exp(-np.abs(rows - scene.horizon) / (0.3 * h))
        return image * (1 - amount) + np.array([0.76, 0.78, 0.8]) * amount
    if weather == "night":
        dark = image * 0.28 * np.array([0.75, 0.8, 1.15])
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(int(rng.integers(2, 6))):
            cy, cx = rng.uniform(scene.horizon - 0.2 * h, h), rng.uniform(0, w)
            radius = rng.uniform(0.03, 0.08) * w
            glow = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
            dark += 0.6 * glow[:, :, None] * np.array([1.0, 0.85, 0.55])
        return dark
    if weather == "rain":
        grey = image.mean(axis=2, keepdims=True)
        wet = (0.7 * image + 0.3 * grey) * 0.75
        length = max(2, h // 12)
        for _ in range(int(0.02 * h * w)):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            steps = np.arange(length)
            ys, xs = np.clip(y + steps, 0, h - 1), np.clip(x + steps // 3, 0, w - 1)
            wet[ys, xs] = wet[ys, xs] * 0.6 + 0.35
        return wet
    if weather == "snow":
        ground = (rows >= scene.horizon) & (scene.label[:, :, None] != IGNORE_LABEL)
        snowy = np.where(ground, image * 0.55 + 0.4, image * 0.85 + 0.12)
        flakes = rng.random((h, w)) < 0.03
        snowy[flakes] = 0.95
        return snowy
    return image


def render_scene(scene: Scene, style: DomainStyle, rng: np.random.Generator) -> np.ndarray:
    """Render ``scene`` in ``style``.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    label = scene.label
    h, w = label.shape
    index = np.where(label == IGNORE_LABEL, NUM_CLASSES, label).astype(np.intp)
    palette = _palette(style, rng)
    textures = np.array([texture for _, texture, _ in _APPEARANCE], dtype=np.intp)
    strengths = np.array([strength for _, _, strength in _APPEARANCE])
    fields = _texture_fields(h, w, style.texture_period, rng)
    texture = np.take_along_axis(fields, textures[index][None], axis=0)[0]
    image = palette[index] * (1.0 + strengths[index] * texture)[:, :, None]
    image = _weather(np.clip(image, 0.0, 1.0), scene, style.weather, rng)
    image = (image - 0.5) * style.contrast + 0.5
    image = image + rng.normal(0.0, style.noise, size=image.shape)
    if style.blur > 0:
        image = cv2.GaussianBlur(image, ksize=(0, 0), sigmaX=style.blur)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
