"""Fixtures of the original CLOUDS (yasserben/CLOUDS @ bac4305) at tiny width, and how to rebuild
the same model with our code.

``tests/fixtures/clouds_model/{convnext_linear,resnet_text}.pt`` were written by running the
ORIGINAL code outside this project (its files with small detectron2 stand-ins; open-clip-torch
2.20.0 and timm 0.9.5 as it pins; the compiled deformable-attention op replaced by its own
pure-PyTorch fallback). The original's ``train_gta.yaml`` (via ``clouds_config.yaml``) was built
with: CLIP = the tiny open_clip towers of ``model_configs/`` (timm ``convnext_atto`` ConvNeXt,
E 64; ModifiedResNet width 8, E 32; context length 77), CONVS_DIM = MASK_DIM = HIDDEN_DIM = 32,
1 deformable encoder layer (FFN narrowed from the original's fixed 1024 to 64), 4 heads,
DIM_FEEDFORWARD 64, DEC_LAYERS 3, 10 queries, 19 Cityscapes classes with the original's
synonyms. ``convnext_linear`` uses ``OriginalMultiScaleMaskedTransformerDecoder``,
``resnet_text`` ``MultiScaleMaskedTransformerDecoder``. The CLIP weights are ours, built from
MODEL.BACKBONE.INIT_SEED (so the fixture need not hold them) and loaded into the original; every
other tensor was seeded (torch seeds 1 and 2), perturbed by 0.05 N(0, 1) on the head and rounded
to fp16 (stored as fp16, exact in fp32). Each fixture holds: ``head_state_dict`` (every non-CLIP
key of the original's state dict), ``image`` (3, 30, 40) uint8, the original's ``sem_seg`` for it
(19, 30, 40) (eval forward, height/width = the image size), the head's ``pred_logits`` /
``pred_masks`` / first ``aux_outputs`` logits for the zero-padded (1, 3, 32, 64) normalised
image, per-channel ``feature_means`` of the backbone maps and the ``num_templates`` per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clouds.config import CfgNode, load_config
from clouds.data.catalog import MetadataCatalog
from clouds.modeling.meta_arch.base import build_backbone

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clouds_model"
REPO = Path(__file__).resolve().parents[2]
DATASET = "clouds_parity_cityscapes"
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
VARIANTS: dict[str, list[str]] = {
    "convnext_linear": [
        "MODEL.CLOUDS.CLIP_MODEL_NAME", "parity_tiny_convnext", "MODEL.CLOUDS.EMBED_DIM", "64",
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "OriginalMultiScaleMaskedTransformerDecoder",
    ],
    "resnet_text": [
        "MODEL.CLOUDS.CLIP_MODEL_NAME", "parity_tiny_resnet", "MODEL.CLOUDS.EMBED_DIM", "32",
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder",
    ],
}  # fmt: skip
TINY_OVERRIDES = [
    "MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR", str(FIXTURES / "model_configs"),
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32", "MODEL.SEM_SEG_HEAD.MASK_DIM", "32",
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS", "4",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS", "4",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD", "64",
    "MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.NHEADS", "4",
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64", "MODEL.MASK_FORMER.DEC_LAYERS", "3",
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "10",
    "INPUT.MIN_SIZE_TEST", "30", "INPUT.MAX_SIZE_TEST", "40",
    "DATASETS.TRAIN", f"('{DATASET}',)", "DATASETS.TEST", f"('{DATASET}',)",
]  # fmt: skip


def parity_config(variant: str, overrides: list[str] | None = None) -> CfgNode:
    """The toy config at the fixture's sizes, on a 19-class Cityscapes-named dataset."""
    MetadataCatalog.get(DATASET).set(stuff_classes=list(CITYSCAPES_CLASSES), ignore_label=255)
    toy = REPO / "configs" / "toy" / "Base-Toy-CLOUDS.yaml"
    return load_config(str(toy), [*TINY_OVERRIDES, *VARIANTS[variant], *(overrides or [])])


def load_fixture(variant: str) -> dict[str, Any]:
    return torch.load(FIXTURES / f"{variant}.pt", map_location="cpu", weights_only=True)


def original_state_dict(variant: str) -> dict[str, torch.Tensor]:
    """The original model's whole state dict: our seeded tiny CLIP under ``backbone.clip_model.``
    plus the fixture's head (fp16 -> fp32 exactly)."""
    clip = build_backbone(parity_config(variant)).clip_model.state_dict()
    head = {
        k: v.float() if v.is_floating_point() else v
        for k, v in load_fixture(variant)["head_state_dict"].items()
    }
    return {**{f"backbone.clip_model.{k}": v for k, v in clip.items()}, **head}


def write_original_checkpoint(variant: str, path: Path) -> Path:
    """An original-format (detectron2) checkpoint of the fixture's model at ``path``."""
    torch.save({"model": original_state_dict(variant), "iteration": 39999}, path)
    return path
