import pytest

from clouds.generation.plan import image_file_name, image_seed, plan_items, shard_indices

PROMPTS = ["a", "b", "c"]


@pytest.mark.parametrize("num_parts", [1, 2, 3, 7])
def test_shards_partition_all_indices(num_parts: int) -> None:
    parts = [set(shard_indices(20, k, num_parts)) for k in range(num_parts)]
    assert set().union(*parts) == set(range(20))
    assert sum(len(p) for p in parts) == 20


def test_shard_is_stable_when_num_images_grows() -> None:
    small = list(shard_indices(10, 1, 3))
    large = list(shard_indices(25, 1, 3))
    assert large[: len(small)] == small


@pytest.mark.parametrize(
    ("part", "num_parts", "num_images"), [(2, 2, 5), (-1, 2, 5), (0, 0, 5), (0, 1, -1)]
)
def test_bad_shards_are_refused(part: int, num_parts: int, num_images: int) -> None:
    with pytest.raises(ValueError, match="--"):
        shard_indices(num_images, part, num_parts)


def test_seed_depends_on_base_and_index_only() -> None:
    assert image_seed(0, 5) == image_seed(0, 5)
    seeds = {image_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000
    assert image_seed(1, 0) != image_seed(0, 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_items_carry_prompt_seed_and_name_of_their_global_index() -> None:
    whole = {
        it.index: it for it in plan_items(PROMPTS, num_images=8, part=0, num_parts=1, base_seed=3)
    }
    shard = plan_items(PROMPTS, num_images=8, part=1, num_parts=3, base_seed=3)
    assert [it.index for it in shard] == [1, 4, 7]
    for it in shard:
        assert it == whole[it.index]
        assert it.prompt == PROMPTS[it.index % 3]
        assert it.file_name == image_file_name(it.index, it.index % 3)
    assert shard[1].file_name == "000004_p001.png"


def test_empty_prompt_list_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt"):
        plan_items([], num_images=1, part=0, num_parts=1, base_seed=0)
