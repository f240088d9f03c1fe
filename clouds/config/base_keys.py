"""Keys shared by both systems: the run, the model's generic parts, data, solver and test.

detectron2's base keys (and the ``MODEL.SEM_SEG_HEAD`` keys every segmenter reads), with the
original CLOUDS values as defaults.
"""

from __future__ import annotations

from clouds.config.node import CfgNode

__all__ = ["FIXED_VALUES", "add_base_config"]

# Keys the original configs set that nothing here reads: only the value we implement is accepted.
FIXED_VALUES = {
    "VERSION": 2,
    "INPUT.SIZE_DIVISIBILITY": -1,
}


def add_base_config(cfg: CfgNode) -> None:
    """Add the keys both CLOUDS and the VFM + LoRA system read to ``cfg`` (in place)."""
    _C = cfg
    _C.VERSION = 2  # config format version (only 2: detectron2's, which the original configs set)
    _C.SEED = 42  # global random seed; negative draws one at start
    _C.OUTPUT_DIR = "./output"  # checkpoints, logs, metrics and evaluation results
    _C.CUDNN_BENCHMARK = False  # let cuDNN pick algorithms for fixed input sizes

    # ---------------------------------------------------------------- model
    _C.MODEL = CfgNode()
    _C.MODEL.META_ARCHITECTURE = "CLOUDS"  # META_ARCH_REGISTRY name
    _C.MODEL.WEIGHTS = ""  # checkpoint to initialise from (e.g. the warm-up result)
    _C.MODEL.DEVICE = "cuda"  # "cuda" or "cpu"; training refuses cuda on a machine without GPU
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
    _C.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255  # label of ignored pixels
    _C.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 19  # number of training classes
    _C.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 1.0  # global weight of the head loss

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
    _C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False  # drop images with only ignore labels
    # scan every image and label once before a long training (clouds.data.data_check): runs
    # when SOLVER.MAX_ITER >= CHECK_DATA_MIN_ITER; False never scans (train_net --check-data does)
    _C.DATALOADER.CHECK_DATA = True
    _C.DATALOADER.CHECK_DATA_MIN_ITER = 5000  # the shortest training scanned first

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
    _C.INPUT.SIZE_DIVISIBILITY = -1  # only -1: the mappers pad nothing (training crops are equal)

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
    _C.SOLVER.WEIGHT_DECAY_EMBED_BY_NAME = False  # ours: embeddings by name too (level_embed, ...)
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
    _C.SOLVER.DIST_TIMEOUT_S = 1800  # seconds a collective waits for the other processes
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
    _C.TEST.EVAL_AT_START = False  # evaluate before the first iteration (original CLOUDS)
    _C.TEST.SAVE_PREDICTIONS = False  # write Cityscapes label-ID PNGs of predictions
    _C.TEST.SCORE_AT_TEST_SIZE = False  # score at the test size vs nearest-resized labels (CLOUDS)
    # classes averaged: "gt" (detectron2), "gt_or_pred" (cityscapesScripts, mmseg) or
    # "clouds_original" (per dataset as the original CLOUDS: see clouds.evaluation.metrics)
    _C.TEST.MEAN_OVER_CLASSES = "gt_or_pred"
    _C.TEST.NUM_REPORT_EXAMPLES = 2  # prediction overlays per dataset in report.md
    _C.TEST.REPORT_BASELINES = []  # OUTPUT_DIRs of evaluated runs whose mIoU report.md shows too
    _C.TEST.REPORT_RUN_NAME = "this run"  # this run's column in report.md's baseline table
    # "whole", "slide", "hr_slide" (= slide), "lr_slide", "msfull_slide", "coarse_to_fine"
    _C.TEST.MODE = "whole"
    _C.TEST.AMP = CfgNode()
    _C.TEST.AMP.ENABLED = False  # autocast at inference (clouds.modeling.acceleration)
    _C.TEST.AMP.PRECISION = "bf16"  # bf16 or fp16 (fp16 on GPU only)
