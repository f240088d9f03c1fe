import pytest
import torch

from clouds.modeling.point_sampling import (
    get_uncertain_point_coords_with_randomness,
    point_sample,
)


def test_point_sample_reads_pixel_centres_exactly():
    maps = torch.randn(2, 3, 4, 6)
    points = torch.tensor([[[(1 + 0.5) / 6, (2 + 0.5) / 4], [(5 + 0.5) / 6, (0 + 0.5) / 4]]] * 2)
    values = point_sample(maps, points)
    assert values.shape == (2, 3, 2)
    torch.testing.assert_close(values[:, :, 0], maps[:, :, 2, 1])
    torch.testing.assert_close(values[:, :, 1], maps[:, :, 0, 5])


def test_importance_sampling_prefers_uncertain_regions():
    logits = torch.full((3, 1, 16, 16), 20.0)
    logits[:, :, :, 8:] = 0.0  # the right half is maximally uncertain
    points = get_uncertain_point_coords_with_randomness(logits, 40, 3.0, 1.0)
    assert points.shape == (3, 40, 2)
    # Every kept candidate lies where the interpolated logit is below 20 (x beyond 7/16).
    assert (points[..., 0] > 7 / 16).all()
    mixed = get_uncertain_point_coords_with_randomness(logits, 40, 3.0, 0.75)
    assert mixed.shape == (3, 40, 2) and (mixed[:, :30, 0] > 7 / 16).all()
    assert mixed.min() >= 0 and mixed.max() <= 1


def test_bad_ratios_are_errors():
    logits = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="oversample_ratio"):
        get_uncertain_point_coords_with_randomness(logits, 8, 0.5, 0.5)
    with pytest.raises(ValueError, match="importance_sample_ratio"):
        get_uncertain_point_coords_with_randomness(logits, 8, 3.0, 1.5)


def test_random_draws_are_the_originals(monkeypatch):
    """Candidates first, then the random share, one call each for all masks (the original's
    calls: on CUDA other calls would give other points from the same seed)."""
    shapes = []
    real_rand = torch.rand

    def spy(*size, **kwargs):
        shapes.append(tuple(size))
        return real_rand(*size, **kwargs)

    monkeypatch.setattr(torch, "rand", spy)
    get_uncertain_point_coords_with_randomness(torch.randn(3, 1, 8, 8), 16, 3.0, 0.75)
    assert shapes == [(3, 48, 2), (3, 4, 2)]
