"""Test-wide settings: CPU only, few threads, deterministic seeds."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("CLOUDS_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
