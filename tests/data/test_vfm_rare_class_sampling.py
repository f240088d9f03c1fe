"""Rare-class sampling as DGVFM's DGDataset (rein/datasets/uda_dataset.py): class probabilities
softmax((1 - f) / T), candidates with more than the minimum pixels of the class, and the drawn
class handed to the mapper (which redraws crops: see test_vfm_pipelines.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clouds.data.build import MappedDataset
from clouds.data.samplers import RareClassSampler, rare_class_probabilities


def _draw(sampler: RareClassSampler, n: int) -> list[tuple[int, int, int]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_probabilities_are_softmax_of_one_minus_frequency() -> None:
    counts = np.array([[600, 300, 0], [0, 100, 0]])
    freq = np.array([0.6, 0.4])
    expected = torch.softmax(torch.tensor((1 - freq) / 0.5), dim=0).numpy()
    np.testing.assert_allclose(rare_class_probabilities(counts, 0.5)[:2], expected)
    assert rare_class_probabilities(counts, 0.5)[2] == 0.0


def test_candidates_need_more_than_min_pixels() -> None:
    counts = np.zeros((4, 2), dtype=np.int64)
    counts[:, 0] = [3000, 3001, 5000, 10]  # class 0: exactly 3000 is not enough
    counts[:, 1] = [9000, 0, 0, 3500]
    sampler = RareClassSampler(class_pixel_counts=counts, temperature=1.0, min_pixels=3000, seed=0)
    assert sampler.images_of_class[0].tolist() == [1, 2]
    assert sampler.images_of_class[1].tolist() == [0, 3]
    draws = _draw(sampler, 400)
    assert {(i, c) for i, _, c in draws} == {(1, 0), (2, 0), (0, 1), (3, 1)}
    # every image of a class with any pixels is a candidate at min_pixels 0
    loose = RareClassSampler(class_pixel_counts=counts, temperature=0.01, seed=0)
    assert loose.images_of_class[0].tolist() == [0, 1, 2, 3]


def test_class_without_candidates_is_an_error() -> None:
    counts = np.array([[5000, 20], [4000, 10]])
    with pytest.raises(ValueError, match="more than 3000 pixels of class 1"):
        RareClassSampler(class_pixel_counts=counts, temperature=0.01, min_pixels=3000, seed=0)


def test_stream_resumes_with_the_same_classes() -> None:
    counts = np.array([[5000, 0, 4000], [0, 3500, 9000], [7000, 3100, 0]])
    kwargs = {"class_pixel_counts": counts, "temperature": 0.1, "min_pixels": 3000, "seed": 3}
    full = _draw(RareClassSampler(**kwargs, chunk_size=16), 40)
    first = RareClassSampler(**kwargs, chunk_size=16)
    _draw(first, 21)
    resumed = RareClassSampler(**kwargs, chunk_size=16)
    resumed.load_state_dict(first.state_dict())
    assert _draw(resumed, 19) == full[21:]


def test_mapped_dataset_hands_the_class_to_the_mapper() -> None:
    dataset = MappedDataset([{"file_name": "a"}, {"file_name": "b"}], lambda d: dict(d))
    assert dataset[(1, 7, 4)] == {"file_name": "b", "rare_class": 4}
    assert dataset[(0, 7)] == {"file_name": "a"}
    assert "rare_class" not in dataset.dicts[1]
