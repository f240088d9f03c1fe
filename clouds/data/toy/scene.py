"""One scene grammar for every toy dataset: an urban street seen from a car.

A scene is a (H, W) map of Cityscapes train IDs: sky on top, a skyline of buildings and
trees down to the horizon, a road in perspective at the bottom with sidewalks and terrain
or vegetation beside it, walls and fences along the sidewalks, poles carrying traffic
signs or lights, and cars, trucks, buses, trains, people, riders on bicycles or
motorcycles and parked bicycles, each scaled by its distance to the horizon and drawn far
to near. Pixels of the ego vehicle's hood carry the ignore label 255. A :class:`SceneContent`
sets how often each kind of object appears and how wide the road is (the toy datasets use the
default; the toy text-to-image generator sets it from a prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clouds.data.datasets.cityscapes_meta import CITYSCAPES_CLASSES, IGNORE_LABEL

__all__ = ["Scene", "SceneContent", "sample_scene"]

_ID = {name: i for i, name in enumerate(CITYSCAPES_CLASSES)}


@dataclass(frozen=True)
class Scene:
    """A sampled scene: ``label`` (H, W) uint8 train IDs (255 = ignore) and the ``horizon`` row."""

    label: np.ndarray
    horizon: int


@dataclass(frozen=True)
class SceneContent:
    """How often each kind of object appears in a scene.

    Attributes:
        skyline: probabilities of a building, a tree crown or a gap of sky per skyline block.
        road_width: range of the road half-width at the bottom row, as a fraction of the width.
        fence, wall, truck, bus, rider, parked_bicycle, train, hood: probability of one.
        poles, cars, persons: [low, high) range of their count.
    """

    skyline: tuple[float, float, float] = (0.65, 0.25, 0.1)
    road_width: tuple[float, float] = (0.3, 0.45)
    fence: float = 0.6
    wall: float = 0.5
    poles: tuple[int, int] = (1, 4)
    cars: tuple[int, int] = (1, 5)
    truck: float = 0.35
    bus: float = 0.3
    persons: tuple[int, int] = (0, 4)
    rider: float = 0.5
    parked_bicycle: float = 0.3
    train: float = 0.15
    hood: float = 0.3

    def __post_init__(self) -> None:
        if len(self.skyline) != 3 or min(self.skyline) < 0 or abs(sum(self.skyline) - 1) > 1e-6:
            raise ValueError(f"SceneContent.skyline must be 3 probabilities, got {self.skyline}")
        for name in ("poles", "cars", "persons"):
            low, high = getattr(self, name)
            if not 0 <= low < high:
                raise ValueError(f"SceneContent.{name} must be a range 0 <= low < high")


@dataclass(frozen=True)
class _Road:
    """Road geometry: centre column, and per image row the road and sidewalk half-widths."""

    horizon: int
    center: float
    road_half: np.ndarray  # (H,)
    walk: np.ndarray  # (H,)

    def row(self, depth: float) -> int:
        """Image row at ``depth`` (0 at the horizon, 1 at the bottom)."""
        height = len(self.road_half)
        return int(round(self.horizon + depth * (height - 1 - self.horizon)))


def _box(label: np.ndarray, top: float, bottom: float, left: float, right: float, cls: int) -> None:
    """Paint rows [top, bottom) and columns [left, right), clipped, at least one pixel."""
    h, w = label.shape
    y0 = int(np.clip(round(top), 0, h - 1))
    x0 = int(np.clip(round(left), 0, w - 1))
    y1 = int(np.clip(round(bottom), y0 + 1, h))
    x1 = int(np.clip(round(right), x0 + 1, w))
    label[y0:y1, x0:x1] = cls


def _skyline(
    label: np.ndarray, horizon: int, rng: np.random.Generator, kinds: tuple[float, float, float]
) -> None:
    """Buildings and tree crowns standing on the horizon, with gaps of sky."""
    h, w = label.shape
    x = 0
    while x < w:
        block = int(rng.integers(max(3, w // 12), max(4, w // 4) + 1))
        kind = rng.choice(3, p=list(kinds))
        top = horizon - rng.uniform(0.12, 0.42) * h
        if kind == 0:
            _box(label, top, horizon, x, x + block, _ID["building"])
        elif kind == 1:
            cols = np.arange(x, min(x + block, w))
            rel = (cols - (x + block / 2)) / (block / 2)
            tops = np.clip(top + rel**2 * 0.35 * (horizon - top), 0, horizon).astype(int)
            for col, col_top in zip(cols, tops, strict=True):
                label[col_top:horizon, col] = _ID["vegetation"]
        x += block


def _ground(
    label: np.ndarray, horizon: int, rng: np.random.Generator, road_width: tuple[float, float]
) -> _Road:
    """Road in perspective with sidewalks, and terrain or vegetation beyond them."""
    h, w = label.shape
    rows = np.arange(h, dtype=np.float64)
    depth = np.clip((rows - horizon) / max(h - 1 - horizon, 1), 0.0, 1.0)
    road = _Road(
        horizon=horizon,
        center=w * rng.uniform(0.4, 0.6),
        road_half=w * (0.03 + rng.uniform(*road_width) * depth),
        walk=w * (0.02 + rng.uniform(0.12, 0.22) * depth),
    )
    cols = np.arange(w, dtype=np.float64)[None, :]
    dist = np.abs(cols - road.center)
    left_side, right_side = (_ID[c] for c in rng.choice(["terrain", "vegetation"], size=2))
    side = np.where(cols < road.center, left_side, right_side)
    ground = np.where(
        dist < road.road_half[:, None],
        _ID["road"],
        np.where(dist < (road.road_half + road.walk)[:, None], _ID["sidewalk"], side),
    )
    label[horizon:] = ground[horizon:]
    return road


def _side_x(road: _Road, row: int, side: int, offset: float) -> float:
    """Column at ``offset`` sidewalk widths beyond the road edge on ``side`` (-1 left, +1 right)."""
    return road.center + side * (road.road_half[row] + offset * road.walk[row])


def _barrier(label: np.ndarray, road: _Road, rng: np.random.Generator, cls: int) -> None:
    """A wall or fence standing at the outer sidewalk edge, running away from the road."""
    h, w = label.shape
    depth = rng.uniform(0.05, 0.5)
    row = road.row(depth)
    side = int(rng.choice([-1, 1]))
    x = _side_x(road, row, side, 1.0)
    length = w * rng.uniform(0.1, 0.3)
    tall = h * (0.05 + 0.2 * depth) * (1.6 if cls == _ID["wall"] else 1.0)
    left, right = (x - length, x) if side < 0 else (x, x + length)
    _box(label, row - tall, row + 1, left, right, cls)


def _pole(label: np.ndarray, road: _Road, rng: np.random.Generator, depth: float) -> None:
    """A pole on the sidewalk topped by a traffic sign or a traffic light."""
    h, w = label.shape
    row = road.row(depth)
    x = _side_x(road, row, int(rng.choice([-1, 1])), rng.uniform(0.2, 0.6))
    tall = h * (0.15 + 0.45 * depth)
    width = max(1.0, w * 0.006 * (1 + 2 * depth))
    top = row - tall
    _box(label, top, row + 1, x - width / 2, x + width / 2, _ID["pole"])
    if rng.random() < 0.5:
        size = max(3.0, 3 * width)
        _box(label, top - size / 2, top + size / 2, x - size / 2, x + size / 2, _ID["traffic sign"])
    else:
        half_w, tall_light = max(1.0, width), max(3.0, 4 * width)
        _box(label, top, top + tall_light, x - half_w, x + half_w, _ID["traffic light"])


def _vehicle(
    label: np.ndarray, road: _Road, rng: np.random.Generator, depth: float, cls: int
) -> None:
    """A car, truck or bus on the road; trains run across the far road."""
    w = label.shape[1]
    row = road.row(depth)
    width = w * (0.04 + 0.2 * depth)
    aspect = {_ID["car"]: 0.55, _ID["truck"]: 0.9, _ID["bus"]: 0.85, _ID["train"]: 0.35}[cls]
    if cls != _ID["car"]:
        width *= 1.4 if cls != _ID["train"] else 3.5
    x = road.center + rng.uniform(-0.7, 0.7) * road.road_half[row]
    _box(label, row - aspect * width, row + 1, x - width / 2, x + width / 2, cls)


def _person(label: np.ndarray, road: _Road, rng: np.random.Generator, depth: float) -> None:
    """A pedestrian on a sidewalk."""
    h = label.shape[0]
    row = road.row(depth)
    x = _side_x(road, row, int(rng.choice([-1, 1])), rng.uniform(0.2, 0.8))
    tall = h * (0.08 + 0.3 * depth)
    width = max(1.0, 0.3 * tall)
    _box(label, row - tall, row + 1, x - width / 2, x + width / 2, _ID["person"])


def _rider(label: np.ndarray, road: _Road, rng: np.random.Generator, depth: float) -> None:
    """A rider on a bicycle or motorcycle near the road edge."""
    h = label.shape[0]
    row = road.row(depth)
    x = road.center + rng.choice([-1, 1]) * rng.uniform(0.5, 0.9) * road.road_half[row]
    tall = h * (0.1 + 0.3 * depth)
    vehicle = _ID["bicycle"] if rng.random() < 0.5 else _ID["motorcycle"]
    wheel_top = row - 0.45 * tall
    _box(label, wheel_top, row + 1, x - 0.3 * tall, x + 0.3 * tall, vehicle)
    body = max(1.0, 0.3 * tall)
    _box(label, row - tall, wheel_top, x - body / 2, x + body / 2, _ID["rider"])


def _parked_bicycle(label: np.ndarray, road: _Road, rng: np.random.Generator, depth: float) -> None:
    """A bicycle standing on a sidewalk."""
    h = label.shape[0]
    row = road.row(depth)
    x = _side_x(road, row, int(rng.choice([-1, 1])), rng.uniform(0.2, 0.8))
    tall = h * (0.05 + 0.12 * depth)
    _box(label, row - tall, row + 1, x - tall * 0.8, x + tall * 0.8, _ID["bicycle"])


def _hood(label: np.ndarray, rng: np.random.Generator) -> None:
    """The ego vehicle's bonnet at the bottom of the image: ignore label."""
    h, w = label.shape
    cols = np.arange(w)
    rel = (cols - w / 2) / (w / 2)
    tops = (h - h * rng.uniform(0.05, 0.1) * (1.0 - 0.5 * rel**2)).astype(int)
    for col, top in zip(cols, tops, strict=True):
        label[top:, col] = IGNORE_LABEL


def sample_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    horizon_range: tuple[float, float] = (0.4, 0.55),
    content: SceneContent = SceneContent(),
) -> Scene:
    """Sample one street scene.

    Args:
        rng: random generator (the scene is a pure function of its state).
        height, width: label map size.
        horizon_range: horizon row as fractions of the height (camera height / pitch).

    Returns:
        The scene: (height, width) uint8 train-ID map and its horizon row.
    """
    label = np.full((height, width), _ID["sky"], dtype=np.uint8)
    horizon = int(height * rng.uniform(*horizon_range))
    _skyline(label, horizon, rng, content.skyline)
    road = _ground(label, horizon, rng, content.road_width)
    if rng.random() < content.fence:
        _barrier(label, road, rng, _ID["fence"])
    if rng.random() < content.wall:
        _barrier(label, road, rng, _ID["wall"])

    draws: list[tuple[float, Callable[[float], None]]] = []

    def add(count: int, draw: Callable[[float], None], low: float = 0.05) -> None:
        draws.extend((rng.uniform(low, 0.95), draw) for _ in range(count))

    c = content
    add(int(rng.integers(*c.poles)), lambda d: _pole(label, road, rng, d), low=0.1)
    add(int(rng.integers(*c.cars)), lambda d: _vehicle(label, road, rng, d, _ID["car"]))
    add(int(rng.random() < c.truck), lambda d: _vehicle(label, road, rng, d, _ID["truck"]))
    add(int(rng.random() < c.bus), lambda d: _vehicle(label, road, rng, d, _ID["bus"]))
    add(int(rng.integers(*c.persons)), lambda d: _person(label, road, rng, d))
    add(int(rng.random() < c.rider), lambda d: _rider(label, road, rng, d))
    add(int(rng.random() < c.parked_bicycle), lambda d: _parked_bicycle(label, road, rng, d))
    if rng.random() < c.train:
        draws.append((rng.uniform(0.0, 0.1), lambda d: _vehicle(label, road, rng, d, _ID["train"])))
    for depth, draw in sorted(draws, key=lambda item: item[0]):
        draw(depth)
    if rng.random() < c.hood:
        _hood(label, rng)
    return Scene(label=label, horizon=horizon)
