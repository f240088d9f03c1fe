"""Training (detectron2's plain and repeat-factor), weighted multi-dataset, rare-class and
inference samplers.

Fixture ``tests/fixtures/clouds_data/detectron2_samplers.json`` was made by running detectron2's
own samplers (facebookresearch/detectron2 at 02b5c4e, ``data/samplers/distributed_sampler.py``)
outside this project, seed 7: ``RepeatFactorTrainingSampler`` with the repeat factors the
original CLOUDS's "WeightedTrainingSampler" builds (1.0 per source image, TARGET_FACTOR per
generated image, source first) for GTA5 (24,904 + 5,000, 2.0), SYNTHIA (9,400 + 5,000, 0.7) and
Cityscapes (2,975 + 5,000, 0.2): the generated images among the first 100,000 draws, the first
300 indices, and the first 100 of rank 1 of 2; ``TrainingSampler(24904)``: its first 100
indices, where index 24903 comes, and the first 10 of the second epoch.
"""

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from clouds.data.samplers import (
    InferenceSampler,
    RareClassSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    WeightedMultiDatasetSampler,
    rare_class_probabilities,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "clouds_data" / "detectron2_samplers.json"


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
    draws = np.array([i for i, *_ in _draw(sampler, 2000)])
    assert (draws == 5).mean() > 0.95
    # a high temperature approaches uniform class sampling
    flat = RareClassSampler(class_pixel_counts=counts, temperature=100.0, seed=0)
    share = (np.array([i for i, *_ in _draw(flat, 4000)]) == 5).mean()
    assert share == pytest.approx(0.5, abs=0.05)


def test_inference_sampler_partitions_without_padding() -> None:
    shards = [list(InferenceSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert [len(s) for s in shards] == [4, 4, 2]


def test_build_train_sampler_from_config(tmp_path) -> None:
    from clouds.config import ConfigError, get_cfg
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
    plain = build_train_sampler(cfg, [dicts[:4], dicts[4:]], rank=0, world_size=1)
    assert isinstance(plain, TrainingSampler) and plain.size == 5
    cfg.DATASETS.TARGET_FACTOR = 0.2
    cfg.DATASETS.SOURCE_FACTOR = 1.5
    cfg.DATALOADER.SAMPLER_TRAIN = "WeightedTrainingSampler"
    repeat = build_train_sampler(cfg, [dicts[:4], dicts[4:]], rank=0, world_size=1)
    assert isinstance(repeat, RepeatFactorTrainingSampler)
    factors = (repeat.int_part + repeat.frac_part).tolist()
    assert factors == pytest.approx([1.5] * 4 + [0.2])  # the unlabelled set is the generated one
    cfg.DATALOADER.SAMPLER_TRAIN = "WeightedMultiDatasetSampler"
    weighted = build_train_sampler(cfg, [dicts[:4], dicts[4:]], rank=0, world_size=1)
    assert isinstance(weighted, WeightedMultiDatasetSampler)
    assert weighted.probabilities.tolist() == pytest.approx([1.5 / 1.7, 0.2 / 1.7])
    cfg.DATALOADER.SAMPLER_TRAIN = "Nope"
    with pytest.raises(ConfigError, match="Nope"):
        build_train_sampler(cfg, [dicts], rank=0, world_size=1)
    cfg.DATALOADER.SAMPLER_TRAIN = "RareClassSampler"
    cfg.DATALOADER.RARE_CLASS_MIN_PIXELS = 0  # the labels here are 4x4
    cfg.OUTPUT_DIR = str(tmp_path / "rcs")
    (tmp_path / "0.png").write_bytes((tmp_path / "1.png").read_bytes())
    rare = build_train_sampler(cfg, [dicts], rank=0, world_size=1)
    draws = [i for i, *_ in _draw(rare, 500)]
    assert 4 not in draws and np.mean(np.array(draws) == 3) > 0.9


@pytest.fixture(scope="module")
def detectron2_streams() -> dict:
    with open(FIXTURE) as f:
        return json.load(f)


def test_repeat_factor_sampler_equals_detectron2(detectron2_streams) -> None:
    for case in detectron2_streams["repeat_factor"]:
        n_source, n_generated = case["num_source"], case["num_generated"]
        factors = [case["source_factor"]] * n_source + [case["target_factor"]] * n_generated
        sampler = RepeatFactorTrainingSampler(repeat_factors=factors, seed=case["seed"])
        draws = np.array([i for i, _ in _draw(sampler, case["draws"])])
        assert draws[:300].tolist() == case["first"], case["source"]
        assert int((draws >= n_source).sum()) == case["generated_drawn"], case["source"]
        # the rule: generated share = TF * n_generated / (TF * n_generated + SF * n_source)
        weight = case["target_factor"] * n_generated
        rule = weight / (weight + case["source_factor"] * n_source)
        assert (draws >= n_source).mean() == pytest.approx(rule, abs=0.005)
        rank1 = RepeatFactorTrainingSampler(
            repeat_factors=factors, seed=case["seed"], rank=1, world_size=2
        )
        assert [i for i, _ in _draw(rank1, 100)] == case["rank1_of_2_first"]


def test_training_sampler_equals_detectron2(detectron2_streams) -> None:
    ref = detectron2_streams["training_sampler"]
    draws = [i for i, _ in _draw(TrainingSampler(size=ref["size"], seed=ref["seed"]), 24914)]
    assert draws[:100] == ref["first"]
    assert draws.index(ref["size"] - 1) == ref["index_24903_at"]
    assert sorted(draws[: ref["size"]]) == list(range(ref["size"]))  # one epoch: each image once
    assert draws[ref["size"] :] == ref["next_epoch"]


@pytest.mark.parametrize("world_size", [1, 2])
def test_epoch_samplers_resume_and_shard(world_size: int) -> None:
    kwargs = {"repeat_factors": [1.0] * 7 + [0.5] * 9, "seed": 3, "world_size": world_size}
    streams = [_draw(RepeatFactorTrainingSampler(rank=r, **kwargs), 60) for r in range(world_size)]
    merged = [None] * (60 * world_size)
    for r, stream in enumerate(streams):
        merged[r::world_size] = stream
    # the ranks share one stream: rank r holds its positions r, r + w, ... (seeds included)
    assert merged == _draw(
        RepeatFactorTrainingSampler(repeat_factors=kwargs["repeat_factors"], seed=3),
        60 * world_size,
    )
    first = RepeatFactorTrainingSampler(rank=world_size - 1, **kwargs)
    _draw(first, 37)
    state = first.state_dict()
    assert state["num_samples"] == 37
    resumed = RepeatFactorTrainingSampler(rank=world_size - 1, **kwargs)
    resumed.load_state_dict(state)
    assert _draw(resumed, 23) == streams[-1][37:]
    with pytest.raises(ValueError, match="seed"):
        RepeatFactorTrainingSampler(**{**kwargs, "seed": 4}).load_state_dict(state)
    with pytest.raises(ValueError, match="Repeat factors"):
        RepeatFactorTrainingSampler(repeat_factors=[0.0, -1.0], seed=0)
