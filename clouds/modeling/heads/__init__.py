"""Segmentation heads (importing registers them)."""

from clouds.modeling.heads.mask_former_head import MaskFormerHead

__all__ = ["MaskFormerHead"]
