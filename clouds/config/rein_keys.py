"""Keys of Rein (learnable tokens refining the output of every ViT block, optionally linked to the
queries of a mask-classification head), as the DGVFM repository's ``Reins`` / ``LoRAReins``
modules, and of the multi-stride feature maps its backbones return."""

from __future__ import annotations

from clouds.config.node import CfgNode

__all__ = ["REIN_TYPES", "add_rein_config"]

REIN_TYPES = ("Reins", "LoRAReins")


def add_rein_config(cfg: CfgNode) -> None:
    """Add the Rein keys to ``cfg`` (in place; needs MODEL and MODEL.VFM)."""
    _C = cfg
    _C.MODEL.REIN = CfgNode()
    _C.MODEL.REIN.ENABLED = False  # refine the VFM's blocks with Rein (the ViT frozen, Rein trains)
    _C.MODEL.REIN.TYPE = "Reins"  # "Reins" (full tokens) or "LoRAReins" (tokens = A @ B)
    _C.MODEL.REIN.TOKEN_LENGTH = 100  # learnable tokens per refined block
    _C.MODEL.REIN.LORA_DIM = 16  # rank of the token factors A @ B (LoRAReins only)
    _C.MODEL.REIN.LINK_TOKEN_TO_QUERY = True  # tokens -> (TOKEN_LENGTH, QUERY_DIMS) head queries
    _C.MODEL.REIN.QUERY_DIMS = 256  # width of the linked queries
    _C.MODEL.REIN.SCALE_INIT = 0.001  # initial value of the learnable scale of the refinement
    _C.MODEL.REIN.USE_SOFTMAX = True  # softmax(<feature, token> / sqrt(C)) over the tokens
    _C.MODEL.REIN.ZERO_MLP_DELTA_F = False  # zero-init the output MLP, fixed scale 1 (no scale)
    # 0-based blocks Rein refines; [] = the backbone's default (every block; SAM: its
    # global-attention blocks, as the original's ReinsSAMViT)
    _C.MODEL.REIN.LAYERS = []
    # bring the four stride-16 maps to strides 4, 8, 16, 32 (bilinear x4, x2, x1, x0.5), as the
    # original's DINOv2 ``resize_feat`` and its Rein EVA02 / SAM backbones do
    _C.MODEL.VFM.RESIZE_FEATURES = False
    # parameter-name fragments whose parameters get no weight decay (the mmengine custom_keys
    # with decay_mult 0 of the DGVFM configs: learnable_tokens, reins.scale, query_embed, ...)
    _C.SOLVER.NO_DECAY_NAME_KEYS = []
