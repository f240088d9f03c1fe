"""EVA02 ViT (timm ``eva02_large_patch14_224.mim_m38m``) as a LoRA-tuned VFM backbone."""

from __future__ import annotations

from clouds.modeling.backbone.vfm.timm_vit import TimmVFMBackbone
from clouds.modeling.registry import BACKBONE_REGISTRY

__all__ = ["EVA02"]


@BACKBONE_REGISTRY.register()
class EVA02(TimmVFMBackbone):
    """EVA02 ViT (rotary + absolute positions); LoRA on q/k/v/out projections (DGVFM).

    timm builds EVA02-L with separate ``q_proj``/``k_proj``/``v_proj`` modules (``qkv_fused``
    off), each called as a module, so every LoRA wrapper is applied.
    """

    block_pattern = r"blocks\.\d+"
    default_lora_targets = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.proj")
