"""Pixel decoders and the deformable-attention op (importing registers them)."""

from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn, ms_deform_attn_core
from clouds.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder

__all__ = ["MSDeformAttn", "MSDeformAttnPixelDecoder", "ms_deform_attn_core"]
