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


def test_every_overlap_is_dropped_as_the_original() -> None:
    masks, classes = _masks()
    fallback = torch.full((4, 6), 9, dtype=torch.long)
    merged = merge_masks(masks, classes, fallback, rm_intersection=True)
    expected = torch.full((4, 6), 9, dtype=torch.long)
    expected[:, :4] = 1
    expected[1:3, 4] = 2
    expected[1:3, 3] = 9  # claimed by classes 1 and 2
    expected[0, 0:2] = 9  # two class-1 masks overlap: dropped too
    torch.testing.assert_close(merged, expected)


def test_conflict_mode_drops_only_overlaps_of_different_classes() -> None:
    masks, classes = _masks()
    fallback = torch.full((4, 6), 9, dtype=torch.long)
    merged = merge_masks(masks, classes, fallback, rm_intersection=True, overlap="conflict")
    expected = torch.full((4, 6), 9, dtype=torch.long)
    expected[:, :4] = 1
    expected[1:3, 4] = 2
    expected[1:3, 3] = 9
    torch.testing.assert_close(merged, expected)


def test_unknown_overlap_mode_is_named() -> None:
    masks, classes = _masks()
    with pytest.raises(ValueError, match="SAM.OVERLAP"):
        merge_masks(
            masks,
            classes,
            torch.zeros(4, 6, dtype=torch.long),
            rm_intersection=True,
            overlap="some",
        )


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
