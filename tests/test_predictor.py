"""Predictor: the fast-path keys of the config reach the model it builds and its forward pass."""

from __future__ import annotations

import numpy as np
import torch

from clouds.config import load_config
from clouds.data.datasets import register_all_datasets
from clouds.engine.lightning_module import CloudsLightningModule
from clouds.predictor import Predictor

TOY = "configs/toy/Base-Toy-CLOUDS.yaml"


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)


def _conv_weight(model: torch.nn.Module) -> torch.Tensor:
    return next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_predictor_applies_channels_last_and_bf16_autocast() -> None:
    register_all_datasets()
    torch.manual_seed(0)
    plain = Predictor(load_config(TOY))
    torch.manual_seed(0)
    fast = Predictor(load_config(TOY, ["MODEL.CHANNELS_LAST", "True", "TEST.AMP.ENABLED", "True"]))
    assert _conv_weight(fast.model).is_contiguous(memory_format=torch.channels_last)
    assert not _conv_weight(plain.model).is_contiguous(memory_format=torch.channels_last)
    reference, scores = plain(_image()), fast(_image())
    assert scores.shape == reference.shape == (19, 48, 80)
    assert not torch.equal(scores, reference)  # bf16 arithmetic really ran
    agreement = (scores.argmax(0) == reference.argmax(0)).float().mean()
    assert agreement > 0.9


def test_lightning_module_builds_the_model_with_the_fast_paths() -> None:
    cfg = load_config(TOY, ["MODEL.CHANNELS_LAST", "True", "TEST.AMP.ENABLED", "True"])
    module = CloudsLightningModule.from_config(cfg)
    assert _conv_weight(module.model).is_contiguous(memory_format=torch.channels_last)
    assert module.acceleration.amp_dtype == torch.bfloat16
