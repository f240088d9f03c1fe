"""Merging region masks into a label map."""

import pytest
import torch

from clouds.sam.merge import merge_masks


def _masks() -> tuple[torch.Tensor, torch.Tensor]:
    masks = torch.zeros(3, 4, 6, dtype=torch.bool)
    masks[0, :, :4] = True  # class 1, large, columns 0-3
    masks[1, 1:3, 3:5] = True  # class 2, overlaps class 1 at column 3
    masks[2, 0, 0:2] = True  # class 1 again, inside mask 0 (same class: no conflict)
    return masks, torch.tensor([1, 2, 1])


def test_without_intersection_removal_small_masks_win() -> None:
    masks, classes = _masks()
    fallback = torch.full((4, 6), 9, dtype=torch.long)
    merged = merge_masks(masks, classes, fallback, rm_intersection=False)
    expected = torch.full((4, 6), 9, dtype=torch.long)
    expected[:, :4] = 1
    expected[1:3, 3:5] = 2
    torch.testing.assert_close(merged, expected)


def test_intersection_of_different_classes_falls_back() -> None:
    masks, classes = _masks()
    fallback = torch.full((4, 6), 9, dtype=torch.long)
    merged = merge_masks(masks, classes, fallback, rm_intersection=True)
    expected = torch.full((4, 6), 9, dtype=torch.long)
    expected[:, :4] = 1
    expected[1:3, 4] = 2
    expected[1:3, 3] = 9  # claimed by classes 1 and 2
    torch.testing.assert_close(merged, expected)
    assert merged[0, 0] == 1  # two class-1 masks overlap there: not a conflict


def test_no_masks_returns_a_copy_of_the_fallback() -> None:
    fallback = torch.arange(12).view(3, 4)
    merged = merge_masks(
        torch.zeros(0, 3, 4, dtype=torch.bool),
        torch.zeros(0, dtype=torch.long),
        fallback,
        rm_intersection=True,
    )
    torch.testing.assert_close(merged, fallback)
    assert merged.data_ptr() != fallback.data_ptr()


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="expected"):
        merge_masks(
            torch.zeros(1, 3, 3, dtype=torch.bool),
            torch.tensor([0]),
            torch.zeros(4, 4, dtype=torch.long),
            rm_intersection=False,
        )
