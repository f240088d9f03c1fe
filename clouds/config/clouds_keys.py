"""Keys of CLOUDS: the CLIP backbone and text classifier, the geometric ensemble, the EMA teacher
and the SAM refinement of joint training (``MODEL.CLOUDS.*``)."""

from __future__ import annotations

from clouds.config.node import CfgNode

__all__ = ["add_clouds_config"]


def add_clouds_config(cfg: CfgNode) -> None:
    """Add the ``MODEL.CLOUDS`` keys to ``cfg`` (in place; needs :func:`add_base_config` first)."""
    _C = cfg
    _C.MODEL.CLOUDS = CfgNode()
    _C.MODEL.CLOUDS.CLIP_MODEL_NAME = "convnext_large_d_320"  # open_clip model name
    _C.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS = "laion2b_s29b_b131k_ft_soup"  # tag, path or ""
    _C.MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR = ""  # extra folder of open_clip model-config JSONs
    _C.MODEL.CLOUDS.EMBED_DIM = 768  # CLIP joint embedding width
    _C.MODEL.CLOUDS.NUM_TEMPLATES = 14  # prompt templates averaged per class name
    _C.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE = False  # blend in mask-pooled CLIP class probabilities
    _C.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_ALPHA = 0.4  # ensemble weight for training classes
    _C.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_BETA = 0.8  # ensemble weight for unseen classes
    _C.MODEL.CLOUDS.ENSEMBLE_ON_VALID_MASK = False  # pool CLIP features only inside valid masks
    _C.MODEL.CLOUDS.ITERATION_UPDATE = 100  # EMA teacher update period (iterations)
    _C.MODEL.CLOUDS.TEACHER_SCOPE = "head"  # EMA copy of "head" or of every "trainable" part
    _C.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_EMA = False  # teacher uses the geometric ensemble
    _C.MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD = 0  # dump pseudo-labels once per N iters (0: never)

    _C.MODEL.CLOUDS.SAM = CfgNode()
    _C.MODEL.CLOUDS.SAM.ENABLED = False  # joint training, pseudo-labels refined by SAM
    _C.MODEL.CLOUDS.SAM.MINIBATCH = False  # joint training with the EMA teacher (SAM or not)
    _C.MODEL.CLOUDS.SAM.MOBILE = True  # MobileSAM (vit_t) when MODEL_TYPE is "", else vit_h
    _C.MODEL.CLOUDS.SAM.MODEL_TYPE = ""  # vit_t, vit_b, vit_l, vit_h, tiny ("" = from MOBILE)
    _C.MODEL.CLOUDS.SAM.CHECKPOINT = ""  # SAM checkpoint path ("" needs SAM.RANDOM_INIT True)
    _C.MODEL.CLOUDS.SAM.ALPHA_EMA = 0.999  # EMA decay of the teacher
    _C.MODEL.CLOUDS.SAM.NUM_POINTS = 5  # point prompts per region
    _C.MODEL.CLOUDS.SAM.SIZE_THRESHOLD = 5000  # regions larger than this (px) are prompted
    _C.MODEL.CLOUDS.SAM.SIZE_REFERENCE = ()  # ours: (H, W) of SIZE_THRESHOLD, area-scaled below
    _C.MODEL.CLOUDS.SAM.CONNECTIVITY = 4  # region connectivity: 4 (original) or 8 (ours)
    _C.MODEL.CLOUDS.SAM.INCLUSIVE_THRESHOLD = False  # ours: also prompt regions == threshold
    _C.MODEL.CLOUDS.SAM.SELECTION_MODE = "random"  # "random" (original) or "interior" (ours)
    _C.MODEL.CLOUDS.SAM.EROSION = False  # erode regions before choosing points
    _C.MODEL.CLOUDS.SAM.EROSION_SIZE = 3  # erosion kernel size
    _C.MODEL.CLOUDS.SAM.REFINEMENT = False  # second SAM pass with the best mask as prompt
    _C.MODEL.CLOUDS.SAM.RM_INTERSECTION = True  # drop pixels covered by several masks
    _C.MODEL.CLOUDS.SAM.OVERLAP = "all"  # overlaps dropped: "all" (original) or "conflict" (ours)
    _C.MODEL.CLOUDS.SAM.UNCOVERED = "ignore"  # pixels outside every mask: ignore|teacher (ours)
    _C.MODEL.CLOUDS.SAM.PROMPT_BATCH_SIZE = 64  # prompts decoded per SAM decoder call
    _C.MODEL.CLOUDS.SAM.EVAL_MODE = False  # ours: SAM in eval mode (BatchNorm running stats)
    _C.MODEL.CLOUDS.SAM.RANDOM_INIT = False  # allow SAM.CHECKPOINT "" = random SAM (tests, toy)
