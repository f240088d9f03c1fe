"""CLOUDS meta-architecture: frozen CLIP backbone + Mask2Former head (the original's CLOUDS).

Training: normalise (CLIP mean / std on the 0-255 scale) and zero-pad the batch to a multiple
of 32, build one binary mask per class present in each label map, run backbone and head and
return the weighted losses. The head's decoder classifies linearly (K training classes) or
against CLIP text embeddings of the class synonyms plus the learned ``void_embedding``; with the
text decoder the class list at test time is the test dataset's, or any list an input passes in
(open vocabulary). Class lists are given to the model when it is built (``from_config`` reads
those of DATASETS.TRAIN[0] and DATASETS.TEST from the dataset catalog); ``forward`` reads no
global state. Inference as
the original: mask logits upsampled to the padded size, per-query class probabilities (void
dropped; optionally the geometric ensemble) times sigmoid masks summed over the queries, the
result cropped to the image and resized to the requested height x width.

Children (and so checkpoint keys) as in the original: ``backbone`` (``backbone.clip_model.*``),
``sem_seg_head``, ``criterion`` and ``void_embedding``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.data import datasets
from clouds.data.catalog import UnknownDatasetError
from clouds.modeling.criterion import SetCriterion, weighted_losses
from clouds.modeling.geometric_ensemble import GeometricEnsemble
from clouds.modeling.heads.base import MaskClassificationHead, check_head
from clouds.modeling.meta_arch.base import (
    SegmentorBase,
    build_backbone,
    output_size,
    training_label,
)
from clouds.modeling.meta_arch.image_list import pad_to_divisible
from clouds.modeling.registry import META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY, registered_class
from clouds.modeling.targets import semantic_targets
from clouds.modeling.text_classifier import TextClassifier, class_synonyms

__all__ = ["CLOUDS", "seen_classes", "semantic_inference"]


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
        class_names: Mapping[str, Sequence[str]],
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
            class_names: the class list of each dataset the model predicts by name (an
                input's "dataset_name").
            train_dataset: the key of ``class_names`` holding the training classes.
            test_dataset: the key of ``class_names`` used when an input names no dataset.
            ignore_label: label value of unlabelled pixels.
            geometric_ensemble: blend CLIP's mask-pooled class probabilities in at inference.
            sem_seg_postprocess_before_inference: resize masks before combining them with the
                class probabilities (more memory) instead of resizing the combined scores.
        """
        super().__init__(pixel_mean=pixel_mean, pixel_std=pixel_std)
        check_head(sem_seg_head, MaskClassificationHead, "sem_seg_head (MODEL.SEM_SEG_HEAD.NAME)")
        missing = [name for name in (train_dataset, test_dataset) if name not in class_names]
        if missing:
            raise ValueError(f"No class list given for dataset(s) {missing}")
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        self.text_classifier = text_classifier
        # As in the original, always present (a checkpoint key); trained only by the text decoder.
        self.void_embedding = nn.Embedding(1, backbone.embed_dim)
        self.void_embedding.requires_grad_(self.uses_text)
        self.size_divisibility = size_divisibility
        self.class_names = {name: list(names) for name, names in class_names.items()}
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
        head_cls = registered_class(
            SEM_SEG_HEADS_REGISTRY,
            cfg.MODEL.SEM_SEG_HEAD.NAME,
            "MODEL.SEM_SEG_HEAD.NAME",
            MaskClassificationHead,
        )
        head = head_cls.from_config(cfg, backbone.output_shape())
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
            class_names={
                name: datasets.class_names(name)
                for name in (cfg.DATASETS.TRAIN[0], *cfg.DATASETS.TEST)
            },
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
                int64 (H, W) and optionally "prompted_classes" (M,) int64 (classes kept as
                targets, see :meth:`prepare_targets`); optional "height", "width" (output size)
                and, at inference, the classes to predict: "class_names" (a list of names) or
                "dataset_name" (a key of ``self.class_names``; default ``test_dataset``).
        """
        images, image_sizes = self.preprocess(batched_inputs)
        if self.training:
            class_names = self.class_names[self.train_dataset]
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
        return self.sem_seg_head.uses_text_classifier

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
            num_classes = self.sem_seg_head.num_classes
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
        """Per-image {"labels": (N,), "masks": (N, Hp, Wp) bool} from the "sem_seg" maps; the
        classes of an input's "prompted_classes" (SAM pseudo-labels) are targets even where the
        map holds none of their pixels (all-zero masks, as the original)."""
        targets = []
        for x in batched_inputs:
            label = training_label(x).to(self.device)
            label = F.pad(
                label,
                (0, padded_size[1] - label.shape[1], 0, padded_size[0] - label.shape[0]),
                value=self.ignore_label,
            )
            targets.append(
                semantic_targets(
                    label,
                    num_classes=num_classes,
                    ignore_label=self.ignore_label,
                    kept_classes=x.get("prompted_classes"),
                )
            )
        return targets

    def inference_classes(self, batched_inputs: list[dict[str, Any]]) -> list[str]:
        """The classes to predict for a batch: each input's "class_names", else the list of its
        "dataset_name" (default ``test_dataset``); one list for the whole batch.

        Raises:
            UnknownDatasetError: a "dataset_name" the model was given no class list for.
            ValueError: inputs asking for different class lists.
        """
        lists = {tuple(self._input_classes(x)) for x in batched_inputs}
        if len(lists) > 1:
            datasets = sorted({x.get("dataset_name", self.test_dataset) for x in batched_inputs})
            raise ValueError(
                f"One batch mixes inputs of several datasets (class lists): {datasets}"
            )
        return list(lists.pop())

    def _input_classes(self, x: Mapping[str, Any]) -> Sequence[str]:
        if "class_names" in x:
            return x["class_names"]
        name = x.get("dataset_name", self.test_dataset)
        if name not in self.class_names:
            raise UnknownDatasetError(
                f"Dataset {name!r} is not one the model was given classes for "
                f"({', '.join(self.class_names)}: DATASETS.TRAIN[0] and DATASETS.TEST); pass "
                f"its class list as the input's 'class_names'"
            )
        return self.class_names[name]

    @torch.no_grad()
    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        images: torch.Tensor,
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """Per-class score maps {"sem_seg": (K, height, width)} for each input."""
        class_names = self.inference_classes(batched_inputs)
        outputs = self.predict(images, class_names)
        mask_logits = outputs["pred_masks"].float()
        if self.geometric_ensemble is not None:
            seen = seen_classes(class_names, self.class_names[self.train_dataset])
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
