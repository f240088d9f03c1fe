"""What the meta-architectures share: pixel normalisation, input checks, building the backbone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from clouds.config import CfgNode
from clouds.modeling.backbone.base import Backbone
from clouds.modeling.registry import BACKBONE_REGISTRY, registered_class

__all__ = [
    "SegmentorBase",
    "build_backbone",
    "output_size",
    "training_label",
]


class SegmentorBase(nn.Module):
    """A model fed detectron2-style input dicts of uint8 images, normalised by pixel mean / std."""

    def __init__(self, *, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
        """
        Args:
            pixel_mean: per-channel mean (0-255 RGB) subtracted from the images.
            pixel_std: per-channel std (0-255 RGB) dividing the images.
        """
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) -> normalised float (3, H, W) on the model's device."""
        return (image.to(self.device, non_blocking=True).float() - self.pixel_mean) / self.pixel_std


def training_label(x: Mapping[str, Any]) -> torch.Tensor:
    """The "sem_seg" label map (H, W) of a training input, checked against its image's size.

    Raises:
        KeyError: when the input has no label map.
        ValueError: naming the file when label and image sizes differ.
    """
    if "sem_seg" not in x:
        raise KeyError("Training inputs need a 'sem_seg' label map (H, W) int64")
    label = x["sem_seg"]
    if tuple(label.shape) != tuple(x["image"].shape[-2:]):
        raise ValueError(
            f"Label size {tuple(label.shape)} differs from image size "
            f"{tuple(x['image'].shape[-2:])} ({x.get('file_name', 'unnamed input')})"
        )
    return label


def output_size(x: Mapping[str, Any], height: int, width: int) -> tuple[int, int]:
    """The (height, width) an input asks its prediction at; default the given size."""
    return int(x.get("height", height)), int(x.get("width", width))


def build_backbone(cfg: CfgNode) -> Backbone:
    """The backbone MODEL.BACKBONE.NAME, built with torch's CPU generator seeded to
    MODEL.BACKBONE.INIT_SEED (the caller's random state is left as it was).

    Checkpoints leave frozen foundation models out and rebuild them from the config, so a
    foundation model without weights (tests, toy runs) must come out the same in every build:
    training, ``--eval-only``, the demo's predictor.

    Raises:
        ConfigError: nothing registered under that name, or a class that does not implement
            :class:`Backbone`.
    """
    backbone_cls = registered_class(
        BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME", Backbone, "backbone"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.MODEL.BACKBONE.INIT_SEED)
        return backbone_cls.from_config(cfg)
