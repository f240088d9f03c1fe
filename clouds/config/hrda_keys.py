"""Keys of DGVFM's other heads: HRDA's multi-resolution training and inference (MODEL.HRDA) and
DAFormer's context head (MODEL.DAFORMER). The SegFormer head and the frozen-backbone segmentors
need none of their own (MODEL.VFM_HEAD.LIGHT_HEAD_NAME "SegFormerHead"; MODEL.LORA.ENABLED
False)."""

from __future__ import annotations

from clouds.config.node import CfgNode

__all__ = ["add_hrda_config"]


def add_hrda_config(cfg: CfgNode) -> None:
    """Add the HRDA and DAFormer keys to ``cfg`` (in place; called by ``add_dgvfm_config``)."""
    _C = cfg
    _C.MODEL.HRDA = CfgNode()
    _C.MODEL.HRDA.SCALES = [1.0, 0.5]  # detail and context image scales (any order)
    _C.MODEL.HRDA.HR_CROP_SIZE = (512, 512)  # detail crop (training) and detail windows (test)
    _C.MODEL.HRDA.CROP_COORD_DIVISIBLE = 8  # detail crop offsets are multiples of it
    _C.MODEL.HRDA.LR_LOSS_WEIGHT = 0.0  # weight of the context-logits loss
    _C.MODEL.HRDA.HR_LOSS_WEIGHT = 0.1  # weight of the detail-logits loss (fused: 1 - both)
    _C.MODEL.HRDA.HR_SLIDE_INFERENCE = True  # test: detail features over HR_CROP_SIZE windows
    _C.MODEL.HRDA.HR_SLIDE_OVERLAPPING = True  # those windows overlap by half
    _C.MODEL.HRDA.CONTEXT_ONLY_SLIDE = False  # test windows by the context head alone
    _C.MODEL.HRDA.HEAD_NAME = "VFMNet"  # VFM_HEAD_REGISTRY name of the context head
    _C.MODEL.HRDA.ATTENTION_HEAD_NAME = "AttentionHead"  # ... of the scale-attention head
    _C.MODEL.HRDA.ATTENTION_CLASSWISE = True  # one attention map per class (else one for all)

    _C.MODEL.DAFORMER = CfgNode()
    _C.MODEL.DAFORMER.EMBED_DIM = 256  # per-map linear embedding width
    _C.MODEL.DAFORMER.FUSION = "aspp"  # "aspp" (depthwise-separable ASPP) or "conv" (1x1)
    _C.MODEL.DAFORMER.DILATIONS = [1, 6, 12, 18]  # ASPP dilations
    _C.MODEL.DAFORMER.NORM = "BN"  # norm of the fusion blocks ("BN" or "GN")
    _C.MODEL.DAFORMER.ATTENTION_EMBED_DIM = 256  # embedding and fused width of its attention head
