"""Shared toy datasets for the data tests: one converted toy tree per test session."""

from pathlib import Path

import pytest

from clouds.data.toy import make_converted_toy_datasets

TOY_NUM_IMAGES = 3
TOY_SIZE = (48, 96)


@pytest.fixture(scope="session")
def toy_spec() -> dict:
    """How ``toy_root`` was made: its seed, images per split and image size."""
    return {"seed": 0, "num_images": TOY_NUM_IMAGES, "size": TOY_SIZE}


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted toy datasets root (TOY_NUM_IMAGES per split, TOY_SIZE images); read-only."""
    return make_converted_toy_datasets(
        tmp_path_factory.mktemp("toy_datasets"), seed=0, num_images=TOY_NUM_IMAGES, size=TOY_SIZE
    )
