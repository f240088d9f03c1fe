"""Transformer decoders and position encodings (importing registers them)."""

from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    OriginalMultiScaleMaskedTransformerDecoder,
)
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = [
    "MultiScaleMaskedTransformerDecoder",
    "OriginalMultiScaleMaskedTransformerDecoder",
    "PositionEmbeddingSine",
]
