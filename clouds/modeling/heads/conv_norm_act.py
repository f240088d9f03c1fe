"""Conv + norm + ReLU blocks as mmcv's ``ConvModule`` / ``DepthwiseSeparableConvModule`` build
them for the mmseg heads (SegFormer, DAFormer, HRDA's attention): no conv bias when a norm
follows, the norm registered as ``gn`` / ``bn`` so that the originals' checkpoint keys
(``<block>.conv.weight``, ``<block>.gn.weight``, ...) load as they are, and mmcv's
initialisation (kaiming normal, fan_out, ReLU gain; norm weight 1, bias 0).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NORMS", "ConvNormAct", "DepthwiseSeparableConv", "classifier"]

# norm names of the configs -> the attribute mmcv gives the layer
NORMS = {"GN": "gn", "BN": "bn"}


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "GN":
        if channels % 32:
            raise ValueError(f"GroupNorm(32) needs channels divisible by 32, got {channels}")
        return nn.GroupNorm(32, channels)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm {norm!r} is not one of {', '.join(NORMS)}")


class ConvNormAct(nn.Module):
    """Conv2d (bias only without a norm) -> GroupNorm(32) / BatchNorm -> ReLU (optional)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        *,
        norm: str | None = "GN",
        activation: bool = True,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        """
        Args:
            norm: "GN" (GroupNorm with 32 groups), "BN" or None.
            activation: ReLU after the norm.
            dilation: dilation of the conv; the padding keeps the spatial size.
            groups: conv groups (``in_channels`` for a depthwise conv).
        """
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            groups=groups,
            bias=norm is None,
        )
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        self.norm_name = None
        if norm is not None:
            layer = _norm_layer(norm, out_channels)
            self.norm_name = NORMS[norm]
            self.add_module(self.norm_name, layer)
        self.activate = nn.ReLU(inplace=True) if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        return self.activate(x)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k conv block then pointwise 1x1 conv block, each with norm and ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, dilation: int, norm: str
    ) -> None:
        super().__init__()
        self.depthwise_conv = ConvNormAct(
            in_channels, in_channels, kernel_size, norm=norm, dilation=dilation, groups=in_channels
        )
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.pointwise_conv(self.depthwise_conv(x))


def classifier(channels: int, num_classes: int) -> nn.Conv2d:
    """mmseg's decode-head ``conv_seg``: 1x1 conv, normal(std 0.01) weight, zero bias."""
    conv = nn.Conv2d(channels, num_classes, kernel_size=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv
