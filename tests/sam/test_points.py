"""Regions and point prompts: inside the region, count, threshold, erosion, seeding, interior."""

import numpy as np
import pytest
from scipy import ndimage

from clouds.sam.points import find_regions, scaled_size_threshold, select_points


def _two_class_map() -> np.ndarray:
    label = np.zeros((40, 60), dtype=np.int64)  # class 0 background
    label[5:15, 5:25] = 3  # 200 px
    label[20:35, 30:55] = 3  # 375 px, second component of class 3
    label[30:33, 5:8] = 7  # 9 px
    label[0:2, 50:60] = 255  # ignored
    return label


def test_find_regions_splits_components_and_applies_threshold() -> None:
    regions = find_regions(_two_class_map(), min_area=100)
    assert [(r.class_id, r.area) for r in regions if r.class_id == 3] == [(3, 200), (3, 375)]
    assert all(r.class_id != 7 for r in regions)  # 9 px < 100
    assert all(r.class_id != 255 for r in regions)
    # strictly above the threshold, as the original; INCLUSIVE_THRESHOLD keeps == too
    assert not any(r.class_id == 7 for r in find_regions(_two_class_map(), min_area=9))
    assert any(r.class_id == 7 for r in find_regions(_two_class_map(), min_area=8))
    inclusive = find_regions(_two_class_map(), min_area=9, inclusive=True)
    assert any(r.class_id == 7 and r.area == 9 for r in inclusive)


def test_regions_are_four_connected_unless_asked_for_eight() -> None:
    label = np.zeros((6, 6), dtype=np.int64)
    label[1, 1] = label[2, 2] = label[3, 3] = 1  # a diagonal line
    four = [r for r in find_regions(label, min_area=0) if r.class_id == 1]
    assert [r.area for r in four] == [1, 1, 1]
    eight = [r for r in find_regions(label, min_area=0, connectivity=8) if r.class_id == 1]
    assert len(eight) == 1 and eight[0].area == 3
    with pytest.raises(ValueError, match="CONNECTIVITY"):
        find_regions(label, min_area=0, connectivity=6)


def test_threshold_scales_down_with_area_only() -> None:
    assert scaled_size_threshold(5000, (384, 384), ()) == 5000  # the original: as is
    assert scaled_size_threshold(5000, (768, 768), (768, 768)) == 5000
    assert scaled_size_threshold(5000, (384, 384), (768, 768)) == pytest.approx(1250)
    assert scaled_size_threshold(5000, (1024, 2048), (768, 768)) == 5000


@pytest.mark.parametrize("mode", ["random", "interior"])
def test_points_lie_inside_region_with_requested_count(mode: str) -> None:
    region = find_regions(_two_class_map(), min_area=300)[-1].mask
    points = select_points(region, num_points=5, mode=mode, generator=np.random.default_rng(0))
    assert points.shape == (5, 2) and points.dtype == np.float32
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    assert region[ys, xs].all()


def test_random_points_are_seeded_and_distinct() -> None:
    region = np.zeros((50, 50), dtype=bool)
    region[10:40, 10:40] = True
    a = select_points(region, num_points=5, generator=np.random.default_rng(7))
    b = select_points(region, num_points=5, generator=np.random.default_rng(7))
    c = select_points(region, num_points=5, generator=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(p) for p in a}) == 5


def test_random_points_follow_the_originals_draw() -> None:
    """The original: np.random.choice(n, k, replace=False) over row-major (x, y) pixels."""
    region = np.zeros((20, 20), dtype=bool)
    region[3:9, 4:15] = True
    points = select_points(region, num_points=5, generator=np.random.RandomState(3))
    ys, xs = np.nonzero(region)
    chosen = np.random.RandomState(3).choice(len(ys), 5, replace=False)
    np.testing.assert_array_equal(points, np.stack([xs[chosen], ys[chosen]], 1))


def test_region_with_fewer_pixels_than_points_gets_no_prompt() -> None:
    region = np.zeros((10, 10), dtype=bool)
    region[4, 4:6] = True
    assert select_points(region, num_points=5, generator=np.random.default_rng(0)) is None
    assert select_points(np.zeros((4, 4), bool), num_points=1, mode="interior") is None


def test_erosion_keeps_points_off_the_boundary() -> None:
    region = np.zeros((30, 30), dtype=bool)
    region[5:25, 5:25] = True
    eroded = ndimage.binary_erosion(region, structure=np.ones((5, 5)))
    for seed in range(5):
        points = select_points(
            region,
            num_points=20,
            erosion=True,
            erosion_size=5,
            generator=np.random.default_rng(seed),
        )
        assert eroded[points[:, 1].astype(int), points[:, 0].astype(int)].all()


def test_erosion_that_empties_a_region_leaves_it_without_prompt() -> None:
    region = np.zeros((10, 10), dtype=bool)
    region[5, 2:8] = True  # one pixel thick: erosion removes everything
    points = select_points(
        region, num_points=3, erosion=True, erosion_size=3, generator=np.random.default_rng(0)
    )
    assert points is None


def test_interior_mode_is_deterministic_deep_and_spread() -> None:
    region = np.zeros((40, 80), dtype=bool)
    region[5:35, 5:75] = True
    a = select_points(region, num_points=4, mode="interior")
    b = select_points(region, num_points=4, mode="interior")
    np.testing.assert_array_equal(a, b)
    depth = ndimage.distance_transform_edt(region)
    assert depth[int(a[0, 1]), int(a[0, 0])] == depth.max()  # first point is the deepest
    assert all(depth[int(y), int(x)] >= 5 for x, y in a)  # none near the boundary
    gaps = [np.hypot(*(a[i] - a[j])) for i in range(4) for j in range(i)]
    assert min(gaps) >= 10  # points spread over the region


def test_bad_arguments_are_named() -> None:
    region = np.ones((4, 4), dtype=bool)
    with pytest.raises(ValueError, match="SELECTION_MODE"):
        select_points(region, num_points=1, mode="grid")
    with pytest.raises(ValueError, match="NUM_POINTS"):
        select_points(region, num_points=0, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="random generator"):
        select_points(region, num_points=1)
    with pytest.raises(ValueError, match="EROSION_SIZE"):
        select_points(region, num_points=1, erosion=True, erosion_size=0, mode="interior")


@pytest.mark.parametrize("mode", ["random", "interior"])
def test_points_of_regions_at_the_image_corners_are_placed_correctly(mode: str) -> None:
    for corner in [(slice(0, 12), slice(0, 9)), (slice(28, 40), slice(51, 60))]:
        region = np.zeros((40, 60), dtype=bool)
        region[corner] = True
        points = select_points(
            region, num_points=4, mode=mode, erosion=True, generator=np.random.default_rng(1)
        )
        assert region[points[:, 1].astype(int), points[:, 0].astype(int)].all()
        if mode == "interior":  # the image border counts as boundary: the first point is central
            y, x = corner[0], corner[1]
            center = ((y.start + y.stop - 1) / 2, (x.start + x.stop - 1) / 2)
            assert abs(points[0, 1] - center[0]) <= 2 and abs(points[0, 0] - center[1]) <= 2
