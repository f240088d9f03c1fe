"""HRDA's multi-resolution fusion (Hoyer et al.), as DGVFM's ``HRDAHead``.

One context head predicts both the low-resolution (context) image and the high-resolution
(detail) image or its crop; a scale-attention head predicts, from the context features, a
sigmoid weight ``a`` per pixel (and class). Fused logits at the detail resolution:
``a * detail + up((1 - a) * context)``, where in training ``a`` is zero outside the detail crop
and the detail logits are zero outside it. Boxes are ``(y1, y2, x1, x2)`` in pixels of the
detail-scale image; the logits have the context head's output stride ``s`` relative to their
input, computed from the shapes (4 for VFMNet, 16 for the SegFormer / DAFormer heads on a
stride-16 ViT), and a box maps to logits by ``int(v / s)`` as the original's ``scale_box``.
Submodule names (``head``, ``scale_attention``) equal the original's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from clouds.modeling.heads.base import DecodeHead, check_head
from clouds.modeling.resize import bilinear

__all__ = ["Box", "HRDAHead", "scale_box"]

Box = tuple[int, int, int, int]  # (y1, y2, x1, x2)


def scale_box(box: Sequence[int], scale: float) -> Box:
    """Each coordinate of ``box`` divided by ``scale`` and truncated, as the original."""
    y1, y2, x1, x2 = box
    return int(y1 / scale), int(y2 / scale), int(x1 / scale), int(x2 / scale)


class HRDAHead(nn.Module):
    """Context head + scale attention; fuses context and detail logits (module docstring)."""

    def __init__(
        self,
        *,
        head: DecodeHead,
        scale_attention: DecodeHead,
        scales: tuple[float, float],
        feature_stride: int,
    ) -> None:
        """
        Args:
            head: the context head, run on context and detail features alike.
            scale_attention: predicts the attention logits from the context features.
            scales: (context, detail) image scales, context <= detail (e.g. (0.5, 1.0)).
            feature_stride: stride of the backbone maps (16).
        """
        super().__init__()
        check_head(head, DecodeHead, "HRDA context head (MODEL.HRDA.HEAD_NAME)")
        check_head(scale_attention, DecodeHead, "HRDA attention (MODEL.HRDA.ATTENTION_HEAD_NAME)")
        if not scales[0] <= scales[1]:
            raise ValueError(f"HRDA scales need context <= detail, got {scales}")
        self.head = head
        self.scale_attention = scale_attention
        self.scales = scales
        self.feature_stride = feature_stride

    def decode_windows(
        self, features: Mapping[str, torch.Tensor], boxes: Sequence[Box], *, batch_size: int
    ) -> torch.Tensor:
        """Detail logits of an image from its windows: maps of all windows (window-major,
        (n_windows * B, C, h, w)) and their pixel boxes -> (B, K, H / s, W / s), overlaps
        averaged."""
        logits = self.head(features)
        stride = self.feature_stride * next(iter(features.values())).shape[-2] / logits.shape[-2]
        scaled = [scale_box(b, stride) for b in boxes]
        height, width = max(b[1] for b in scaled), max(b[3] for b in scaled)
        total = logits.new_zeros((batch_size, logits.shape[1], height, width))
        count = logits.new_zeros((batch_size, 1, height, width))
        for i, (y1, y2, x1, x2) in enumerate(scaled):
            total[..., y1:y2, x1:x2] += logits[i * batch_size : (i + 1) * batch_size]
            count[..., y1:y2, x1:x2] += 1
        return total / count

    def forward(
        self,
        context_features: Mapping[str, torch.Tensor],
        detail: Mapping[str, torch.Tensor] | torch.Tensor,
        *,
        crop_box: Box | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused, attention-weighted context, detail) logits.

        Args:
            context_features: maps of the context image (B, C, h, w).
            detail: maps of the detail image or crop, or its already decoded logits
                (:meth:`decode_windows`).
            crop_box: the detail crop's box in the detail-scale image (training), None when the
                detail covers the whole image.

        Returns:
            fused (B, K, H / s, W / s) at the detail scale, context (B, K, h', w') multiplied
            by (1 - attention), detail (B, K, h'', w'') logits.
        """
        context = self.head(context_features)
        detail_logits = detail if isinstance(detail, torch.Tensor) else self.head(detail)
        attention = torch.sigmoid(self.scale_attention(context_features))
        attention = bilinear(attention, size=context.shape[-2:])
        stride = self.feature_stride * next(iter(context_features.values())).shape[-2]
        stride = stride / context.shape[-2]  # output stride s of the context head
        ratio = self.scales[1] / self.scales[0]
        if crop_box is not None:
            mask = context.new_zeros((context.shape[0], 1, *context.shape[-2:]))
            y1, y2, x1, x2 = scale_box(crop_box, stride / self.scales[0])
            mask[..., y1:y2, x1:x2] = 1
            attention = attention * mask
        context = (1 - attention) * context
        up_context = bilinear(context, scale_factor=ratio)
        attention = bilinear(attention, scale_factor=ratio)
        if crop_box is not None:
            inserted = torch.zeros_like(up_context)
            y1, y2, x1, x2 = scale_box(crop_box, stride)
            inserted[..., y1:y2, x1:x2] = detail_logits
        else:
            inserted = detail_logits
        return attention * inserted + up_context, context, detail_logits
