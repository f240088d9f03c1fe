"""Segmentation heads (importing registers them)."""

from clouds.modeling.heads.mask_former_head import MaskFormerHead
from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.heads.vfmnet import VFMNet

__all__ = ["MGRNet", "MaskFormerHead", "VFMNet"]
