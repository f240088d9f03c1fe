"""Pixel decoder: deformable-attention encoder on res3..res5, FPN fusion down to stride 4.

Module names and initialisation follow the original (Mask2Former as CLOUDS ships it), so its
checkpoints load unchanged: ``input_proj.N`` (1x1 conv with bias + GroupNorm, xavier),
``transformer.level_embed``, ``transformer.encoder.layers.N``, ``mask_features``, and one
``adapter_i`` (lateral 1x1 conv) / ``layer_i`` (3x3 conv) pair per FPN level, finest first, each
a convolution holding its ``norm`` (detectron2's Conv2d layout, c2_xavier_fill).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clouds.config import CfgNode
from clouds.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn
from clouds.modeling.registry import PIXEL_DECODER_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import c2_xavier_fill
from clouds.modeling.transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = [
    "Conv2dNorm",
    "MSDeformAttnEncoder",
    "MSDeformAttnEncoderLayer",
    "MSDeformAttnPixelDecoder",
    "group_norm",
]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or the largest divisor of 32 that divides ``channels``."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


class Conv2dNorm(nn.Conv2d):
    """Convolution followed by an optional ``norm`` module and ReLU (detectron2's Conv2d layout:
    the norm is a child named ``norm``), initialised with c2_xavier_fill; no bias when normed."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, norm: str, relu: bool
    ) -> None:
        if norm not in ("GN", ""):
            raise ValueError(f"MODEL.SEM_SEG_HEAD.NORM must be 'GN' or '', got {norm!r}")
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm == ""
        )
        self.norm = group_norm(out_channels) if norm == "GN" else None
        self.relu = relu
        c2_xavier_fill(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


class MSDeformAttnEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention over all levels, then an FFN."""

    def __init__(
        self,
        *,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        n_levels: int,
        n_heads: int,
        n_points: int,
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(
            d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points
        )
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """src, pos (N, S, C); reference_points (1, S, L, 2) -> (N, S, C)."""
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes)
        src = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class MSDeformAttnEncoder(nn.Module):
    """Stack of deformable encoder layers over flattened multi-scale maps with level embeddings."""

    def __init__(
        self,
        *,
        d_model: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float,
        n_levels: int,
        n_heads: int,
        n_points: int,
    ) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(
            MSDeformAttnEncoderLayer(
                d_model=d_model,
                dim_feedforward=dim_feedforward,
                dropout=dropout,
                n_levels=n_levels,
                n_heads=n_heads,
                n_points=n_points,
            )
            for _ in range(num_layers)
        )
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def reference_points(spatial_shapes: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
        """Pixel centres of every level in [0, 1] as (x, y): (1, S, L, 2) float32, the same
        point on every level."""
        points = []
        for h, w in spatial_shapes:
            ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
            xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1))
        ref = torch.cat(points, dim=0)
        return ref[None, :, None, :].expand(1, -1, len(spatial_shapes), -1)

    def forward(self, srcs: Sequence[Tensor], pos_embeds: Sequence[Tensor]) -> Tensor:
        """srcs, pos_embeds: L maps (N, C, H_l, W_l) -> (N, S, C) encoded, levels concatenated."""
        # sizes kept as they come (symbolic under torch.export: no specialisation)
        shapes = [(s.shape[-2], s.shape[-1]) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], dim=1)
        pos = torch.cat(
            [
                p.flatten(2).transpose(1, 2) + self.level_embed[lvl].to(p.dtype)
                for lvl, p in enumerate(pos_embeds)
            ],
            dim=1,
        )
        ref = self.reference_points(shapes, src.device)
        for layer in self.encoder.layers:
            src = layer(src, pos, ref, shapes)
        return src


@PIXEL_DECODER_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable-attention encoder on the coarse levels, FPN-style fusion to ``common_stride``.

    Outputs mask features (N, mask_dim, H/common_stride, W/common_stride) and the three
    encoder maps (coarse to fine) that the transformer decoder attends to.
    """

    def __init__(
        self,
        *,
        input_shape: dict[str, ShapeSpec],
        transformer_in_features: Sequence[str],
        conv_dim: int,
        mask_dim: int,
        norm: str,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        transformer_n_points: int,
        common_stride: int,
    ) -> None:
        super().__init__()
        missing = [f for f in transformer_in_features if f not in input_shape]
        if missing:
            raise ValueError(
                "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES names features "
                f"{missing} the backbone does not provide (it has {sorted(input_shape)})"
            )
        # All features, finest first; the encoder uses its levels coarsest first.
        ordered = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [name for name, _ in ordered]
        trans = [(n, s) for n, s in ordered if n in transformer_in_features]
        self.transformer_in_features = [n for n, _ in trans][::-1]
        self.num_levels = len(self.transformer_in_features)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(s.channels, conv_dim, kernel_size=1), group_norm(conv_dim))
            for _, s in trans[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        self.pe_layer = PositionEmbeddingSine(num_pos_feats=conv_dim // 2, normalize=True)
        self.transformer = MSDeformAttnEncoder(
            d_model=conv_dim,
            num_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            n_levels=self.num_levels,
            n_heads=transformer_nheads,
            n_points=transformer_n_points,
        )
        self.mask_dim = mask_dim
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        c2_xavier_fill(self.mask_features)
        # The decoder attends to (at most) three scales: the coarsest encoder levels.
        self.maskformer_num_feature_levels = 3
        # FPN levels: every feature finer than the finest encoder level, down to common_stride.
        finest_trans_stride = min(s.stride for _, s in trans)
        self.common_stride = common_stride
        num_fpn_levels = max(int(math.log2(finest_trans_stride) - math.log2(common_stride)), 0)
        fpn = ordered[:num_fpn_levels]  # finest first, as adapter_1 / layer_1 ...
        for idx, (_, shape) in enumerate(fpn, start=1):
            lateral = Conv2dNorm(shape.channels, conv_dim, 1, norm=norm, relu=False)
            self.add_module(f"adapter_{idx}", lateral)
            self.add_module(f"layer_{idx}", Conv2dNorm(conv_dim, conv_dim, 3, norm=norm, relu=True))
        # Fused top-down: from the coarsest FPN level to the finest.
        self.fpn_features = [n for n, _ in fpn][::-1]
        self.num_fpn_levels = len(fpn)

    @classmethod
    def from_config(
        cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]
    ) -> MSDeformAttnPixelDecoder:
        head = cfg.MODEL.SEM_SEG_HEAD
        return cls(
            input_shape={k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            transformer_in_features=list(head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES),
            conv_dim=head.CONVS_DIM,
            mask_dim=head.MASK_DIM,
            norm=head.NORM,
            transformer_dropout=head.DEFORMABLE_TRANSFORMER_ENCODER_DROPOUT,
            transformer_nheads=head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
            transformer_dim_feedforward=head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
            transformer_enc_layers=head.TRANSFORMER_ENC_LAYERS,
            transformer_n_points=head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            common_stride=head.COMMON_STRIDE,
        )

    def forward_features(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Encode and fuse backbone features.

        Args:
            features: backbone maps by name, e.g. "res2" (N, C2, H/4, W/4) ... "res5" (N, C5,
                H/32, W/32).

        Returns:
            mask_features (N, mask_dim, H/4, W/4); the encoder's coarsest map (N, conv_dim,
            H/32, W/32); multi-scale features: 3 maps (N, conv_dim, *), coarse to fine.
        """
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise KeyError(f"pixel decoder needs features {missing}, got {sorted(features)}")
        srcs = [
            proj(features[f].float())
            for proj, f in zip(self.input_proj, self.transformer_in_features)
        ]
        pos = [self.pe_layer(s) for s in srcs]
        encoded = self.transformer(srcs, pos)
        sizes = [s.shape[-2] * s.shape[-1] for s in srcs]
        outs = [
            y.transpose(1, 2).reshape(s.shape) for y, s in zip(encoded.split(sizes, dim=1), srcs)
        ]
        for i, name in enumerate(self.fpn_features):
            level = self.num_fpn_levels - i
            lateral = getattr(self, f"adapter_{level}")
            output = getattr(self, f"layer_{level}")
            x = lateral(features[name].float())
            y = x + F.interpolate(outs[-1], size=x.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(output(y))
        multi_scale = outs[: self.maskformer_num_feature_levels]
        return self.mask_features(outs[-1]), outs[0], multi_scale
