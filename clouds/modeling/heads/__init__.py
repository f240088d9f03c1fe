"""Segmentation heads (importing registers them)."""

from clouds.modeling.heads.attention_head import AttentionHead
from clouds.modeling.heads.daformer_head import DAFormerAttentionHead, DAFormerHead
from clouds.modeling.heads.dino_head import DINOHead
from clouds.modeling.heads.mask2former import Mask2FormerHead
from clouds.modeling.heads.mask_former_head import MaskFormerHead
from clouds.modeling.heads.mgrnet import MGRNet
from clouds.modeling.heads.segformer_head import SegFormerHead
from clouds.modeling.heads.vfmnet import VFMNet

__all__ = [
    "AttentionHead",
    "DAFormerAttentionHead",
    "DAFormerHead",
    "DINOHead",
    "MGRNet",
    "Mask2FormerHead",
    "MaskFormerHead",
    "SegFormerHead",
    "VFMNet",
]
