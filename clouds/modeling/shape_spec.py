"""The contract a backbone declares for each of its feature maps."""

from dataclasses import dataclass

__all__ = ["ShapeSpec"]


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride (relative to the input) of one feature map."""

    channels: int
    stride: int
