import itertools

import pytest
import torch

from clouds.modeling.matcher import HungarianMatcher
from tests.modeling.head_utils import tiny_head_cfg

H, W = 4, 5


def _pixel_centres() -> torch.Tensor:
    """(H*W, 2) points at every pixel centre, so point-sampled costs equal full-mask costs."""
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    return torch.stack([(xs.flatten() + 0.5) / W, (ys.flatten() + 0.5) / H], dim=-1)


def _pair_cost(logits, mask_logits, label, target, w_class, w_mask, w_dice) -> float:
    """Cost of one query/target pair written out directly on full masks."""
    prob = logits.double().softmax(-1)[label]
    p = mask_logits.double().sigmoid().flatten()
    t = target.double().flatten()
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return float(-w_class * prob + w_mask * bce + w_dice * dice)


def _brute_force(costs: list[list[float]], num_queries: int, num_targets: int) -> float:
    best = float("inf")
    for queries in itertools.permutations(range(num_queries), num_targets):
        best = min(best, sum(costs[q][j] for j, q in enumerate(queries)))
    return best


@pytest.mark.parametrize("num_targets", [1, 3, 5])
def test_matching_is_optimal_against_brute_force(num_targets):
    weights = {"cost_class": 2.0, "cost_mask": 5.0, "cost_dice": 5.0}
    matcher = HungarianMatcher(**weights, num_points=H * W)
    num_queries, num_classes = 5, 4
    outputs = {
        "pred_logits": torch.randn(2, num_queries, num_classes + 1) * 3,
        "pred_masks": torch.randn(2, num_queries, H, W) * 3,
    }
    targets = [
        {
            "labels": torch.randint(0, num_classes, (num_targets,)),
            "masks": torch.rand(num_targets, H, W) > 0.5,
        }
        for _ in range(2)
    ]
    points = _pixel_centres()[None].expand(2, -1, -1)
    indices = matcher(outputs, targets, point_coords=points)
    for b, (rows, cols) in enumerate(indices):
        assert len(rows) == len(cols) == num_targets
        assert sorted(cols.tolist()) == list(range(num_targets))
        assert len(set(rows.tolist())) == num_targets
        costs = [
            [
                _pair_cost(
                    outputs["pred_logits"][b, q],
                    outputs["pred_masks"][b, q],
                    targets[b]["labels"][j],
                    targets[b]["masks"][j],
                    weights["cost_class"],
                    weights["cost_mask"],
                    weights["cost_dice"],
                )
                for j in range(num_targets)
            ]
            for q in range(num_queries)
        ]
        matched = sum(costs[q][j] for q, j in zip(rows.tolist(), cols.tolist()))
        assert matched == pytest.approx(_brute_force(costs, num_queries, num_targets), abs=1e-4)


def test_obvious_assignment_with_random_points_and_autocast():
    matcher = HungarianMatcher.from_config(tiny_head_cfg())
    masks = torch.full((1, 3, 8, 8), -10.0)
    masks[0, 0, :4] = 10.0  # top half
    masks[0, 2, 4:] = 10.0  # bottom half
    target_masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    target_masks[0, 4:] = True
    target_masks[1, :4] = True
    outputs = {"pred_logits": torch.zeros(1, 3, 3), "pred_masks": masks}
    targets = [{"labels": torch.tensor([0, 1]), "masks": target_masks}]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ((rows, cols),) = matcher(outputs, targets)
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 2, 1: 0}
    assert rows.dtype == cols.dtype == torch.int64


def test_image_without_targets_matches_nothing():
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0, num_points=16)
    outputs = {"pred_logits": torch.randn(1, 4, 3), "pred_masks": torch.randn(1, 4, 6, 6)}
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 6, 6).bool()}]
    ((rows, cols),) = matcher(outputs, targets)
    assert rows.numel() == cols.numel() == 0


def test_bad_inputs_are_errors():
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0, num_points=16)
    outputs = {"pred_logits": torch.randn(1, 4, 3), "pred_masks": torch.randn(1, 4, 6, 6)}
    targets = [{"labels": torch.tensor([2]), "masks": torch.ones(1, 6, 6).bool()}]
    with pytest.raises(ValueError, match="out of range"):
        matcher(outputs, targets)
    with pytest.raises(ValueError, match="targets"):
        matcher(outputs, targets * 2)
    with pytest.raises(ValueError, match="non-zero"):
        HungarianMatcher(cost_class=0.0, cost_mask=0.0, cost_dice=0.0, num_points=16)


def test_random_points_are_drawn_per_image_as_the_original(monkeypatch):
    """One ``torch.rand(1, P, 2)`` per image, in batch order (the original's calls: on CUDA a
    single (B, P, 2) draw would give other points from the same seed), each image matched on
    its own draw."""
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0, num_points=7)
    outputs = {"pred_logits": torch.randn(3, 4, 3), "pred_masks": torch.randn(3, 4, H, W)}
    targets = [
        {"labels": torch.tensor([0, 1]), "masks": torch.rand(2, H, W) > 0.5} for _ in range(3)
    ]
    shapes, draws, used = [], [], []
    real_rand = torch.rand

    def spy(*size, **kwargs):
        shapes.append(tuple(size))
        draws.append(real_rand(*size, **kwargs))
        return draws[-1]

    real_cost = matcher.cost_matrix
    monkeypatch.setattr(torch, "rand", spy)
    monkeypatch.setattr(
        matcher, "cost_matrix", lambda *a: used.append(a[-1]) or real_cost(*a), raising=False
    )
    matcher(outputs, targets)
    assert shapes == [(1, 7, 2)] * 3
    for draw, points in zip(draws, used):
        assert torch.equal(points, draw[0])
