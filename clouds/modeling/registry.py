"""One fvcore Registry per swappable component; build only through ``REGISTRY.get``."""

from fvcore.common.registry import Registry

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PIXEL_DECODER_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "TRANSFORMER_DECODER_REGISTRY",
    "VFM_HEAD_REGISTRY",
]

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = "Backbones: ``cls.from_config(cfg)`` -> Backbone."
META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Whole models: ``cls.from_config(cfg)`` -> nn.Module."
SEM_SEG_HEADS_REGISTRY = Registry("SEM_SEG_HEADS")
SEM_SEG_HEADS_REGISTRY.__doc__ = "Segmentation heads: ``cls.from_config(cfg, input_shape)``."
PIXEL_DECODER_REGISTRY = Registry("PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = "Pixel decoders: ``cls.from_config(cfg, input_shape)``."
TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_DECODER")
TRANSFORMER_DECODER_REGISTRY.__doc__ = (
    "Transformer decoders: ``cls.from_config(cfg, in_channels)``."
)
VFM_HEAD_REGISTRY = Registry("VFM_HEAD")
VFM_HEAD_REGISTRY.__doc__ = (
    "VFM segmentor heads (VFMNet, MGRNet): ``cls.from_config(cfg, input_shape)``."
)
