"""The contracts the meta-architectures rely on for their heads, instead of probing attributes.

- :class:`MaskClassificationHead` (CLOUDS' ``sem_seg_head``): ``forward(features,
  text_classifier=None, num_templates=None)`` -> {"pred_logits" (B, Q, K + 1), "pred_masks"
  (B, Q, H/4, W/4), "aux_outputs"}; says whether it classifies against text embeddings and, for
  a linear class head, how many classes it predicts.
- :class:`DecodeHead` (the VFM segmentor's ``decode_head``): ``forward(features)`` -> class
  logits (B, K, 4h, 4w) of stride-16 maps (B, C, h, w); inputs must be multiples of the
  backbone's size divisibility times ``size_divisibility_factor``; a head with its own training
  losses (``has_own_losses``) provides ``losses(features, labels)``, the others are trained with
  the segmentor's cross-entropy on their logits.
- :class:`RefinementHead` (the VFM segmentor's ``aux_decoder``): ``forward(features,
  coarse_logits, *, mask=False)`` -> refined logits (B, K, h, w); says whether it masks image
  tokens in training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["DecodeHead", "MaskClassificationHead", "RefinementHead", "check_head", "map_args"]


class MaskClassificationHead(nn.Module, ABC):
    """Per-query class logits and mask logits from backbone features (module docstring)."""

    @property
    @abstractmethod
    def uses_text_classifier(self) -> bool:
        """Whether classes are scored against text embeddings passed to ``forward``."""

    @property
    @abstractmethod
    def num_classes(self) -> int | None:
        """K of a linear class head; None when the class list is the text classifier's."""


class DecodeHead(nn.Module, ABC):
    """Dense class logits (B, K, 4h, 4w) from named stride-16 maps (module docstring)."""

    # the head's own feature pyramid may downsample further (e.g. a stride-32 level: 2)
    size_divisibility_factor: ClassVar[int] = 1
    has_own_losses: ClassVar[bool] = False
    # forward / logits_at / losses take Rein's linked queries as ``queries=`` (the segmentor
    # passes ``VFMBackbone.link_queries()`` when the backbone links them)
    takes_link_queries: ClassVar[bool] = False

    def logits_at(
        self, features: Mapping[str, torch.Tensor], size: Sequence[int], **head_inputs: torch.Tensor
    ) -> torch.Tensor:
        """Class logits (B, K, *size): ``forward``'s logits resized bilinearly in one step."""
        logits = self(features, **head_inputs)
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)

    def losses(
        self, features: Mapping[str, torch.Tensor], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted training losses for labels (B, H, W) (only when ``has_own_losses``)."""
        raise NotImplementedError(f"{type(self).__name__} is trained with the segmentor's loss")


class RefinementHead(nn.Module, ABC):
    """Refined logits of a region from its maps and coarse logits (module docstring)."""

    @property
    @abstractmethod
    def masks_tokens(self) -> bool:
        """Whether training masks image tokens (``forward(..., mask=True)`` has an effect)."""


def map_args(input_shape: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """``in_features`` (every backbone map, in the backbone's order) and ``in_channels`` (their
    widths): the ``__init__`` arguments of a head that reads all the maps."""
    return {
        "in_features": list(input_shape),
        "in_channels": [s.channels for s in input_shape.values()],
    }


def check_head(head: nn.Module, contract: type[nn.Module], role: str) -> None:
    """Raise TypeError naming ``role`` when ``head`` does not implement ``contract``."""
    if not isinstance(head, contract):
        raise TypeError(
            f"{role} is a {type(head).__name__}, which does not implement the "
            f"{contract.__module__}.{contract.__name__} contract"
        )
