"""The contract every backbone of BACKBONE_REGISTRY meets (CLIP and the VFM + LoRA backbones).

The meta-architectures rely on it instead of probing attributes:

- ``forward(images)``: normalised images (B, 3, H, W), H and W multiples of
  ``size_divisibility`` -> {name: (B, C, H / stride, W / stride)} as ``output_shape()`` says;
- ``frozen``: the foundation model's own weights stay fixed (eval mode, no gradients);
- ``has_text_encoder`` and ``encode_text(texts)`` -> (N, E) when the backbone embeds text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, ABC):
    """Base class of every registered backbone (see the module docstring for the contract)."""

    has_text_encoder: bool = False
    frozen: bool = True

    @property
    @abstractmethod
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this."""

    @abstractmethod
    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of each output of ``forward``, by name."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, E) embeddings of ``texts`` (only when ``has_text_encoder``)."""
        raise NotImplementedError(f"{type(self).__name__} has no text encoder")
