"""Shared SAM fixture: a tiny random SAM saved as a checkpoint."""

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
