"""Backbones (importing registers them)."""

from clouds.modeling.backbone.clip import CLIP

__all__ = ["CLIP"]
