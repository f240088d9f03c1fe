"""Tiny head configs and fake backbone features shared by the head-family tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clouds.config import CfgNode, get_cfg
from clouds.modeling.shape_spec import ShapeSpec

TINY_SHAPES = {
    "res2": ShapeSpec(channels=8, stride=4),
    "res3": ShapeSpec(channels=16, stride=8),
    "res4": ShapeSpec(channels=24, stride=16),
    "res5": ShapeSpec(channels=32, stride=32),
}


def tiny_head_cfg() -> CfgNode:
    """Default config shrunk to a head of a few thousand parameters."""
    cfg = get_cfg()
    head = cfg.MODEL.SEM_SEG_HEAD
    head.CONVS_DIM = 32
    head.MASK_DIM = 32
    head.TRANSFORMER_ENC_LAYERS = 2
    head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 4
    head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 2
    head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = 64
    mf = cfg.MODEL.MASK_FORMER
    mf.HIDDEN_DIM = 32
    mf.NHEADS = 4
    mf.DIM_FEEDFORWARD = 64
    mf.DEC_LAYERS = 4
    mf.NUM_OBJECT_QUERIES = 6
    mf.TRAIN_NUM_POINTS = 64
    cfg.MODEL.CLOUDS.EMBED_DIM = 16
    return cfg


def fake_features(batch: int, height: int, width: int) -> dict[str, Tensor]:
    """Random backbone maps of ``TINY_SHAPES`` for an input of ``height`` x ``width``."""
    return {
        name: torch.randn(batch, s.channels, height // s.stride, width // s.stride)
        for name, s in TINY_SHAPES.items()
    }


def text_classifier(num_classes: int, embed_dim: int = 16) -> tuple[Tensor, list[int]]:
    """The text decoder's arguments for K classes of one synonym each: (K + 1, E) random
    L2-normalised rows (the last = void) and the synonyms per class."""
    return F.normalize(torch.randn(num_classes + 1, embed_dim), dim=-1), [1] * num_classes
