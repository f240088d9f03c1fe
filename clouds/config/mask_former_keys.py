"""Keys of the Mask2Former mask-classification head (pixel decoder, transformer decoder, losses).

Read by CLOUDS and by the VFM system's "mask_former" and "mask2former" heads
(``MODEL.VFM_HEAD.TYPE``).
"""

from __future__ import annotations

from clouds.config.node import CfgNode

__all__ = ["FIXED_VALUES", "add_mask_former_config"]

# Keys the original configs set that nothing here reads: only the value we implement is accepted.
FIXED_VALUES = {"MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True}


def add_mask_former_config(cfg: CfgNode) -> None:
    """Add the Mask2Former head keys to ``cfg`` (in place; needs :func:`add_base_config` first)."""
    _C = cfg
    _C.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]  # backbone outputs used
    _C.MODEL.SEM_SEG_HEAD.CONVS_DIM = 256  # pixel decoder hidden channels
    _C.MODEL.SEM_SEG_HEAD.MASK_DIM = 256  # channels of the per-pixel mask embeddings
    _C.MODEL.SEM_SEG_HEAD.NORM = "GN"  # norm of the pixel decoder convolutions
    _C.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4  # stride of the mask features
    _C.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "MSDeformAttnPixelDecoder"  # PIXEL_DECODER_REGISTRY
    _C.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 6  # deformable encoder layers
    _C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = [
        "res3",
        "res4",
        "res5",
    ]  # levels
    _C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 4  # sampling points per level
    _C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 8  # attention heads
    _C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = 1024  # encoder FFN width
    _C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DROPOUT = 0.0  # encoder dropout

    _C.MODEL.MASK_FORMER = CfgNode()
    _C.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"  # registry
    _C.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "multi_scale_pixel_decoder"  # decoder input
    _C.MODEL.MASK_FORMER.DEEP_SUPERVISION = True  # losses on every decoder layer
    _C.MODEL.MASK_FORMER.NO_OBJECT_WEIGHT = 0.1  # cross-entropy weight of the no-object class
    _C.MODEL.MASK_FORMER.CLASS_WEIGHT = 2.0  # classification loss weight
    _C.MODEL.MASK_FORMER.MASK_WEIGHT = 5.0  # sigmoid BCE mask loss weight
    _C.MODEL.MASK_FORMER.DICE_WEIGHT = 5.0  # dice loss weight
    _C.MODEL.MASK_FORMER.NHEADS = 8  # decoder attention heads
    _C.MODEL.MASK_FORMER.DROPOUT = 0.0  # decoder dropout
    _C.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 2048  # decoder FFN width
    _C.MODEL.MASK_FORMER.DEC_LAYERS = (
        10  # Mask2Former convention: DEC_LAYERS - 1 = 9 decoder layers
    )
    _C.MODEL.MASK_FORMER.PRE_NORM = False  # pre-norm decoder layers
    _C.MODEL.MASK_FORMER.HIDDEN_DIM = 256  # query / transformer width
    _C.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 100  # number of queries
    _C.MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ = False  # always add 1x1 input projections
    _C.MODEL.MASK_FORMER.SIZE_DIVISIBILITY = 32  # pad inputs to a multiple (0: backbone's)
    _C.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 12544  # sampled points for mask losses
    _C.MODEL.MASK_FORMER.OVERSAMPLE_RATIO = 3.0  # point oversampling for importance sampling
    _C.MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO = 0.75  # share of uncertain points
    _C.MODEL.MASK_FORMER.TEST = CfgNode()
    _C.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True  # only True: semantic segmentation
    _C.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = (
        False  # resize before combine
    )
