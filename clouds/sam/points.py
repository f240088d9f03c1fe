"""Regions of a label map and the point prompts placed inside them.

As the original CLOUDS: a *region* is one 4-connected component of one predicted class, prompted
only when its area is strictly above the size threshold (5000 px on the 768x768 generated
images). ``connectivity=8`` and ``inclusive=True`` are our options. Points are drawn uniformly
without replacement among the region's pixels (optionally after a square erosion), listed in
row-major order; a region with fewer candidate pixels than points gets no prompt. The
"interior" mode (deterministic points far from the boundary) is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "CONNECTIVITIES",
    "SELECTION_MODES",
    "PointSource",
    "Region",
    "find_regions",
    "scaled_size_threshold",
    "select_points",
]

SELECTION_MODES = ("random", "interior")
CONNECTIVITIES = (4, 8)

# np.random.Generator or the legacy np.random.RandomState (the original draws with
# np.random.choice, i.e. the global RandomState): both have ``choice(n, size, replace)``.
PointSource = np.random.Generator | np.random.RandomState


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
    threshold: int, image_hw: tuple[int, int], reference_hw: tuple[int, int] | tuple[()]
) -> float:
    """The region-size threshold for an image of ``image_hw``.

    With an empty ``reference_hw`` (the original) the threshold is used as is. Otherwise it is
    given in pixels at ``reference_hw`` and shrinks with the area ratio on smaller images (ours,
    for toy runs on small images); at the reference size or above it is used as is.
    """
    if len(reference_hw) == 0:
        return float(threshold)
    if len(reference_hw) != 2:
        raise ValueError(
            f"MODEL.CLOUDS.SAM.SIZE_REFERENCE must be () or (H, W), got {tuple(reference_hw)}"
        )
    ratio = (image_hw[0] * image_hw[1]) / float(reference_hw[0] * reference_hw[1])
    return threshold * min(1.0, ratio)


def find_regions(
    label_map: np.ndarray,
    *,
    min_area: float,
    ignore_label: int = 255,
    connectivity: int = 4,
    inclusive: bool = False,
) -> list[Region]:
    """Connected regions of every class in ``label_map`` above ``min_area`` pixels.

    Args:
        label_map: (H, W) integer class ids; ``ignore_label`` pixels belong to no region.
        min_area: area threshold in pixels.
        connectivity: 4 (the original) or 8.
        inclusive: keep regions of exactly ``min_area`` pixels too (the original keeps only
            regions strictly larger).

    Returns:
        Regions ordered by class id, then by scipy's component order (row-major first pixel),
        the order in which the original draws their points.
    """
    if label_map.ndim != 2:
        raise ValueError(f"label_map must be (H, W), got shape {label_map.shape}")
    if connectivity not in CONNECTIVITIES:
        raise ValueError(
            f"MODEL.CLOUDS.SAM.CONNECTIVITY must be one of {CONNECTIVITIES}, got {connectivity}"
        )
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    regions: list[Region] = []
    for class_id in np.unique(label_map):
        if class_id == ignore_label:
            continue
        components, count = ndimage.label(label_map == class_id, structure=structure)
        areas = np.bincount(components.ravel(), minlength=count + 1)
        for index in range(1, count + 1):
            if areas[index] > min_area or (inclusive and areas[index] == min_area):
                regions.append(Region(class_id=int(class_id), mask=components == index))
    return regions


def select_points(
    mask: np.ndarray,
    *,
    num_points: int,
    mode: str = "random",
    erosion: bool = False,
    erosion_size: int = 3,
    generator: PointSource | None = None,
) -> np.ndarray | None:
    """Choose ``num_points`` prompt points inside a region.

    Args:
        mask: (H, W) bool region mask.
        num_points: points to return.
        mode: "random" (the original: ``generator.choice(n, num_points, replace=False)`` over
            the n candidate pixels in row-major order) or "interior" (ours, deterministic: the
            deepest pixel of the distance transform first, then the pixel maximising the smaller
            of its distance to the boundary and to the points already chosen).
        erosion: erode the region with a square ``erosion_size`` kernel first (scipy's
            ``binary_erosion`` on the whole image, as the original).
        generator: random source of the "random" mode (required there).

    Returns:
        (num_points, 2) float32 (x, y) pixel coordinates (SAM's convention), or None when the
        region has fewer candidate pixels than ``num_points`` (no prompt, as the original).
    """
    if mode not in SELECTION_MODES:
        raise ValueError(
            f"MODEL.CLOUDS.SAM.SELECTION_MODE must be one of {SELECTION_MODES}, got {mode!r}"
        )
    if num_points < 1:
        raise ValueError(f"MODEL.CLOUDS.SAM.NUM_POINTS must be >= 1, got {num_points}")
    candidates = mask.astype(bool)
    if erosion:
        if erosion_size < 1:
            raise ValueError(f"MODEL.CLOUDS.SAM.EROSION_SIZE must be >= 1, got {erosion_size}")
        structure = np.ones((erosion_size, erosion_size))
        candidates = ndimage.binary_erosion(candidates, structure=structure)
    ys, xs = np.nonzero(candidates)
    if len(ys) < num_points:
        return None
    if mode == "random":
        if generator is None:
            raise ValueError("The 'random' selection mode needs a numpy random generator")
        chosen = generator.choice(len(ys), num_points, replace=False)
    else:
        chosen = _interior_points(candidates, ys, xs, num_points)
    return np.stack([xs[chosen], ys[chosen]], axis=1).astype(np.float32)


def _interior_points(
    mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, num_points: int
) -> np.ndarray:
    """Indices into (ys, xs): greedy farthest-point selection on the boundary distance."""
    score = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][ys, xs]
    chosen: list[int] = []
    for _ in range(num_points):
        index = int(np.argmax(score))
        chosen.append(index)
        score = np.minimum(score, np.hypot(xs - xs[index], ys - ys[index]))
    return np.asarray(chosen)
