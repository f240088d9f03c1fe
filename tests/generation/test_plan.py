"""Names, prompts and part semantics of the original CLOUDS generate_txt_im.py (bac4305): for
j < num_images, image ``im_{j + part*num_images}_p{j % P}.png`` from prompt ``j % P``."""

import pytest

from clouds.generation.plan import image_file_name, image_seed, part_indices, plan_items

PROMPTS = ["a", "b", "c"]


def _original_names(num_images: int, part: int, num_prompts: int) -> list[tuple[str, int]]:
    """(file name, prompt index) of the original's loop, written out from its rule."""
    return [
        (f"im_{j + part * num_images}_p{j % num_prompts}.png", j % num_prompts)
        for j in range(num_images)
    ]


@pytest.mark.parametrize(("num_images", "part"), [(5, 0), (5, 1), (4, 2), (1, 3), (0, 4)])
def test_names_and_prompts_are_the_originals(num_images: int, part: int) -> None:
    items = plan_items(PROMPTS, num_images=num_images, part=part, base_seed=0)
    expected = _original_names(num_images, part, len(PROMPTS))
    assert [(it.file_name, it.prompt_index) for it in items] == expected
    assert [it.prompt for it in items] == [PROMPTS[k] for _, k in expected]


def test_prompt_order_restarts_in_each_part() -> None:
    second = plan_items(PROMPTS, num_images=4, part=1, base_seed=0)
    assert [it.index for it in second] == [4, 5, 6, 7]
    assert [it.prompt for it in second] == ["a", "b", "c", "a"]
    assert second[0].file_name == "im_4_p0.png"


def test_parts_with_one_count_never_collide() -> None:
    names = [
        it.file_name
        for part in range(4)
        for it in plan_items(PROMPTS, num_images=5, part=part, base_seed=0)
    ]
    assert len(set(names)) == 20
    assert {int(n.split("_")[1]) for n in names} == set(range(20))


@pytest.mark.parametrize(("part", "num_images"), [(-1, 5), (0, -1)])
def test_bad_parts_are_refused(part: int, num_images: int) -> None:
    with pytest.raises(ValueError, match="--"):
        part_indices(num_images, part)


def test_seed_depends_on_base_and_index_only() -> None:
    assert image_seed(0, 5) == image_seed(0, 5)
    seeds = {image_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000
    assert image_seed(1, 0) != image_seed(0, 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_items_carry_the_seed_of_their_set_index() -> None:
    items = plan_items(PROMPTS, num_images=3, part=2, base_seed=3)
    assert [it.seed for it in items] == [image_seed(3, i) for i in (6, 7, 8)]
    assert image_file_name(6, 0) == items[0].file_name == "im_6_p0.png"


def test_empty_prompt_list_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt"):
        plan_items([], num_images=1, part=0, base_seed=0)
