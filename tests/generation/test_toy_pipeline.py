"""The toy text-to-image generator: prompt parsing, determinism, no labels, and loading through
generate_txt_im's normal path (``--model-id`` of a saved folder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clouds.generation.cli import main as generation_main
from clouds.generation.pipeline import load_pipeline
from clouds.generation.toy_pipeline import (
    ToyTextToImagePipeline,
    parse_prompt,
    prompt_content,
    save_toy_pipeline,
)


def test_prompt_words_set_weather_light_layout_place_and_objects() -> None:
    attrs = parse_prompt(
        "A dashcam photo of a narrow old-town street in Tokyo at sunset in heavy rain with "
        "puddles, with a city bus, a cyclist and a chain-link fence"
    )
    assert attrs.weathers == ("rain",)
    assert attrs.light == 0  # sunset
    assert attrs.layout == "narrow"
    assert attrs.place == "Tokyo"
    assert {"bus", "rider", "fence"} <= attrs.objects
    content = prompt_content(attrs)
    assert content.bus > 0.5 and content.rider > 0.5 and content.fence > 0.6
    assert content.road_width[1] < 0.45  # narrower than the default
    assert parse_prompt("A foggy night in Paris").weathers == ("night", "fog")
    assert parse_prompt("a road").weathers == () and parse_prompt("a road").objects == frozenset()


def _draw(prompt: str, seed: int) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(seed)
    return ToyTextToImagePipeline()(prompt, height=32, width=64, generator=[generator]).images[0]


def test_images_are_a_function_of_prompt_and_seed() -> None:
    image = _draw("a street in Berlin at noon with cars", 3)
    assert image.shape == (32, 64, 3) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    np.testing.assert_array_equal(image, _draw("a street in Berlin at noon with cars", 3))
    assert not np.array_equal(image, _draw("a street in Berlin at noon with cars", 4))
    assert not np.array_equal(image, _draw("a street in Berlin at night with cars", 3))


def test_night_and_fog_prompts_change_the_look() -> None:
    seeds = range(6)
    clear = np.mean([_draw("a sunny street at noon", s).mean() for s in seeds])
    night = np.mean([_draw("a street at night", s).mean() for s in seeds])
    fog = np.mean([_draw("a street in dense fog", s).std() for s in seeds])
    assert night < 0.6 * clear
    assert fog < np.mean([_draw("a sunny street at noon", s).std() for s in seeds])


def test_bad_calls_name_the_problem() -> None:
    pipe = ToyTextToImagePipeline()
    with pytest.raises(ValueError, match="output_type"):
        pipe("a street", output_type="pil")
    with pytest.raises(ValueError, match="at least 16x16"):
        pipe("a street", height=8, width=64)
    with pytest.raises(ValueError, match="2 generators for 1 prompts"):
        pipe("a street", generator=[torch.Generator(), torch.Generator()])


def test_saved_folder_loads_like_a_diffusers_folder(tmp_path, prompt_file) -> None:
    folder = save_toy_pipeline(tmp_path / "toy")
    pipe = load_pipeline(str(folder), dtype=torch.float32, device=torch.device("cpu"))
    assert isinstance(pipe, ToyTextToImagePipeline)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "toy_pipeline.json").write_text("{}")
    with pytest.raises(ValueError, match="not a toy pipeline config"):
        load_pipeline(str(tmp_path / "broken"), dtype=torch.float32, device=torch.device("cpu"))
    argv = [
        "--input", str(prompt_file), "--folder", "toy", "--num-images", "3",
        "--model-id", str(folder), "--local-files-only", "--height", "32", "--width", "64",
        "--batch-size", "2", "--output-root", str(tmp_path / "out"), "--device", "cpu",
    ]  # fmt: skip
    assert generation_main(argv) == 0
    images = sorted((tmp_path / "out" / "toy" / "images").glob("*.png"))
    assert len(images) == 3
    # images only: no label file leaves the generator
    assert {p.suffix for p in (tmp_path / "out" / "toy").rglob("*") if p.is_file()} <= {
        ".png",
        ".jsonl",
    }
