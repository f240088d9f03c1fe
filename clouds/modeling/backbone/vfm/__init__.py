"""Vision foundation models (DINOv2, EVA02, CLIP ViT, SAM ViT) with LoRA, registered as backbones."""

from clouds.modeling.backbone.vfm.base import LoraSettings, TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.clip_vit import CLIPViT
from clouds.modeling.backbone.vfm.dinov2 import DINOv2
from clouds.modeling.backbone.vfm.eva02 import EVA02
from clouds.modeling.backbone.vfm.sam_vit import SAMViT

__all__ = ["CLIPViT", "DINOv2", "EVA02", "LoraSettings", "SAMViT", "TinySettings", "VFMBackbone"]
