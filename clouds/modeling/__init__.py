"""Models: backbones, heads, pixel and transformer decoders, meta-architectures.

Importing this package registers every component, so ``build_model(cfg)`` finds them by name.
"""

from clouds.modeling.backbone.clip import CLIP
from clouds.modeling.backbone.vfm import EVA02, CLIPViT, DINOv2, SAMViT
from clouds.modeling.build import build_model
from clouds.modeling.heads.mask_former_head import MaskFormerHead
from clouds.modeling.meta_arch.clouds import CLOUDS
from clouds.modeling.meta_arch.hrda_segmentor import HRDASegmentor
from clouds.modeling.meta_arch.multiscale_segmentor import MultiScaleSegmentor
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from clouds.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
)

__all__ = [
    "CLIP",
    "CLIPViT",
    "CLOUDS",
    "DINOv2",
    "EVA02",
    "HRDASegmentor",
    "MSDeformAttnPixelDecoder",
    "MaskFormerHead",
    "MultiScaleMaskedTransformerDecoder",
    "MultiScaleSegmentor",
    "SAMViT",
    "VFMSegmentor",
    "build_model",
]
