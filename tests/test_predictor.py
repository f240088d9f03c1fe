"""Predictor: the fast-path keys of the config reach the model it builds and its forward pass."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from clouds.config import load_config
from clouds.data.datasets import register_all_datasets
from clouds.data.vfm_pipelines import VFMTestMapper
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


def test_vfm_predictor_resizes_as_the_vfm_test_mapper(tmp_path) -> None:
    """A VFM config's model sees the image the evaluation sees: aspect kept into the test
    scale with OpenCV bilinear, not the CLOUDS short-side rule."""
    register_all_datasets()
    cfg = load_config("configs/toy/dg_dinov2_light.yaml", ["TEST.MODE", "whole"])
    predictor = Predictor(cfg)
    seen = []
    predictor.model.register_forward_pre_hook(lambda _, args: seen.append(args[0][0]["image"]))
    image = _image()
    scores = predictor(image)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    mapped = VFMTestMapper.from_config(cfg, cfg.DATASETS.TEST[0])({"file_name": str(path)})
    assert torch.equal(seen[0].cpu(), mapped["image"])
    assert tuple(scores.shape[-2:]) == image.shape[:2]
