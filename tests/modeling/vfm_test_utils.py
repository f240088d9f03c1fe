"""Tiny VFM + LoRA configs shared by the VFM tests (every backbone family)."""

from __future__ import annotations

from collections.abc import Sequence

from clouds.config import CfgNode, get_cfg

# (backbone name, MODEL.VFM.MODEL_ID, MODEL.VFM.OUT_INDICES, MODEL.VFM.TINY_DEPTH); the tiny SAM
# keeps windowed blocks (0 and 4) between its global-attention blocks
FAMILIES = {
    "DINOv2": ("vit_large_patch14_dinov2.lvd142m", [0, 1, 2, 3], 4),
    "EVA02": ("eva02_large_patch14_224.mim_m38m", [0, 1, 2, 3], 4),
    "CLIPViT": ("ViT-L-14", [0, 1, 2, 3], 4),
    "SAMViT": ("vit_h", [1, 2, 3, 5], 6),
}


def tiny_vfm_cfg(backbone: str = "DINOv2", overrides: Sequence[str] = ()) -> CfgNode:
    """A VFMSegmentor config with a tiny random ``backbone``, LoRA rank 4 and small heads."""
    model_id, out_indices, depth = FAMILIES[backbone]
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "VFMSegmentor"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.VFM.MODEL_ID = model_id
    cfg.MODEL.VFM.OUT_INDICES = out_indices
    cfg.MODEL.VFM.TINY = True
    cfg.MODEL.VFM.TINY_DEPTH = depth
    cfg.MODEL.LORA.RANK = 4
    cfg.MODEL.LORA.ALPHA = 4
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 5
    cfg.MODEL.VFM_HEAD.HIDDEN_DIM = 128  # GroupNorm(32) on HIDDEN_DIM / 4, as the original
    cfg.MODEL.VFM_HEAD.REFINE_HEAD_DIM = 16
    cfg.MODEL.VFM_HEAD.REFINE_LAYERS = 1
    cfg.MODEL.VFM_HEAD.REFINE_HEADS = 4
    cfg.MODEL.VFM_HEAD.SUB_CROP = 32
    cfg.MODEL.VFM_HEAD.SUB_CROP_GRID = 16
    cfg.TEST.SLIDE.WINDOW = (32, 32)
    cfg.TEST.SLIDE.STRIDE = (32, 32)
    cfg.TEST.COARSE_TO_FINE.COARSE_SIZE = (32, 32)
    cfg.merge_from_list(list(overrides))
    return cfg
