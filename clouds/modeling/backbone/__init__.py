"""Backbones (importing registers them) and the contract they all meet (:class:`Backbone`)."""

from clouds.modeling.backbone.base import Backbone
from clouds.modeling.backbone.clip import CLIP

__all__ = ["CLIP", "Backbone"]
