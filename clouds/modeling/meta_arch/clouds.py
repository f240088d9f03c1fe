"""CLOUDS meta-architecture: frozen CLIP backbone + Mask2Former head (the original's CLOUDS).

Training: normalise (CLIP mean / std on the 0-255 scale) and zero-pad the batch to a multiple
of 32, build one binary mask per class present in each label map, run backbone and head and
return the weighted losses. The head's decoder classifies linearly (K training classes) or
against CLIP text embeddings of the class synonyms plus the learned ``void_embedding``; with the
text decoder the class list at test time is the test dataset's (open vocabulary). Inference as
the original: mask logits upsampled to the padded size, per-query class probabilities (void
dropped; optionally the geometric ensemble) times sigmoid masks summed over the queries, the
result cropped to the image and resized to the requested height x width.

Children (and so checkpoint keys) as in the original: ``backbone`` (``backbone.clip_model.*``),
``sem_seg_head``, ``criterion`` and ``void_embedding``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import MetadataCatalog
from clouds.modeling.criterion import SetCriterion
from clouds.modeling.geometric_ensemble import GeometricEnsemble
from clouds.modeling.meta_arch.base import (
    SegmentorBase,
    build_backbone,
    output_size,
    training_label,
    weighted_losses,
)
from clouds.modeling.meta_arch.image_list import pad_to_divisible
from clouds.modeling.meta_arch.targets import semantic_targets
from clouds.modeling.registry import (
    META_ARCH_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
)
from clouds.modeling.text_classifier import TextClassifier, class_synonyms

__all__ = ["CLOUDS", "dataset_class_names", "seen_classes", "semantic_inference"]


def dataset_class_names(dataset_name: str) -> list[str]:
    """The ``stuff_classes`` of a registered dataset; a clear error when it has none."""
    names = MetadataCatalog.get(dataset_name).get("stuff_classes")
    if not names:
        raise KeyError(
            f"Dataset {dataset_name!r} has no 'stuff_classes' in its metadata: register it first "
            "(clouds.data.datasets.register_all_datasets) or set MetadataCatalog.get(name)"
            ".stuff_classes"
        )
    return list(names)


def seen_classes(class_names: Sequence[str], train_names: Sequence[str]) -> torch.Tensor:
    """(K,) bool: True for a class sharing a synonym with a training class (the original's
    ``category_overlapping_mask``)."""
    train = {s for name in train_names for s in class_synonyms(name)}
    return torch.tensor([not train.isdisjoint(class_synonyms(name)) for name in class_names])


def semantic_inference(class_probs: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Per-class scores (K, H, W) from query class probabilities (Q, K) and mask logits (Q, H, W)."""
    return torch.einsum("qc,qhw->chw", class_probs, mask_logits.sigmoid())


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, H, W) to (N, *size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


@META_ARCH_REGISTRY.register()
class CLOUDS(SegmentorBase):
    """Mask-classification segmenter whose classes are CLIP text embeddings of class names."""

    # joint training: what the EMA teacher averages (the original's ``sem_seg_head_ema``)
    teacher_prefixes: tuple[str, ...] = ("sem_seg_head.",)

    def __init__(
        self,
        *,
        backbone: nn.Module,
        sem_seg_head: nn.Module,
        criterion: nn.Module,
        text_classifier: TextClassifier,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int,
        train_dataset: str,
        test_dataset: str,
        ignore_label: int = 255,
        geometric_ensemble: GeometricEnsemble | None = None,
        sem_seg_postprocess_before_inference: bool = False,
    ) -> None:
        """
        Args:
            backbone: returns res2..res5 and "clip_vis_dense" for a (B, 3, H, W) batch.
            sem_seg_head: (features, text classifier (K, E)) -> "pred_logits" (B, Q, K + 1),
                "pred_masks" (B, Q, H/4, W/4), "aux_outputs".
            criterion: (outputs, targets) -> unweighted losses, with ``weight_dict``.
            text_classifier: class names -> (K, E) embeddings.
            pixel_mean, pixel_std: see :class:`SegmentorBase`.
            size_divisibility: pad the batch to multiples of this.
            train_dataset: dataset whose ``stuff_classes`` are the training classes.
            test_dataset: dataset whose classes are used when an input names none.
            ignore_label: label value of unlabelled pixels.
            geometric_ensemble: blend CLIP's mask-pooled class probabilities in at inference.
            sem_seg_postprocess_before_inference: resize masks before combining them with the
                class probabilities (more memory) instead of resizing the combined scores.
        """
        super().__init__(pixel_mean=pixel_mean, pixel_std=pixel_std)
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        self.text_classifier = text_classifier
        # As in the original, always present (a checkpoint key); trained only by the text decoder.
        self.void_embedding = nn.Embedding(1, backbone.embed_dim)
        self.void_embedding.requires_grad_(self.uses_text)
        self.size_divisibility = size_divisibility
        self.train_dataset = train_dataset
        self.test_dataset = test_dataset
        self.ignore_label = ignore_label
        self.geometric_ensemble = geometric_ensemble
        self.sem_seg_postprocess_before_inference = sem_seg_postprocess_before_inference

    @classmethod
    def from_config(cls, cfg: CfgNode) -> CLOUDS:
        backbone = build_backbone(cfg)
        if not backbone.has_text_encoder:
            raise ConfigError(
                f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} has no text encoder; the "
                "CLOUDS meta-architecture needs a CLIP backbone for its text classifier"
            )
        head = SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME).from_config(
            cfg, backbone.output_shape()
        )
        backbone_div = backbone.size_divisibility
        size_div = cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY or backbone_div
        if backbone_div and size_div % backbone_div:
            raise ConfigError(
                f"MODEL.MASK_FORMER.SIZE_DIVISIBILITY={size_div} is not a multiple of the "
                f"backbone's size divisibility {backbone_div}"
            )
        if not cfg.DATASETS.TRAIN or not cfg.DATASETS.TEST:
            raise ConfigError("DATASETS.TRAIN and DATASETS.TEST must each name a dataset")
        ensemble = (
            GeometricEnsemble.from_config(cfg) if cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE else None
        )
        return cls(
            backbone=backbone,
            sem_seg_head=head,
            criterion=SetCriterion.from_config(cfg),
            text_classifier=TextClassifier.from_config(cfg, backbone),
            pixel_mean=cfg.MODEL.PIXEL_MEAN,
            pixel_std=cfg.MODEL.PIXEL_STD,
            size_divisibility=size_div,
            train_dataset=cfg.DATASETS.TRAIN[0],
            test_dataset=cfg.DATASETS.TEST[0],
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            geometric_ensemble=ensemble,
            sem_seg_postprocess_before_inference=(
                cfg.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE
            ),
        )

    def forward(
        self, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Weighted losses (training) or per-image {"sem_seg": (K, height, width)} (eval).

        Args:
            batched_inputs: dicts with "image" uint8 (3, H, W) RGB; in training "sem_seg"
                int64 (H, W); optional "height", "width" (output size) and "dataset_name"
                (whose classes to predict at inference).
        """
        images, image_sizes = self.preprocess(batched_inputs)
        if self.training:
            class_names = dataset_class_names(self.train_dataset)
            outputs = self.predict(images, class_names)
            targets = self.prepare_targets(batched_inputs, images.shape[-2:], len(class_names))
            return weighted_losses(self.criterion, outputs, targets)
        return self.inference(batched_inputs, images, image_sizes)

    def preprocess(
        self, batched_inputs: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Normalised, padded batch (B, 3, Hp, Wp) and each image's (H, W) before padding."""
        images = [self.normalize(x["image"]) for x in batched_inputs]
        return pad_to_divisible(images, self.size_divisibility)

    @property
    def uses_text(self) -> bool:
        """Whether the head's decoder classifies against the text classifier."""
        return bool(getattr(self.sem_seg_head, "uses_text_classifier", False))

    def classifier(self, class_names: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """Text classifier (S + 1, E): the synonyms' embeddings then the normalised void
        embedding; and the synonyms per class (K,)."""
        text, num_templates = self.text_classifier(class_names, self.device)
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return torch.cat([text.to(void.dtype), void], dim=0), num_templates

    def predict(self, images: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
        """Head outputs for a padded batch and a class list; also holds "features" (backbone)
        and, when computed, "text_classifier" (S + 1, E) and "num_templates" (K,)."""
        features = self.backbone(images)
        if not self.uses_text:
            num_classes = self.sem_seg_head.predictor.class_embed.out_features - 1
            if len(class_names) != num_classes:
                raise ValueError(
                    f"The linear class head predicts {num_classes} classes "
                    f"(MODEL.SEM_SEG_HEAD.NUM_CLASSES) but the dataset has {len(class_names)}"
                )
            if self.geometric_ensemble is None:
                return {**self.sem_seg_head(features), "features": features}
        classifier, num_templates = self.classifier(class_names)
        text_args = (classifier, num_templates) if self.uses_text else ()
        outputs = self.sem_seg_head(features, *text_args)
        return {
            **outputs,
            "features": features,
            "text_classifier": classifier,
            "num_templates": num_templates,
        }

    def prepare_targets(
        self, batched_inputs: list[dict[str, Any]], padded_size: Sequence[int], num_classes: int
    ) -> list[dict[str, torch.Tensor]]:
        """Per-image {"labels": (N,), "masks": (N, Hp, Wp) bool} from the "sem_seg" maps."""
        targets = []
        for x in batched_inputs:
            label = training_label(x).to(self.device)
            label = F.pad(
                label,
                (0, padded_size[1] - label.shape[1], 0, padded_size[0] - label.shape[0]),
                value=self.ignore_label,
            )
            targets.append(
                semantic_targets(label, num_classes=num_classes, ignore_label=self.ignore_label)
            )
        return targets

    def inference_dataset(self, batched_inputs: list[dict[str, Any]]) -> str:
        """The dataset whose classes to predict: the inputs' "dataset_name" or the default."""
        names = {x.get("dataset_name", self.test_dataset) for x in batched_inputs}
        if len(names) > 1:
            raise ValueError(f"One batch mixes inputs of several datasets: {sorted(names)}")
        return names.pop()

    @torch.no_grad()
    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        images: torch.Tensor,
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """Per-class score maps {"sem_seg": (K, height, width)} for each input."""
        class_names = dataset_class_names(self.inference_dataset(batched_inputs))
        outputs = self.predict(images, class_names)
        mask_logits = outputs["pred_masks"].float()
        if self.geometric_ensemble is not None:
            seen = seen_classes(class_names, dataset_class_names(self.train_dataset))
            probs = self.geometric_ensemble(
                class_logits=outputs["pred_logits"],
                mask_logits=mask_logits,
                dense_features=outputs["features"]["clip_vis_dense"],
                text_classifier=outputs["text_classifier"],
                num_templates=outputs["num_templates"],
                seen=seen.to(self.device),
                clip=self.backbone,
            )
            # As the original: the blend becomes log(p + 1e-8) "logits", softmaxed again below.
            probs = (probs + 1e-8).log().softmax(dim=-1)
        else:
            probs = outputs["pred_logits"].float().softmax(dim=-1)
        probs = probs[..., :-1]
        mask_logits = F.interpolate(
            mask_logits, size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        results = []
        for x, probs_i, masks_i, (h, w) in zip(batched_inputs, probs, mask_logits, image_sizes):
            out_size = output_size(x, h, w)
            masks_i = masks_i[:, :h, :w]
            if self.sem_seg_postprocess_before_inference:
                sem_seg = semantic_inference(probs_i, _resize(masks_i, out_size))
            else:
                sem_seg = _resize(semantic_inference(probs_i, masks_i), out_size)
            results.append({"sem_seg": sem_seg})
        return results
