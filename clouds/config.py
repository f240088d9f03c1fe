"""Configuration: every key of the system, each with a one-line comment.

Keys follow the original CLOUDS / Mask2Former naming (MODEL.CLOUDS.*, MODEL.MASK_FORMER.*,
MODEL.SEM_SEG_HEAD.*, SOLVER.*, INPUT.*, DATASETS.*, DATALOADER.*, TEST.*). Files are loaded
with fvcore's CfgNode: ``_BASE_`` inheritance and ``KEY VALUE`` overrides, unknown keys and
wrong types are errors naming the key.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvCfgNode

__all__ = ["CfgNode", "ConfigError", "add_clouds_config", "get_cfg", "load_config"]


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names it."""


class CfgNode(_FvCfgNode):
    """fvcore CfgNode whose file loading reports missing ``_BASE_`` files by name."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict:
        if not os.path.isfile(filename):
            raise ConfigError(f"Config file not found: {filename}")
        with open(filename) as f:
            try:
                content = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"Config file {filename} is not valid YAML: {e}") from e
        if not isinstance(content, dict):
            raise ConfigError(f"Config file {filename} must hold a mapping, got {type(content)}")
        bases = content.get(BASE_KEY, [])
        for base in [bases] if isinstance(bases, str) else bases:
            base_path = os.path.join(os.path.dirname(filename), os.path.expanduser(base))
            if not os.path.isfile(base_path):
                raise ConfigError(
                    f"_BASE_ file {base!r} of {filename} not found (looked at {base_path})"
                )
        return super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{cfg_filename}: {_suggest_key(self, _message(e))}") from e

    def merge_from_list(self, cfg_list: list) -> None:
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"Overrides must be KEY VALUE pairs, got an odd list: {cfg_list}")
        try:
            super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"command-line override: {_suggest_key(self, _message(e))}") from e


def _message(e: Exception) -> str:
    return e.args[0] if e.args else str(e)


def _suggest_key(cfg: _FvCfgNode, message: str) -> str:
    """``message`` plus "did you mean <closest valid key>?" when it names a non-existent key."""
    match = re.search(r"Non-existent (?:config )?key: (\S+)", str(message))
    if not match:
        return message
    keys = list(_flat_keys(cfg))
    close = difflib.get_close_matches(match.group(1).upper(), keys, n=1, cutoff=0.6)
    return f"{message} (did you mean {close[0]}?)" if close else message


def _flat_keys(node: _FvCfgNode, prefix: str = "") -> list[str]:
    """Every leaf key of ``node`` as a dotted path, e.g. "SOLVER.MAX_ITER"."""
    keys = []
    for name, value in node.items():
        if isinstance(value, _FvCfgNode):
            keys.extend(_flat_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def add_clouds_config(cfg: CfgNode) -> None:
    """Add every key of CLOUDS and of the VFM + LoRA system to ``cfg`` (in place)."""
    _C = cfg
    _C.VERSION = 2  # config format version
    _C.SEED = 42  # global random seed; negative draws one at start
    _C.OUTPUT_DIR = "./output"  # checkpoints, logs, metrics and evaluation results
    _C.CUDNN_BENCHMARK = False  # let cuDNN pick algorithms for fixed input sizes

    # ---------------------------------------------------------------- model
    _C.MODEL = CfgNode()
    _C.MODEL.META_ARCHITECTURE = "CLOUDS"  # META_ARCH_REGISTRY name
    _C.MODEL.WEIGHTS = ""  # checkpoint to initialise from (e.g. the warm-up result)
    _C.MODEL.DEVICE = "cuda"  # "cuda" or "cpu"; the engine falls back to cpu when no GPU
    _C.MODEL.PIXEL_MEAN = [122.7709383, 116.7460125, 104.09373615]  # CLIP mean, 0-255 RGB
    _C.MODEL.PIXEL_STD = [68.5005327, 66.6321579, 70.32316305]  # CLIP std, 0-255 RGB
    _C.MODEL.CHANNELS_LAST = False  # channels-last conv weights and backbone inputs (fast path)
    _C.MODEL.COMPILE = CfgNode()
    _C.MODEL.COMPILE.PARTS = []  # torch.compile: backbone, pixel_decoder, deform_attn, head
    _C.MODEL.COMPILE.MODE = "default"  # torch.compile mode (default, max-autotune, ...)

    _C.MODEL.BACKBONE = CfgNode()
    _C.MODEL.BACKBONE.NAME = "CLIP"  # BACKBONE_REGISTRY name
    _C.MODEL.BACKBONE.FREEZE = True  # keep the backbone frozen (eval mode, no grads)
    _C.MODEL.BACKBONE.INIT_SEED = 0  # seed of the backbone's random init (weightless builds repeat)

    _C.MODEL.SEM_SEG_HEAD = CfgNode()
    _C.MODEL.SEM_SEG_HEAD.NAME = "MaskFormerHead"  # SEM_SEG_HEADS_REGISTRY name
    _C.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]  # backbone outputs used
    _C.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255  # label of ignored pixels
    _C.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 19  # number of training classes
    _C.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 1.0  # global weight of the head loss
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
    _C.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True  # produce semantic segmentation
    _C.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = (
        False  # resize before combine
    )

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
    _C.MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD = 0  # dump pseudo-labels every N iters (0: never)

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

    # ------------------------------------------------- VFM + LoRA (DGVFM)
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
    _C.MODEL.LORA = CfgNode()
    _C.MODEL.LORA.ENABLED = True  # wrap the VFM with peft LoRA
    _C.MODEL.LORA.RANK = 32  # LoRA rank r
    _C.MODEL.LORA.ALPHA = 32  # LoRA scaling alpha
    _C.MODEL.LORA.DROPOUT = 0.1  # LoRA dropout
    _C.MODEL.LORA.TARGET_MODULES = []  # module names; [] = the backbone's default targets
    # official weight files, run-time quirks and LoRA as DGVFM (dgvfm-weights)
    _C.MODEL.VFM.CONVERT_SIZE = [512, 512]  # (H, W) / PATCH_SIZE: position grid of the weights
    _C.MODEL.VFM.PATCH_RESAMPLE = "bicubic"  # patch-kernel resize: "bicubic" (DGVFM) or "flexivit"
    _C.MODEL.VFM.POS_INTERP_OFFSET = 0.1  # DINOv2: grid offset in its resize scale (0 = exact)
    _C.MODEL.VFM.CLIP_DOUBLE_CLASS_TOKEN = True  # CLIP: class embedding added twice (DGVFM)
    _C.MODEL.VFM.EVA02_LN_EPS = 1e-5  # EVA02 LayerNorm eps (DGVFM 1e-5; the release used 1e-6)
    _C.MODEL.LORA.MODE = "effective"  # "effective": only targets DGVFM's forward reaches; "all"
    _C.MODEL.WEIGHTS_TRUST_PICKLE = False  # read MODEL.WEIGHTS holding pickled objects (mmengine)
    _C.MODEL.VFM_HEAD = CfgNode()
    _C.MODEL.VFM_HEAD.TYPE = "ms_masked"  # "light", "ms", "ms_masked" or "mask_former"
    _C.MODEL.VFM_HEAD.HIDDEN_DIM = 256  # head width
    _C.MODEL.VFM_HEAD.REFINE_LAYERS = 3  # refinement (MGRNet) blocks
    _C.MODEL.VFM_HEAD.REFINE_HEADS = 8  # refinement attention heads
    _C.MODEL.VFM_HEAD.REFINE_DROPOUT = 0.1  # refinement dropout
    _C.MODEL.VFM_HEAD.MASK_RATIO = 0.2  # share of image tokens masked in training
    _C.MODEL.VFM_HEAD.SUB_CROP = 512  # full-resolution sub-crop size (ms training)
    _C.MODEL.VFM_HEAD.SUB_CROP_GRID = 32  # sub-crop offsets lie on this grid
    # heads and inference as DGVFM (dgvfm-heads)
    _C.MODEL.VFM_HEAD.LIGHT_HEAD_NAME = "VFMNet"  # VFM_HEAD_REGISTRY name of the coarse head
    _C.MODEL.VFM_HEAD.REFINE_HEAD_NAME = "MGRNet"  # VFM_HEAD_REGISTRY name of the refinement head
    _C.MODEL.VFM_HEAD.DROPOUT = 0.1  # Dropout2d before each head's classifier
    _C.MODEL.VFM_HEAD.REFINE_HEAD_DIM = 64  # refinement attention width per head
    _C.MODEL.VFM_HEAD.CE_AVG_NON_IGNORE = False  # ours: CE / labelled pixels (original: / all)

    # ---------------------------------------------------------------- data
    _C.DATASETS = CfgNode()
    _C.DATASETS.TRAIN = ("gta5",)  # training datasets (source first, then generated)
    _C.DATASETS.TEST = ("cityscapes_val",)  # evaluation datasets
    _C.DATASETS.TARGET_FACTOR = 1.0  # repeat factor of each generated (unlabelled) image
    _C.DATASETS.SOURCE_FACTOR = 1.0  # repeat factor of each labelled (source) image

    _C.DATALOADER = CfgNode()
    _C.DATALOADER.NUM_WORKERS = 4  # data loading processes per GPU
    # TrainingSampler, WeightedTrainingSampler (original: repeat factors), RareClassSampler,
    # or WeightedMultiDatasetSampler (ours: dataset drawn with probability factor / sum)
    _C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    _C.DATALOADER.RARE_CLASS_TEMPERATURE = 0.01  # rare-class sampling temperature
    _C.DATALOADER.RARE_CLASS_MIN_PIXELS = 3000  # candidates hold more pixels of the class
    _C.DATALOADER.RARE_CLASS_MIN_CROP_RATIO = 2.0  # recrop until > MIN_PIXELS x this (0: never)
    _C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False  # drop images with only ignore labels

    _C.INPUT = CfgNode()
    _C.INPUT.FORMAT = "RGB"  # channel order fed to the model
    _C.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"  # mappers; "vfm_mmseg": DGVFM's
    _C.INPUT.INITIAL_HEIGHT = 1052  # images are first resized to this height (GTA5: 1052)
    _C.INPUT.INITIAL_WIDTH = 1914  # ... and this width, before random rescaling
    _C.INPUT.SCALE_RANGE = (0.5, 2.0)  # random rescale range
    _C.INPUT.RESIZE = CfgNode()
    _C.INPUT.RESIZE.ENABLED = True  # random rescale, aspect kept, to fit INITIAL_HEIGHT x WIDTH
    _C.INPUT.RESIZE.FORCE_INITIAL_SIZE = False  # ours: stretch to INITIAL_HEIGHT x WIDTH x scale
    _C.INPUT.MIN_SIZE_TEST = 1024  # short side at test time
    _C.INPUT.MAX_SIZE_TEST = 4096  # long side cap at test time
    _C.INPUT.CROP = CfgNode()
    _C.INPUT.CROP.ENABLED = True  # random crops in training
    _C.INPUT.CROP.SIZE = (768, 768)  # crop height, width
    _C.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0  # ours when < 1: retry crops one class dominates
    _C.INPUT.CROP.INDEPENDENT_OFFSETS = False  # ours: separate draws for the top and left offsets
    _C.INPUT.FLIP = True  # random horizontal flip
    _C.INPUT.COLOR_AUG_SSD = True  # photometric distortion
    _C.INPUT.COLOR_AUG_IMPL = "detectron2"  # "detectron2" ColorAugSSD, or ours: "torchvision"
    _C.INPUT.SIZE_DIVISIBILITY = -1  # pad training batches to this (-1: crop size)
    # DGVFM data pipelines as mmsegmentation's (dgvfm-train): INPUT.DATASET_MAPPER_NAME "vfm_mmseg"
    _C.INPUT.VFM_PIPELINE = CfgNode()
    _C.INPUT.VFM_PIPELINE.TRAIN_SCALE = (2560, 1440)  # (W, H) fixed training resize (no aspect)
    _C.INPUT.VFM_PIPELINE.TRAIN_SHORT_EDGES = []  # else: random short side among these, aspect kept
    _C.INPUT.VFM_PIPELINE.TRAIN_MAX_LONG_EDGE = 2048  # long-side cap of TRAIN_SHORT_EDGES resizes
    _C.INPUT.VFM_PIPELINE.TEST_SCALES = []  # one (W, H) aspect-kept test resize per DATASETS.TEST
    _C.INPUT.VFM_PIPELINE.PAD_TO_CROP = False  # VFMSegmentor pads batches to INPUT.CROP.SIZE
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC = CfgNode()  # mmseg PhotoMetricDistortion (COLOR_AUG_SSD)
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.BRIGHTNESS_DELTA = 32  # brightness + U(-delta, delta)
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.CONTRAST_RANGE = (0.5, 1.5)  # contrast factor range
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.SATURATION_RANGE = (0.5, 1.5)  # saturation factor range
    _C.INPUT.VFM_PIPELINE.PHOTOMETRIC.HUE_DELTA = 18  # hue shift in [-delta, delta) (OpenCV units)

    # -------------------------------------------------------------- solver
    _C.SOLVER = CfgNode()
    _C.SOLVER.IMS_PER_BATCH = 8  # total batch over all processes
    _C.SOLVER.BASE_LR = 1e-5  # learning rate
    _C.SOLVER.MAX_ITER = 40000  # training iterations
    _C.SOLVER.OPTIMIZER = "ADAMW"  # ADAMW or SGD
    _C.SOLVER.BETAS = (0.9, 0.999)  # AdamW betas
    _C.SOLVER.MOMENTUM = 0.9  # SGD momentum
    _C.SOLVER.WEIGHT_DECAY = 0.05  # weight decay
    _C.SOLVER.WEIGHT_DECAY_NORM = 0.0  # weight decay of norm layers
    _C.SOLVER.WEIGHT_DECAY_EMBED = 0.0  # weight decay of nn.Embedding weights (queries, ...)
    _C.SOLVER.BACKBONE_MULTIPLIER = 0.1  # lr factor of trainable backbone parameters
    _C.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"  # WarmupPolyLR, WarmupMultiStepLR, WarmupCosineLR
    _C.SOLVER.POLY_LR_POWER = 0.9  # poly schedule power
    _C.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0  # lr floor of the poly schedule
    _C.SOLVER.STEPS = (30000,)  # step schedule milestones
    _C.SOLVER.GAMMA = 0.1  # step schedule factor
    _C.SOLVER.WARMUP_FACTOR = 1.0  # starting lr factor of the warm-up
    _C.SOLVER.WARMUP_ITERS = 0  # warm-up iterations
    _C.SOLVER.WARMUP_METHOD = "linear"  # linear or constant
    _C.SOLVER.CHECKPOINT_PERIOD = 5000  # iterations between checkpoints
    _C.SOLVER.LOG_PERIOD = 20  # iterations between training metric logs (metrics.json, TB)
    _C.SOLVER.FIND_UNUSED_PARAMETERS = False  # DDP: allow trainable params without grads
    _C.SOLVER.CLIP_GRADIENTS = CfgNode()
    _C.SOLVER.CLIP_GRADIENTS.ENABLED = True  # clip gradients
    _C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"  # full_model (norm over all) or value
    _C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.01  # max norm / value
    _C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0  # L2 norm
    _C.SOLVER.AMP = CfgNode()
    _C.SOLVER.AMP.ENABLED = False  # mixed precision
    _C.SOLVER.AMP.PRECISION = "bf16"  # bf16 or fp16

    # ---------------------------------------------------------------- test
    _C.TEST = CfgNode()
    _C.TEST.EVAL_PERIOD = 5000  # iterations between evaluations (0: only at the end)
    _C.TEST.SAVE_PREDICTIONS = False  # write Cityscapes label-ID PNGs of predictions
    _C.TEST.NUM_REPORT_EXAMPLES = 2  # prediction overlays per dataset in report.md
    _C.TEST.REPORT_BASELINES = []  # OUTPUT_DIRs of evaluated runs whose mIoU report.md shows too
    _C.TEST.REPORT_RUN_NAME = "this run"  # this run's column in report.md's baseline table
    # "whole", "slide", "hr_slide" (= slide), "lr_slide", "msfull_slide", "coarse_to_fine"
    _C.TEST.MODE = "whole"
    _C.TEST.AMP = CfgNode()
    _C.TEST.AMP.ENABLED = False  # autocast at inference (clouds.modeling.acceleration)
    _C.TEST.AMP.PRECISION = "bf16"  # bf16 or fp16 (fp16 on GPU only)
    _C.TEST.SLIDE = CfgNode()
    _C.TEST.SLIDE.WINDOW = (512, 512)  # sliding window size (h, w)
    _C.TEST.SLIDE.STRIDE = (320, 320)  # sliding window stride (h, w)
    _C.TEST.COARSE_TO_FINE = CfgNode()
    _C.TEST.COARSE_TO_FINE.COARSE_SIZE = (512, 1024)  # stage-1 input size (h, w)
    _C.TEST.COARSE_TO_FINE.CONFIDENCE = 0.968  # a pixel is sure above this max probability
    _C.TEST.COARSE_TO_FINE.SURE_RATIO = 0.8  # a window is sure when this share of pixels is
    # recipe and evaluation as the original CLOUDS (clouds-recipe)
    _C.SOLVER.WEIGHT_DECAY_EMBED_BY_NAME = False  # ours: embeddings by name too (level_embed, ...)
    _C.TEST.EVAL_AT_START = False  # evaluate before the first iteration (original CLOUDS)
    _C.TEST.SCORE_AT_TEST_SIZE = False  # score at the test size vs nearest-resized labels (CLOUDS)
    _C.TEST.MEAN_OVER_CLASSES = "gt_or_pred"  # classes averaged: "gt" (detectron2), "gt_or_pred"
    # crash, resume and error handling (robustness)
    _C.MODEL.CLOUDS.SAM.RANDOM_INIT = False  # allow SAM.CHECKPOINT "" = random SAM (tests, toy)
    _C.SOLVER.DIST_TIMEOUT_S = 1800  # seconds a collective waits for the other processes


def get_cfg() -> CfgNode:
    """A fresh config holding every key with its default."""
    cfg = CfgNode()
    add_clouds_config(cfg)
    return cfg


def load_config(config_file: str | None = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then ``config_file`` (with its ``_BASE_`` chain), then ``KEY VALUE`` overrides."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    if overrides:
        cfg.merge_from_list(list(overrides))
    return cfg
