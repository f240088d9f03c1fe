"""One fvcore Registry per swappable component; classes named by the config are looked up
through :func:`registered_class`, which names the config key in its errors."""

from __future__ import annotations

from fvcore.common.registry import Registry

from clouds.config import ConfigError

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PIXEL_DECODER_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "TRANSFORMER_DECODER_REGISTRY",
    "VFM_HEAD_REGISTRY",
    "registered_class",
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


def registered_class(
    registry: Registry, name: str, key: str, contract: type | None = None, what: str = ""
) -> type:
    """The class registered as ``name`` (the value of config ``key``) in ``registry``.

    Args:
        contract: base class it must implement (None: any).
        what: how the contract is called in the error (default: its class name).

    Raises:
        ConfigError: naming ``key`` and ``name`` when nothing is registered under it (listing
            what is), or when the class does not implement ``contract``.
    """
    try:
        cls = registry.get(name)
    except KeyError as e:
        known = ", ".join(sorted(n for n, _ in registry))
        raise ConfigError(f"{key}={name!r} is not registered (known: {known})") from e
    if contract is not None and not (isinstance(cls, type) and issubclass(cls, contract)):
        raise ConfigError(
            f"{key}={name!r} is registered as {cls!r}, which does not implement the "
            f"{what or contract.__name__} contract ({contract.__module__}.{contract.__name__})"
        )
    return cls
