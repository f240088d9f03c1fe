"""tools/convert_original_checkpoint.py: an original CLOUDS checkpoint -> ours, same predictions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from clouds.modeling import build_model
from clouds.modeling.checkpoint import load_checkpoint, read_checkpoint
from clouds.predictor import Predictor
from tests.modeling.original_parity import (
    REPO,
    TINY_OVERRIDES,
    VARIANTS,
    load_fixture,
    parity_config,
    write_original_checkpoint,
)


def _convert_main():
    path = REPO / "tools" / "convert_original_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_original_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_converted_checkpoint_predicts_as_the_original(tmp_path: Path) -> None:
    variant = "resnet_text"
    parity_config(variant)  # registers the dataset's classes
    src = write_original_checkpoint(variant, tmp_path / "model_final.pth")
    dst = tmp_path / "converted.pth"
    toy = str(REPO / "configs" / "toy" / "Base-Toy-CLOUDS.yaml")
    argv = [str(src), str(dst), "--config-file", toy, *TINY_OVERRIDES, *VARIANTS[variant]]
    assert _convert_main()(argv) == 0
    fmt, state = read_checkpoint(dst)
    assert not fmt.complete and not any(k.startswith("backbone.") for k in state)
    assert torch.load(dst, weights_only=True)["iteration"] == 39999
    load_checkpoint(dst, build_model(parity_config(variant)))  # our own reader accepts it
    predictor = Predictor(parity_config(variant, ["MODEL.WEIGHTS", str(dst)]))
    fixture = load_fixture(variant)
    scores = predictor(fixture["image"].permute(1, 2, 0).numpy())
    torch.testing.assert_close(scores, fixture["sem_seg"], atol=1e-4, rtol=0)


def test_a_file_that_is_not_original_is_refused(tmp_path: Path) -> None:
    ours = tmp_path / "ours.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "config": ""}, ours)
    toy = str(REPO / "configs" / "toy" / "Base-Toy-CLOUDS.yaml")
    with pytest.raises(SystemExit):
        _convert_main()([str(ours), str(tmp_path / "out.pth"), "--config-file", toy])
    assert not (tmp_path / "out.pth").exists()
