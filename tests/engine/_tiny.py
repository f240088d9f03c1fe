"""A tiny segmenter and tiny datasets for engine tests (fast on CPU).

The model follows the model interface of DESIGN.md: a frozen "backbone" (requires_grad False,
must never reach the optimizer), a trainable head with a norm layer and a "query_embed"
parameter (exercise the parameter groups). Each class has its own colour in the data (plus
noise), so a 1x1-conv head can learn it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode
from clouds.data.catalog import DatasetCatalog, MetadataCatalog
from clouds.modeling.registry import META_ARCH_REGISTRY
from clouds.utils.io import write_png_atomic

NUM_CLASSES = 3
CLASSES = ["road", "sky", "car"]
COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], dtype=np.int64)
SIZE = (32, 64)


class TinyTestSegmentor(nn.Module):
    """Per-pixel classifier: frozen 1x1 conv, trainable 1x1 conv + GroupNorm + classifier."""

    def __init__(self, *, num_classes: int, ignore_value: int) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 1)
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Conv2d(8, 8, 1), nn.GroupNorm(2, 8), nn.ReLU())
        self.query_embed = nn.Parameter(torch.zeros(num_classes, 8))
        self.ignore_value = ignore_value

    @classmethod
    def from_config(cls, cfg: CfgNode) -> TinyTestSegmentor:
        return cls(
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            ignore_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        )

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> (B, K, H, W) logits."""
        x = images.float().to(self.query_embed.device) / 127.5 - 1.0
        features = self.head(self.backbone(x))
        return torch.einsum("bchw,kc->bkhw", features, self.query_embed)

    def forward(self, batched_inputs: list[dict]) -> dict[str, torch.Tensor] | list[dict]:
        images = torch.stack([d["image"] for d in batched_inputs])
        logits = self._logits(images)
        if self.training:
            labels = torch.stack([d["sem_seg"] for d in batched_inputs]).to(logits.device)
            loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_value)
            return {"loss_ce": loss}
        outputs = []
        for d, logit in zip(batched_inputs, logits):
            scores = F.interpolate(logit[None], size=(d["height"], d["width"]), mode="bilinear")
            outputs.append({"sem_seg": scores[0].softmax(dim=0)})
        return outputs


def register_tiny_model() -> None:
    if "TinyTestSegmentor" not in META_ARCH_REGISTRY:
        META_ARCH_REGISTRY.register(TinyTestSegmentor)


def _write_split(root: str, split: str, count: int, seed: int, labelled: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    dicts = []
    for i in range(count):
        label = np.zeros(SIZE, dtype=np.uint8)
        label[:, SIZE[1] // 3 : 2 * SIZE[1] // 3] = 1
        label[rng.integers(0, SIZE[0] // 2) :, 2 * SIZE[1] // 3 :] = 2
        image = COLOURS[label] + rng.integers(-30, 30, size=(*SIZE, 3))
        image_file = os.path.join(root, split, f"{i:03d}.png")
        label_file = os.path.join(root, split, f"{i:03d}_label.png")
        write_png_atomic(np.clip(image, 0, 255).astype(np.uint8), image_file)
        write_png_atomic(label, label_file)
        dicts.append(
            {
                "file_name": image_file,
                "sem_seg_file_name": label_file if labelled else None,
                "height": SIZE[0],
                "width": SIZE[1],
                "image_id": f"{split}_{i:03d}",
            }
        )
    return dicts


def register_tiny_datasets(root: str) -> None:
    """Write (if needed) and register tiny_train (8), tiny_gen (unlabelled, 8), tiny_val (4)."""
    for name, count, seed, labelled in (
        ("tiny_train", 8, 0, True),
        ("tiny_gen", 8, 1, False),
        ("tiny_val", 4, 2, True),
    ):
        dicts = _write_split(root, name, count, seed, labelled)
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, lambda d=dicts: [dict(x) for x in d])
        MetadataCatalog.get(name).set(
            stuff_classes=CLASSES,
            stuff_colors=COLOURS.tolist(),
            ignore_label=255,
            evaluator_type="sem_seg",
        )


def tiny_overrides(output_dir: str, **extra: object) -> list[str]:
    """Config overrides for a tiny CPU run of TinyTestSegmentor on the tiny datasets."""
    opts = {
        "MODEL.META_ARCHITECTURE": "TinyTestSegmentor",
        "MODEL.DEVICE": "cpu",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": NUM_CLASSES,
        "DATASETS.TRAIN": "('tiny_train',)",
        "DATASETS.TEST": "('tiny_val',)",
        "DATALOADER.NUM_WORKERS": 0,
        "INPUT.INITIAL_HEIGHT": SIZE[0],
        "INPUT.INITIAL_WIDTH": SIZE[1],
        "INPUT.CROP.SIZE": "(32, 64)",
        "INPUT.MIN_SIZE_TEST": SIZE[0],
        "SOLVER.IMS_PER_BATCH": 2,
        "SOLVER.BASE_LR": 0.05,
        "SOLVER.MAX_ITER": 6,
        "SOLVER.CHECKPOINT_PERIOD": 3,
        "SOLVER.LOG_PERIOD": 1,
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 1.0,
        "TEST.EVAL_PERIOD": 3,
        "OUTPUT_DIR": output_dir,
    }
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]
