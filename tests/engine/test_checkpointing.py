"""Lightning's checkpoint IO goes through the checkpoint package: atomic writes, weights-only
reads whose errors name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clouds.engine.checkpointing import AtomicCheckpointIO


def test_a_training_checkpoint_round_trips(tmp_path: Path) -> None:
    checkpoint = {
        "state_dict": {"head.weight": torch.arange(6.0).view(2, 3)},
        "global_step": 7,
        "optimizer_states": [{"state": {0: {"step": torch.tensor(7.0)}}, "param_groups": []}],
        "loops": {"fit_loop": {"epoch_progress": {"total": {"completed": 1}}}},
    }
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint, tmp_path / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "last.ckpt")
    assert loaded.keys() == checkpoint.keys() and loaded["global_step"] == 7
    torch.testing.assert_close(loaded["state_dict"], checkpoint["state_dict"])
    assert loaded["loops"] == checkpoint["loops"]


def test_unreadable_checkpoints_are_named(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, tmp_path / "whole.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((tmp_path / "whole.ckpt").read_bytes()[:100])
    with pytest.raises(
        ValueError, match=rf"--resume checkpoint {truncated} is truncated or corrupt"
    ):
        io.load_checkpoint(truncated)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        io.load_checkpoint(tmp_path / "missing.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(ValueError, match="list.ckpt is not a training checkpoint"):
        io.load_checkpoint(tmp_path / "list.ckpt")
    with pytest.raises(TypeError, match="weights_only only"):
        io.load_checkpoint(tmp_path / "whole.ckpt", weights_only=False)
