"""CLIP weights read by open_clip from MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS go through the one
reader: a whole file loads, a bad one is one line naming the key (never torch's advice)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clouds.modeling.backbone.clip import create_clip_model, register_model_configs
from clouds.utils.weights_file import WeightsFileError

KEY = "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS"


def test_a_whole_file_loads_and_a_corrupt_one_names_the_key(tmp_path: Path) -> None:
    register_model_configs()
    model = create_clip_model("clouds_tiny_convnext")
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    loaded = create_clip_model("clouds_tiny_convnext", str(path))
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    data = bytearray(path.read_bytes())
    start = data.index(b"data.pkl") + 60  # inside the pickle: only reading finds it
    data[start : start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError) as info:
        create_clip_model("clouds_tiny_convnext", str(path))
    message = str(info.value)
    assert message.startswith(f"{KEY} {path} is truncated or corrupt (")
    assert "weights_only" not in message and "\n" not in message
    path.write_bytes(bytes(data[:-2000]))  # cut short: found before open_clip builds anything
    with pytest.raises(WeightsFileError, match="the zip directory that ends a PyTorch file"):
        create_clip_model("clouds_tiny_convnext", str(path))
