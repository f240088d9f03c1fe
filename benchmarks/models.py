"""The two models the benchmarks compare, built at equal sizes, and their synthetic inputs.

- Ours: ``clouds.modeling.build_model`` on the full-size warm-up config (frozen CLIP
  ConvNeXt-L, random weights) or the tiny toy config.
- Peer: transformers' ``Mask2FormerForUniversalSegmentation`` with a transformers ConvNeXt
  backbone of the same depths and widths as our CLIP trunk, and the head sizes, queries,
  decoder layers, classes and loss settings read from the same config.

The text classifier of ours depends only on the class list and is computed once and cached
by the model; with random CLIP weights its value carries no meaning, and encoding 19 x 14
prompts with the full text tower takes minutes on a CPU. The benchmarks therefore give our
model a fixed random (K, E) classifier: the per-image work measured is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import ConvNextConfig, Mask2FormerConfig, Mask2FormerForUniversalSegmentation

from clouds.config import CfgNode, load_config
from clouds.data.datasets import register_all_datasets
from clouds.modeling import build_model
from clouds.modeling.acceleration import AccelerationSettings

__all__ = [
    "fast_variant",
    "MODEL_CONFIGS",
    "FixedTextClassifier",
    "build_ours",
    "build_peer",
    "freeze_peer_backbone",
    "load_benchmark_config",
    "peer_semantic_scores",
    "peer_targets",
    "random_images",
    "random_labels",
]

MODEL_CONFIGS = {
    "full": "configs/warmup/gta/train_gta.yaml",
    "toy": "configs/toy/Base-Toy-CLOUDS.yaml",
}
NUM_CLASSES = 19


class FixedTextClassifier:
    """Stands in for the cached text classifier: the same (K, E) unit vectors for any list."""

    def __init__(self, num_classes: int, embed_dim: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.embeddings = F.normalize(torch.randn(num_classes, embed_dim, generator=gen), dim=-1)

    def __call__(self, class_names: Sequence[str], device: torch.device) -> Tensor:
        if len(class_names) != self.embeddings.shape[0]:
            raise ValueError(
                f"FixedTextClassifier holds {self.embeddings.shape[0]} classes, "
                f"asked for {len(class_names)}"
            )
        if self.embeddings.device != device:
            self.embeddings = self.embeddings.to(device)
        return self.embeddings


def load_benchmark_config(model_size: str) -> CfgNode:
    """The config of ``model_size`` ("full" or "toy") with random CLIP weights."""
    if model_size not in MODEL_CONFIGS:
        raise ValueError(f"--model must be one of {', '.join(MODEL_CONFIGS)}, got {model_size!r}")
    return load_config(
        MODEL_CONFIGS[model_size],
        ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", "", "MODEL.DEVICE", "cpu"],
    )


def build_ours(cfg: CfgNode, device: torch.device) -> nn.Module:
    """CLOUDS from ``cfg`` on ``device`` with a fixed random text classifier (see module doc)."""
    register_all_datasets()
    # open_clip warns once that no pretrained weights were loaded: intended here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        model = build_model(cfg)
    finally:
        root.setLevel(level)
    model.text_classifier = FixedTextClassifier(NUM_CLASSES, cfg.MODEL.CLOUDS.EMBED_DIM)
    return model.to(device)


def _trunk_sizes(model: nn.Module) -> tuple[list[int], list[int]]:
    """Blocks per stage and stage widths of our CLIP ConvNeXt trunk."""
    trunk = model.backbone.clip_model.visual.trunk
    depths = [len(stage.blocks) for stage in trunk.stages]
    widths = [spec.channels for spec in model.backbone.output_shape().values()]
    return depths, widths


def build_peer(cfg: CfgNode, ours: nn.Module, device: torch.device) -> nn.Module:
    """transformers' Mask2Former at the sizes of ``ours`` / ``cfg`` (random weights)."""
    depths, widths = _trunk_sizes(ours)
    head, mf = cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.MASK_FORMER
    config = Mask2FormerConfig(
        backbone_config=ConvNextConfig(
            depths=depths,
            hidden_sizes=widths,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        ),
        feature_size=head.CONVS_DIM,
        mask_feature_size=head.MASK_DIM,
        hidden_dim=mf.HIDDEN_DIM,
        encoder_feedforward_dim=head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
        encoder_layers=head.TRANSFORMER_ENC_LAYERS,
        decoder_layers=mf.DEC_LAYERS,
        num_attention_heads=mf.NHEADS,
        dim_feedforward=mf.DIM_FEEDFORWARD,
        num_queries=mf.NUM_OBJECT_QUERIES,
        num_labels=NUM_CLASSES,
        no_object_weight=mf.NO_OBJECT_WEIGHT,
        class_weight=mf.CLASS_WEIGHT,
        mask_weight=mf.MASK_WEIGHT,
        dice_weight=mf.DICE_WEIGHT,
        train_num_points=mf.TRAIN_NUM_POINTS,
        oversample_ratio=mf.OVERSAMPLE_RATIO,
        importance_sample_ratio=mf.IMPORTANCE_SAMPLE_RATIO,
    )
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return Mask2FormerForUniversalSegmentation(config).to(device)


def freeze_peer_backbone(peer: nn.Module) -> None:
    """Freeze the peer's ConvNeXt like our frozen CLIP backbone (equal training work)."""
    peer.model.pixel_level_module.encoder.requires_grad_(False)


def peer_semantic_scores(outputs: Any, size: tuple[int, int]) -> Tensor:
    """Per-class scores (B, K, H, W) from the peer's outputs, as our inference computes them:
    softmax class probabilities (void dropped) times sigmoid masks upsampled to ``size``."""
    probs = outputs.class_queries_logits.float().softmax(-1)[..., :-1]
    masks = F.interpolate(
        outputs.masks_queries_logits.float(), size=size, mode="bilinear", align_corners=False
    )
    return torch.einsum("bqc,bqhw->bchw", probs, masks.sigmoid())


def random_images(batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """(B, 3, H, W) uint8 random RGB images."""
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=gen).to(
        device
    )


def random_labels(batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """(B, H, W) int64 label maps of 32x32-pixel blocks of random classes (some ignored, 255)."""
    gen = torch.Generator().manual_seed(1)
    small = torch.randint(
        0, NUM_CLASSES + 1, (batch, 1, -(-height // 32), -(-width // 32)), generator=gen
    )
    small[small == NUM_CLASSES] = 255
    labels = F.interpolate(small.float(), scale_factor=32, mode="nearest")[:, 0, :height, :width]
    return labels.long().to(device)


def peer_targets(labels: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """The peer's ``mask_labels`` (N_i, H, W) float and ``class_labels`` (N_i,) per image."""
    masks, classes = [], []
    for label in labels:
        present = torch.unique(label)
        present = present[present != 255]
        classes.append(present)
        masks.append((label[None] == present[:, None, None]).float())
    return masks, classes


def fast_variant(
    channels_last: bool, compile_parts: Sequence[str] | None
) -> tuple[AccelerationSettings, str]:
    """Settings of the "ours (fast)" row and its label ("" when no fast path is asked for).

    Args:
        channels_last: the ``--channels-last`` flag.
        compile_parts: parts to torch.compile (``--compile-parts`` when ``--compile``), or None.
    """
    settings = AccelerationSettings(
        channels_last=channels_last, compile_parts=tuple(compile_parts or ())
    )
    label = ", ".join(
        (["channels-last"] if settings.channels_last else [])
        + ([f"compile({'+'.join(settings.compile_parts)})"] if settings.compile_parts else [])
    )
    return settings, label
