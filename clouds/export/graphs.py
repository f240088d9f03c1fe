"""Export-ready networks: a float32 image in, the model's own predictions out, no Python-side
state (class lists, text encoders, input dicts) left in the forward pass.

Every graph takes (1, 3, H, W) float32 RGB on the 0-255 scale with H and W multiples of the
model's size divisibility (the driver pads with the pixel mean) and normalises it inside. The
deformable attention of the CLOUDS pixel decoder is the package's pure-PyTorch
``grid_sample`` implementation (there is no compiled op); the exporter builds the model without
the fast paths (torch.compile, channels-last, autocast), so the graph holds standard ONNX ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import ConfigError
from clouds.modeling.meta_arch.clouds import CLOUDS, semantic_inference
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor

__all__ = ["CloudsScoresGraph", "VFMLightGraph", "VFMRefineGraph"]


class _NormalizedInput(nn.Module):
    """Holds the model and normalises 0-255 images with its pixel mean / std."""

    def __init__(self, model: CLOUDS | VFMSegmentor) -> None:
        super().__init__()
        self.model = model

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) float 0-255 -> normalised (1, 3, H, W)."""
        return (image - self.model.pixel_mean) / self.model.pixel_std


class CloudsScoresGraph(_NormalizedInput):
    """CLOUDS: image -> (1, K, H, W) per-class scores of the mask classification.

    The class list is fixed at export: the text-classifier head's CLIP text embeddings of
    ``class_names`` (synonyms and templates averaged, then the void embedding) are computed once
    and stored as a constant; the linear head predicts its own K training classes.
    """

    def __init__(self, model: CLOUDS, class_names: Sequence[str]) -> None:
        """
        Raises:
            ConfigError: options the graph does not implement (the geometric ensemble, masks
                resized before inference), or a class list the linear head cannot predict.
        """
        super().__init__(model)
        if model.geometric_ensemble is not None:
            raise ConfigError(
                "MODEL.CLOUDS.GEOMETRIC_ENSEMBLE is not supported by the ONNX exporter; export "
                "with MODEL.CLOUDS.GEOMETRIC_ENSEMBLE False"
            )
        if model.sem_seg_postprocess_before_inference:
            raise ConfigError(
                "MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE is not supported "
                "by the ONNX exporter (the graph's output size is its input size); set it False"
            )
        self.class_names = list(class_names)
        self.num_templates: list[int] = []
        if model.uses_text:
            with torch.no_grad():
                classifier, num_templates = model.classifier(self.class_names)
            self.register_buffer("text_classifier", classifier.detach().float().clone())
            self.num_templates = list(num_templates)
        elif len(self.class_names) != model.sem_seg_head.num_classes:
            raise ConfigError(
                f"The linear class head predicts {model.sem_seg_head.num_classes} classes "
                f"(MODEL.SEM_SEG_HEAD.NUM_CLASSES) but {len(self.class_names)} class names were "
                f"given"
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) padded 0-255 image -> (1, K, H, W) scores (``CLOUDS.inference``)."""
        images = self.normalize(image)
        features = self.model.backbone(images)
        if self.model.uses_text:
            outputs = self.model.sem_seg_head(features, self.text_classifier, self.num_templates)
        else:
            outputs = self.model.sem_seg_head(features)
        probs = outputs["pred_logits"].float().softmax(dim=-1)[..., :-1]
        masks = F.interpolate(
            outputs["pred_masks"].float(),
            size=images.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        return semantic_inference(probs[0], masks[0])[None]


class VFMLightGraph(_NormalizedInput):
    """VFM segmentor: image -> (1, K, H / 4, W / 4) light-head logits (backbone + decode_head)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.decode_head(self.model.backbone(self.normalize(image)))


class VFMRefineGraph(_NormalizedInput):
    """VFM segmentor: window image + its coarse logits -> (1, K, H / 16, W / 16) refined
    logits (backbone + aux_decoder)."""

    def __init__(self, model: VFMSegmentor) -> None:
        super().__init__(model)
        if model.aux_decoder is None:
            raise ConfigError("The model has no refinement head (MODEL.VFM_HEAD.TYPE 'ms')")

    def forward(self, image: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """image (1, 3, H, W), context (1, K, h, w) coarse logits of the same region."""
        return self.model.aux_decoder(self.model.backbone(self.normalize(image)), context)
