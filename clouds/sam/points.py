"""Regions of a label map and the point prompts placed inside them.

A *region* is one connected component (8-connectivity) of one predicted class. Regions smaller
than a size threshold get no prompt. Points are drawn inside each region, either at random
(seeded ``numpy.random.Generator``) or deterministically far from the region's boundary
("interior": greedy farthest-point selection on the distance transform).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "SELECTION_MODES",
    "Region",
    "find_regions",
    "scaled_size_threshold",
    "select_points",
]

SELECTION_MODES = ("random", "interior")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Region:
    """One connected component of one class.

    Attributes:
        class_id: the class predicted over the region.
        mask: (H, W) bool, True inside the region.
    """

    class_id: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def scaled_size_threshold(
    threshold: int, image_hw: tuple[int, int], reference_hw: tuple[int, int]
) -> float:
    """The region-size threshold for an image of ``image_hw``.

    ``threshold`` is given in pixels at ``reference_hw`` (the paper's 5000 px on 768x768 crops).
    On a smaller image it shrinks with the area ratio, so that a region covering the same share
    of the image is treated the same; at the reference size or above it is used as is, as in
    the original.
    """
    ratio = (image_hw[0] * image_hw[1]) / float(reference_hw[0] * reference_hw[1])
    return threshold * min(1.0, ratio)


def find_regions(
    label_map: np.ndarray, *, min_area: float, ignore_label: int = 255
) -> list[Region]:
    """Connected regions of every class in ``label_map`` with at least ``min_area`` pixels.

    Args:
        label_map: (H, W) integer class ids; ``ignore_label`` pixels belong to no region.
        min_area: smallest region kept, in pixels.

    Returns:
        Regions ordered by class id, then by position (scipy's component order).
    """
    if label_map.ndim != 2:
        raise ValueError(f"label_map must be (H, W), got shape {label_map.shape}")
    regions: list[Region] = []
    for class_id in np.unique(label_map):
        if class_id == ignore_label:
            continue
        components, count = ndimage.label(label_map == class_id, structure=_EIGHT_CONNECTED)
        if count == 0:
            continue
        areas = np.bincount(components.ravel(), minlength=count + 1)
        for index in range(1, count + 1):
            if areas[index] >= min_area:
                regions.append(Region(class_id=int(class_id), mask=components == index))
    return regions


def select_points(
    mask: np.ndarray,
    *,
    num_points: int,
    mode: str = "random",
    erosion: bool = False,
    erosion_size: int = 3,
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Choose ``num_points`` prompt points inside a region.

    Args:
        mask: (H, W) bool region mask (must not be empty).
        num_points: points to return.
        mode: "random" (uniform over the region, distinct pixels when the region is large
            enough, drawn from ``generator``) or "interior" (deterministic: the deepest pixel
            of the distance transform first, then the pixel maximising the smaller of its
            distance to the boundary and its distance to the points already chosen; the image
            border counts as boundary).
        erosion: erode the region with a square ``erosion_size`` kernel first, keeping
            points away from the boundary; a region that erosion would empty is used as is.
        generator: random source of the "random" mode (required there).

    Returns:
        (num_points, 2) float32 (x, y) pixel coordinates, SAM's point convention.
    """
    if mode not in SELECTION_MODES:
        raise ValueError(f"SAM.SELECTION_MODE must be one of {SELECTION_MODES}, got {mode!r}")
    if num_points < 1:
        raise ValueError(f"SAM.NUM_POINTS must be >= 1, got {num_points}")
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise ValueError("Cannot place points in an empty region")
    # work on the region's bounding box, padded with one background pixel all around
    top, left = rows.min(), cols.min()
    region = np.pad(mask[top : rows.max() + 1, left : cols.max() + 1], 1)
    if erosion:
        if erosion_size < 1:
            raise ValueError(f"SAM.EROSION_SIZE must be >= 1, got {erosion_size}")
        eroded = ndimage.binary_erosion(region, structure=np.ones((erosion_size, erosion_size)))
        if eroded.any():
            region = eroded
    if mode == "random":
        if generator is None:
            raise ValueError("The 'random' selection mode needs a numpy Generator")
        ys, xs = np.nonzero(region)
        chosen = generator.choice(len(ys), size=num_points, replace=len(ys) < num_points)
        points = np.stack([xs[chosen], ys[chosen]], axis=1)
    else:
        points = _interior_points(region, num_points)
    return (points + np.array([left - 1, top - 1])).astype(np.float32)


def _interior_points(mask: np.ndarray, num_points: int) -> np.ndarray:
    """Greedy farthest-point selection weighted by the distance to the region boundary."""
    depth = ndimage.distance_transform_edt(mask)
    ys, xs = np.nonzero(mask)
    depth = depth[ys, xs]
    score = depth.copy()
    chosen: list[int] = []
    for _ in range(num_points):
        index = int(np.argmax(score))
        chosen.append(index)
        spacing = np.hypot(xs - xs[index], ys - ys[index])
        score = np.minimum(score, spacing)
    return np.stack([xs[chosen], ys[chosen]], axis=1)
