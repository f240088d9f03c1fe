"""DINOv2 ViT (timm ``vit_large_patch14_dinov2.lvd142m``) as a LoRA-tuned VFM backbone."""

from __future__ import annotations

from clouds.modeling.backbone.vfm.timm_vit import TimmVFMBackbone
from clouds.modeling.registry import BACKBONE_REGISTRY

__all__ = ["DINOv2"]


@BACKBONE_REGISTRY.register()
class DINOv2(TimmVFMBackbone):
    """DINOv2 ViT; LoRA on the fused ``qkv`` projection of every block (DGVFM).

    timm's ViT attention calls ``self.qkv(x)`` as a module, so the LoRA wrapper is applied.
    """

    block_pattern = r"blocks\.\d+"
    default_lora_targets = ("attn.qkv",)
