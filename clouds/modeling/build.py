"""Build the model named by the config through the meta-architecture registry."""

from __future__ import annotations

from torch import nn

from clouds.config import CfgNode
from clouds.modeling.registry import META_ARCH_REGISTRY, registered_class

__all__ = ["build_model"]


def build_model(cfg: CfgNode) -> nn.Module:
    """``META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE).from_config(cfg)``, on the CPU.

    The caller (the engine) moves the model to its device.
    """
    meta_arch = registered_class(
        META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE"
    )
    return meta_arch.from_config(cfg)
