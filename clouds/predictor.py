"""Predict class scores for one RGB image with any registered model (detectron2's
DefaultPredictor): build from the config, load ``MODEL.WEIGHTS``, resize like the test mapper,
produce scores at the original size."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import Metadata, MetadataCatalog, dataset_class_names
from clouds.data.mappers import SemSegTestMapper
from clouds.data.transforms.geometric import resize_image
from clouds.data.vfm_pipelines import MAPPER_NAME as VFM_MAPPER_NAME
from clouds.data.vfm_pipelines import VFMTestMapper
from clouds.modeling import build_model
from clouds.modeling.acceleration import AccelerationSettings, apply_acceleration, autocast
from clouds.modeling.checkpoint import foundation_weights_context, load_model_weights

__all__ = ["Predictor", "default_dataset", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``MODEL.DEVICE`` as a torch device; "cuda" falls back to the CPU when no GPU is present."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE=%s but no GPU is available; running on the CPU", name)
        return torch.device("cpu")
    return device


def _test_resizer(cfg: CfgNode, dataset_name: str) -> SemSegTestMapper | VFMTestMapper:
    """The evaluation mapper whose ``output_size`` gives the model's input size."""
    if cfg.INPUT.DATASET_MAPPER_NAME != VFM_MAPPER_NAME:
        return SemSegTestMapper.from_config(cfg)
    tests = list(cfg.DATASETS.TEST)
    if not tests:
        raise ConfigError("The VFM pipeline needs DATASETS.TEST (its test scales follow it)")
    return VFMTestMapper.from_config(cfg, dataset_name if dataset_name in tests else tests[0])


def default_dataset(cfg: CfgNode) -> str:
    """The dataset whose classes are predicted by default: DATASETS.TEST[0], else TRAIN[0]."""
    return (cfg.DATASETS.TEST or cfg.DATASETS.TRAIN)[0]


class Predictor:
    """Single-image inference of the model described by ``cfg``.

    The image is resized exactly as in evaluation: short side ``INPUT.MIN_SIZE_TEST`` (long side
    at most ``INPUT.MAX_SIZE_TEST``), or for the VFM pipeline aspect-kept into the dataset's
    ``INPUT.VFM_PIPELINE.TEST_SCALES`` entry (the first test set's when the dataset is not a
    test set); the model returns scores at the original size. Classes are those of ``dataset_name`` (default ``DATASETS.TEST[0]``, else
    ``DATASETS.TRAIN[0]``): an open-vocabulary model predicts whatever class list that
    dataset's metadata holds.
    """

    def __init__(self, cfg: CfgNode, *, dataset_name: str | None = None) -> None:
        """
        Args:
            cfg: full config; MODEL.WEIGHTS ("" keeps the freshly built weights; any format of
                :mod:`clouds.modeling.checkpoint`, an original CLOUDS ``.pth`` included, whose
                frozen CLIP is then not downloaded) and MODEL.DEVICE are used.
            dataset_name: registered dataset whose classes to predict.
        """
        self.cfg = cfg.clone()
        self.dataset_name = dataset_name or default_dataset(cfg)
        self.metadata: Metadata = MetadataCatalog.get(self.dataset_name)
        self.class_names: list[str] = dataset_class_names(self.dataset_name)
        self.device = resolve_device(cfg.MODEL.DEVICE)
        with foundation_weights_context(cfg.MODEL.WEIGHTS):
            self.model = build_model(cfg)
        if cfg.MODEL.WEIGHTS:
            load_model_weights(
                self.model, cfg.MODEL.WEIGHTS, trust_pickle=cfg.MODEL.WEIGHTS_TRUST_PICKLE
            )
        self.model.to(self.device).eval()
        self.acceleration = AccelerationSettings.from_config(cfg)
        apply_acceleration(self.model, self.acceleration)
        self.resizer = _test_resizer(cfg, self.dataset_name)
        self.input_format = cfg.INPUT.FORMAT

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, **extra_inputs: Any) -> torch.Tensor:
        """Class scores of one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            extra_inputs: more keys for the model's input dict (e.g. "file_name").

        Returns:
            (K, H, W) float32 scores on the CPU, K = ``len(self.class_names)``.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"Predictor expects an (H, W, 3) uint8 RGB image, got shape {image.shape} "
                f"and dtype {image.dtype}"
            )
        height, width = image.shape[:2]
        if self.input_format == "BGR":
            image = image[:, :, ::-1]
        size = self.resizer.output_size(height, width)
        if isinstance(self.resizer, VFMTestMapper):  # OpenCV bilinear, as the VFM test pipeline
            image = resize_image(np.ascontiguousarray(image), size)
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1)
        if tuple(tensor.shape[-2:]) != size:
            tensor = F.resize(tensor, list(size), antialias=True)
        inputs = {
            **extra_inputs,
            "image": tensor.to(self.device).contiguous(),
            "height": height,
            "width": width,
            "dataset_name": self.dataset_name,
            "class_names": self.class_names,
        }
        with autocast(self.device, self.acceleration.amp_dtype):
            scores = self.model([inputs])[0]["sem_seg"]
        if tuple(scores.shape[-2:]) != (height, width):
            raise RuntimeError(
                f"{self.cfg.MODEL.META_ARCHITECTURE} returned scores of size "
                f"{tuple(scores.shape[-2:])} for an image of {height}x{width}"
            )
        return scores.float().cpu()
