"""Keys of the VFM + LoRA system (DGVFM): the vision foundation model and its LoRA, the light and
refinement heads, mmsegmentation-style data pipelines, rare-class sampling and the slide /
coarse-to-fine inference modes."""

from __future__ import annotations

from clouds.config.hrda_keys import add_hrda_config
from clouds.config.node import CfgNode
from clouds.config.rein_keys import add_rein_config

__all__ = ["add_dgvfm_config"]


def add_dgvfm_config(cfg: CfgNode) -> None:
    """Add the VFM + LoRA keys to ``cfg`` (in place; needs :func:`add_base_config` first)."""
    _C = cfg
    _C.MODEL.VFM = CfgNode()
    _C.MODEL.VFM.MODEL_ID = "vit_large_patch14_dinov2.lvd142m"  # hub id / name of the VFM
    _C.MODEL.VFM.WEIGHTS = ""  # local checkpoint path ("" = load MODEL_ID, "random" = no weights)
    _C.MODEL.VFM.LOCAL_FILES_ONLY = False  # never reach a model hub
    _C.MODEL.VFM.OUT_INDICES = [7, 11, 15, 23]  # 0-based blocks whose outputs are features
    _C.MODEL.VFM.PATCH_SIZE = 16  # patch size the model runs at (kernels resized)
    _C.MODEL.VFM.TINY = False  # build a tiny random variant (tests, quickstart)
    _C.MODEL.VFM.TINY_WIDTH = 32  # embedding width of the tiny variant
    _C.MODEL.VFM.TINY_DEPTH = 4  # blocks of the tiny variant
    _C.MODEL.VFM.TINY_HEADS = 2  # attention heads of the tiny variant
    _C.MODEL.VFM.PRETRAINED_TAG = "openai"  # open_clip pretrained tag (CLIPViT only)
    _C.MODEL.VFM.CONVERT_SIZE = [512, 512]  # (H, W) / PATCH_SIZE: position grid of the weights
    _C.MODEL.VFM.PATCH_RESAMPLE = "bicubic"  # patch-kernel resize: "bicubic" (DGVFM) or "flexivit"
    _C.MODEL.VFM.POS_INTERP_OFFSET = 0.1  # DINOv2: grid offset in its resize scale (0 = exact)
    _C.MODEL.VFM.CLIP_DOUBLE_CLASS_TOKEN = True  # CLIP: class embedding added twice (DGVFM)
    _C.MODEL.VFM.EVA02_LN_EPS = 1e-5  # EVA02 LayerNorm eps (DGVFM 1e-5; the release used 1e-6)
    _C.MODEL.WEIGHTS_TRUST_PICKLE = False  # read MODEL.WEIGHTS holding pickled objects (mmengine)

    _C.MODEL.LORA = CfgNode()
    _C.MODEL.LORA.ENABLED = True  # wrap the VFM with peft LoRA
    _C.MODEL.LORA.RANK = 32  # LoRA rank r
    _C.MODEL.LORA.ALPHA = 32  # LoRA scaling alpha
    _C.MODEL.LORA.DROPOUT = 0.1  # LoRA dropout
    _C.MODEL.LORA.TARGET_MODULES = []  # module names; [] = the backbone's default targets
    _C.MODEL.LORA.MODE = "effective"  # "effective": only targets DGVFM's forward reaches; "all"

    _C.MODEL.VFM_HEAD = CfgNode()
    _C.MODEL.VFM_HEAD.TYPE = "ms_masked"  # "light", "ms", "ms_masked", "mask_former", "mask2former"
    _C.MODEL.VFM_HEAD.HIDDEN_DIM = 256  # head width
    _C.MODEL.VFM_HEAD.REFINE_LAYERS = 3  # refinement (MGRNet) blocks
    _C.MODEL.VFM_HEAD.REFINE_HEADS = 8  # refinement attention heads
    _C.MODEL.VFM_HEAD.REFINE_DROPOUT = 0.1  # refinement dropout
    _C.MODEL.VFM_HEAD.MASK_RATIO = 0.2  # share of image tokens masked in training
    _C.MODEL.VFM_HEAD.SUB_CROP = 512  # full-resolution sub-crop size (ms training)
    _C.MODEL.VFM_HEAD.SUB_CROP_GRID = 32  # sub-crop offsets lie on this grid
    _C.MODEL.VFM_HEAD.LIGHT_HEAD_NAME = "VFMNet"  # VFM_HEAD_REGISTRY name of the coarse head
    _C.MODEL.VFM_HEAD.REFINE_HEAD_NAME = "MGRNet"  # VFM_HEAD_REGISTRY name of the refinement head
    _C.MODEL.VFM_HEAD.DROPOUT = 0.1  # Dropout2d before each head's classifier
    _C.MODEL.VFM_HEAD.REFINE_HEAD_DIM = 64  # refinement attention width per head
    _C.MODEL.VFM_HEAD.CE_AVG_NON_IGNORE = False  # ours: CE / labelled pixels (original: / all)
    # "mask2former": initial queries querys2feat(Rein's linked queries) (ReinMask2FormerHead)
    _C.MODEL.VFM_HEAD.REPLACE_QUERY_FEAT = False

    # mmseg's per-GPU batch_size: > 0 gives each process this many images per iteration (N
    # processes train on N x this); SOLVER.IMS_PER_BATCH (a total) must then be 0
    _C.SOLVER.IMS_PER_GPU = 0  # images per process per iteration (0: SOLVER.IMS_PER_BATCH rules)

    _C.DATALOADER.RARE_CLASS_TEMPERATURE = 0.01  # rare-class sampling temperature
    _C.DATALOADER.RARE_CLASS_MIN_PIXELS = 3000  # candidates hold more pixels of the class
    _C.DATALOADER.RARE_CLASS_MIN_CROP_RATIO = 2.0  # recrop until > MIN_PIXELS x this (0: never)

    _C.INPUT.VFM_PIPELINE = CfgNode()
    _C.INPUT.VFM_PIPELINE.TRAIN_SCALE = (2560, 1440)  # (W, H) fixed training resize (no aspect)
    _C.INPUT.VFM_PIPELINE.TRAIN_SHORT_EDGES = []  # else: random short side among these, aspect kept
    _C.INPUT.VFM_PIPELINE.TRAIN_MAX_LONG_EDGE = 2048  # long-side cap of TRAIN_SHORT_EDGES resizes
    _C.INPUT.VFM_PIPELINE.TEST_SCALES = []  # aspect-kept (W, H) per DATASETS.TEST, or one for all
    _C.INPUT.VFM_PIPELINE.PAD_TO_CROP = False  # VFMSegmentor pads batches to INPUT.CROP.SIZE
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC = CfgNode()  # mmseg PhotoMetricDistortion (COLOR_AUG_SSD)
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.BRIGHTNESS_DELTA = 32  # brightness + U(-delta, delta)
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.CONTRAST_RANGE = (0.5, 1.5)  # contrast factor range
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.SATURATION_RANGE = (0.5, 1.5)  # saturation factor range
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.HUE_DELTA = 18  # hue shift in [-delta, delta) (OpenCV units)

    _C.TEST.SLIDE = CfgNode()
    _C.TEST.SLIDE.WINDOW = (512, 512)  # sliding window size (h, w)
    _C.TEST.SLIDE.STRIDE = (320, 320)  # sliding window stride (h, w)
    _C.TEST.COARSE_TO_FINE = CfgNode()
    _C.TEST.COARSE_TO_FINE.COARSE_SIZE = (512, 1024)  # stage-1 input size (h, w)
    _C.TEST.COARSE_TO_FINE.CONFIDENCE = 0.968  # a pixel is sure above this max probability
    _C.TEST.COARSE_TO_FINE.SURE_RATIO = 0.8  # a window is sure when this share of pixels is

    add_rein_config(_C)
    add_hrda_config(_C)
