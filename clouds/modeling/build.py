"""Build the model named by the config through the meta-architecture registry."""

from __future__ import annotations

from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.registry import META_ARCH_REGISTRY

__all__ = ["build_model"]


def build_model(cfg: CfgNode) -> nn.Module:
    """``META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE).from_config(cfg)``, on the CPU.

    The caller (the engine) moves the model to its device.
    """
    name = cfg.MODEL.META_ARCHITECTURE
    try:
        meta_arch = META_ARCH_REGISTRY.get(name)
    except KeyError as e:
        known = ", ".join(sorted(name for name, _ in META_ARCH_REGISTRY))
        raise ConfigError(
            f"MODEL.META_ARCHITECTURE={name!r} is not registered (known: {known})"
        ) from e
    return meta_arch.from_config(cfg)
