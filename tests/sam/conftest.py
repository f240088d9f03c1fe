"""Shared SAM fixture: a tiny random SAM saved as a checkpoint."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from clouds.sam.build import build_tiny_sam


@pytest.fixture(scope="session")
def tiny_sam_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init SAM saved with torch.save, like the official checkpoints."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(build_tiny_sam().state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny SAMs run thousands of tiny ops: intra-op threads only add synchronisation."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
