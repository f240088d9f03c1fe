"""A tiny random Stable Diffusion pipeline saved to disk (``clouds.generation.tiny``), and prompt
files, for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds.generation.tiny import save_tiny_sd_pipeline

PROMPTS = [
    "a rainy street with cars and a bus at night",
    "a sunny avenue with cyclists, trees and traffic lights",
    "a foggy crossing with pedestrians and a tram",
]


@pytest.fixture(scope="session")
def tiny_sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny_sd") / "pipeline")


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path
