"""Weighted multi-dataset, rare-class and inference samplers."""

from itertools import islice

import numpy as np
import pytest

from clouds.data.samplers import (
    InferenceSampler,
    RareClassSampler,
    WeightedMultiDatasetSampler,
    rare_class_probabilities,
)


def _draw(sampler, n: int) -> list[tuple[int, int]]:
    return list(islice(iter(sampler), n))


@pytest.mark.parametrize("target_factor", [2.0, 0.7, 0.2])
def test_ratio_matches_target_factor(target_factor: float) -> None:
    sampler = WeightedMultiDatasetSampler(
        dataset_sizes=[30, 50], weights=[1.0, target_factor], seed=3
    )
    draws = np.array([i for i, _ in _draw(sampler, 20000)])
    generated_share = (draws >= 30).mean()
    assert generated_share == pytest.approx(target_factor / (1 + target_factor), abs=0.015)
    assert draws.min() >= 0 and draws.max() < 80
    # every image of both datasets is reachable
    assert len(set(draws.tolist())) == 80


def test_ranks_draw_different_seeded_streams() -> None:
    kwargs = {"dataset_sizes": [100], "weights": [1.0], "seed": 5, "world_size": 2}
    r0 = _draw(WeightedMultiDatasetSampler(rank=0, **kwargs), 50)
    r1 = _draw(WeightedMultiDatasetSampler(rank=1, **kwargs), 50)
    assert r0 != r1
    assert r0 == _draw(WeightedMultiDatasetSampler(rank=0, **kwargs), 50)
    assert r0 != _draw(WeightedMultiDatasetSampler(rank=0, **{**kwargs, "seed": 6}), 50)


def test_resume_continues_the_same_stream() -> None:
    kwargs = {"dataset_sizes": [7, 9], "weights": [1.0, 2.0], "seed": 1, "chunk_size": 16}
    full = _draw(WeightedMultiDatasetSampler(**kwargs), 60)
    first = WeightedMultiDatasetSampler(**kwargs)
    _draw(first, 37)
    state = first.state_dict()
    assert state["num_samples"] == 37
    resumed = WeightedMultiDatasetSampler(**kwargs)
    resumed.load_state_dict(state)
    assert _draw(resumed, 23) == full[37:]
    other = WeightedMultiDatasetSampler(**{**kwargs, "seed": 2})
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_rare_class_sampler_prefers_rare_classes() -> None:
    counts = np.zeros((6, 3), dtype=np.int64)
    counts[:5, 0] = 1000  # common class in images 0-4
    counts[5, 1] = 10  # rare class only in image 5
    probs = rare_class_probabilities(counts, temperature=0.01)
    assert probs[2] == 0.0 and probs[1] > 0.99
    sampler = RareClassSampler(class_pixel_counts=counts, temperature=0.01, seed=0)
    draws = np.array([i for i, _ in _draw(sampler, 2000)])
    assert (draws == 5).mean() > 0.95
    # a high temperature approaches uniform class sampling
    flat = RareClassSampler(class_pixel_counts=counts, temperature=100.0, seed=0)
    share = (np.array([i for i, _ in _draw(flat, 4000)]) == 5).mean()
    assert share == pytest.approx(0.5, abs=0.05)


def test_inference_sampler_partitions_without_padding() -> None:
    shards = [list(InferenceSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert [len(s) for s in shards] == [4, 4, 2]


def test_build_train_sampler_from_config(tmp_path) -> None:
    from clouds.config import get_cfg
    from clouds.data.build import build_train_sampler, class_pixel_counts
    from clouds.utils.io import write_png_atomic

    dicts = []
    for i, value in enumerate([0, 0, 0, 7]):
        label = np.full((4, 4), value, dtype=np.uint8)
        label[0, 0] = 255
        write_png_atomic(label, tmp_path / f"{i}.png")
        dicts.append({"sem_seg_file_name": str(tmp_path / f"{i}.png")})
    dicts.append({"sem_seg_file_name": None})  # unlabelled: never drawn by rare-class sampling
    cache = tmp_path / "stats.json"
    counts = class_pixel_counts(dicts, num_classes=19, cache_file=str(cache))
    assert counts[0, 0] == 15 and counts[3, 7] == 15 and counts[4].sum() == 0
    assert cache.is_file()
    (tmp_path / "0.png").unlink()  # the cached table is used, labels are not read again
    assert (class_pixel_counts(dicts, num_classes=19, cache_file=str(cache)) == counts).all()

    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.DATASETS.TARGET_FACTOR = 0.2
    weighted = build_train_sampler(cfg, [dicts[:4], dicts[4:]], rank=0, world_size=1)
    assert isinstance(weighted, WeightedMultiDatasetSampler)
    assert weighted.probabilities.tolist() == pytest.approx([1 / 1.2, 0.2 / 1.2])
    cfg.DATALOADER.SAMPLER_TRAIN = "RareClassSampler"
    cfg.OUTPUT_DIR = str(tmp_path / "rcs")
    (tmp_path / "0.png").write_bytes((tmp_path / "1.png").read_bytes())
    rare = build_train_sampler(cfg, [dicts], rank=0, world_size=1)
    draws = [i for i, _ in _draw(rare, 500)]
    assert 4 not in draws and np.mean(np.array(draws) == 3) > 0.9
