"""Segmentation head (the original's ``sem_seg_head``): pixel decoder + masked-attention decoder."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# Imported for their registrations, so that the head can build any decoder by name.
import clouds.modeling.pixel_decoder  # noqa: F401
import clouds.modeling.transformer_decoder  # noqa: F401
from clouds.config import CfgNode
from clouds.modeling.heads.base import MaskClassificationHead, check_head
from clouds.modeling.registry import (
    PIXEL_DECODER_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    TRANSFORMER_DECODER_REGISTRY,
    registered_class,
)
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MaskedTransformerDecoderBase,
)

__all__ = ["MaskFormerHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class MaskFormerHead(MaskClassificationHead):
    """Turns backbone features (and, for the text decoder, a text classifier) into per-query
    class logits and masks. Children ``pixel_decoder`` and ``predictor`` as in the original."""

    def __init__(
        self, *, pixel_decoder: nn.Module, transformer_predictor: MaskedTransformerDecoderBase
    ) -> None:
        super().__init__()
        check_head(
            transformer_predictor,
            MaskedTransformerDecoderBase,
            "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
        )
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> MaskFormerHead:
        head = cfg.MODEL.SEM_SEG_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES names {missing}, but the backbone only "
                f"provides {sorted(input_shape)}"
            )
        shapes = {k: v for k, v in input_shape.items() if k in head.IN_FEATURES}
        in_feature = cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE
        if in_feature != "multi_scale_pixel_decoder":
            raise ValueError(
                "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE must be 'multi_scale_pixel_decoder' "
                f"(the decoder attends to the pixel decoder's scales), got {in_feature!r}"
            )
        pixel_decoder_cls = registered_class(
            PIXEL_DECODER_REGISTRY, head.PIXEL_DECODER_NAME, "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME"
        )
        decoder_cls = registered_class(
            TRANSFORMER_DECODER_REGISTRY,
            cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME,
            "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
            MaskedTransformerDecoderBase,
        )
        pixel_decoder = pixel_decoder_cls.from_config(cfg, shapes)
        predictor = decoder_cls.from_config(cfg, in_channels=head.CONVS_DIM)
        return cls(pixel_decoder=pixel_decoder, transformer_predictor=predictor)

    @property
    def uses_text_classifier(self) -> bool:
        """Whether the decoder classifies against text embeddings (else a linear classifier)."""
        return self.predictor.uses_text_classifier

    @property
    def num_classes(self) -> int | None:
        return self.predictor.num_classes

    def forward(
        self,
        features: dict[str, Tensor],
        text_classifier: Tensor | None = None,
        num_templates: Sequence[int] | None = None,
    ) -> dict[str, Tensor | list[dict[str, Tensor]]]:
        """Predict class logits and masks.

        Args:
            features: backbone maps by name ("res2" (B, C2, H/4, W/4) ... "res5" (B, C5, H/32,
                W/32)).
            text_classifier: (S + 1, E) L2-normalised synonym embeddings then void (text decoder).
            num_templates: synonyms per class, summing to S (text decoder).

        Returns:
            "pred_logits" (B, Q, K+1) (last = void), "pred_masks" (B, Q, H/4, W/4) mask logits,
            "aux_outputs": list of such dicts for the earlier decoder layers.
        """
        mask_features, _, multi_scale_features = self.pixel_decoder.forward_features(features)
        return self.predictor(multi_scale_features, mask_features, text_classifier, num_templates)
