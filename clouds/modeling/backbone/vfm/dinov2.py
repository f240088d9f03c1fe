"""DINOv2 ViT (timm's ``VisionTransformer``, DGVFM's run-time position embedding) with LoRA.

Weights: the official ``dinov2_vit*14_pretrain.pth`` (or DGVFM's converted file, or the timm
hub file of MODEL.VFM.MODEL_ID), converted in memory to patch 16 and the MODEL.VFM.CONVERT_SIZE
grid as ``convert_dinov2.py`` does. At run time the position embedding is used as is for square
inputs of that grid and otherwise resampled as DGVFM's ``interpolate_pos_encoding`` does:
bicubic with the scale factor ``(tokens + 0.1) / grid`` (MODEL.VFM.POS_INTERP_OFFSET).
"""

from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.models import get_pretrained_cfg
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.convert import convert_official_state, read_official_file
from clouds.modeling.backbone.vfm.embed import bicubic_resize_by_scale
from clouds.modeling.backbone.vfm.loading import (
    ConvertSettings,
    load_converted_weights,
    load_vit_state,
)
from clouds.modeling.backbone.vfm.weights import hub_weights_file
from clouds.modeling.registry import BACKBONE_REGISTRY

__all__ = ["DINOv2", "create_dinov2", "dinov2_pos_embed"]


def dinov2_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], offset: float) -> torch.Tensor:
    """DGVFM's DINOv2 position embedding (1, 1 + n*n, C) for a token grid (h, w).

    Kept when the input is square with n*n tokens; otherwise the patch entries are resampled
    bicubically with the scale factor ``((h + offset) / n, (w + offset) / n)`` (``offset`` 0:
    to exactly (h, w)). Returns (1, 1 + h*w, C).
    """
    n = int(round((pos_embed.shape[1] - 1) ** 0.5))
    h, w = grid
    if torch.compiler.is_exporting():
        return _exportable_pos_embed(pos_embed, grid, offset, n)
    if h == w and h * w == n * n:
        return pos_embed
    patch = pos_embed[:, 1:].float().reshape(1, n, n, -1).permute(0, 3, 1, 2)
    if offset:
        scale = ((h + offset) / n, (w + offset) / n)
        patch = F.interpolate(patch, scale_factor=scale, mode="bicubic")
    else:
        patch = F.interpolate(patch, size=(h, w), mode="bicubic", align_corners=False)
    if tuple(patch.shape[-2:]) != (h, w):
        raise ValueError(f"position grid {tuple(patch.shape[-2:])} instead of {grid} (offset)")
    patch = patch.permute(0, 2, 3, 1).reshape(1, h * w, -1)
    return torch.cat([pos_embed[:, :1], patch.to(pos_embed.dtype)], dim=1)


def _exportable_pos_embed(
    pos_embed: torch.Tensor, grid: tuple[int, int], offset: float, n: int
) -> torch.Tensor:
    """:func:`dinov2_pos_embed` for ``torch.export`` with a symbolic grid: the resampling as
    matrices (:func:`bicubic_resize_by_scale`) and the kept-as-is case of the n x n grid chosen
    by value instead of by a Python branch."""
    h, w = grid
    source = pos_embed[:, 1:].float().reshape(1, n, n, -1).permute(0, 3, 1, 2)
    patch = bicubic_resize_by_scale(source, (h, w), ((h + offset) / n, (w + offset) / n))
    if offset:  # scale 1 on the n x n grid: the identity, i.e. the embedding kept as is
        kept = bicubic_resize_by_scale(source, (h, w), (h / n, w / n))
        on_grid = (torch.ones(h).sum() == n) & (torch.ones(w).sum() == n)
        patch = torch.where(on_grid, kept, patch)
    patch = patch.permute(0, 2, 3, 1).reshape(1, h * w, -1)
    return torch.cat([pos_embed[:, :1], patch.to(pos_embed.dtype)], dim=1)


def create_dinov2(
    model_id: str,
    *,
    weights: str,
    local_files_only: bool,
    convert: ConvertSettings,
    tiny: TinySettings | None,
) -> nn.Module:
    """timm's ViT of ``model_id`` at ``convert.patch_size`` with a ``convert.grid`` position
    embedding, loaded from ``weights`` (a file/folder; ``""``: the timm hub file of
    ``model_id``, from the cache only with ``local_files_only``; ``"random"`` or a tiny variant
    without a file: random init)."""
    arch: dict[str, Any] = {}
    if tiny is not None:
        arch = {"embed_dim": tiny.width, "depth": tiny.depth, "num_heads": tiny.heads}
    grid = convert.grid
    vit = timm.create_model(
        model_id,
        pretrained=False,
        num_classes=0,
        patch_size=convert.patch_size,
        img_size=(grid[0] * convert.patch_size, grid[1] * convert.patch_size),
        **arch,
    )
    if weights == "random" or (tiny is not None and not weights):
        return vit
    if weights:
        state = load_converted_weights(weights, "dinov2", convert)
        source = f"MODEL.VFM.WEIGHTS {weights}"
    else:
        pretrained = get_pretrained_cfg(model_id)
        if pretrained is None or not pretrained.hf_hub_id:
            raise ConfigError(
                f"MODEL.VFM.MODEL_ID {model_id!r} has no hub weights in timm; set MODEL.VFM.WEIGHTS"
            )
        file = hub_weights_file(pretrained.hf_hub_id, local_files_only=local_files_only)
        state = convert_official_state(
            read_official_file(file, "dinov2"),
            "dinov2",
            patch_size=convert.patch_size,
            grid=grid,
            patch_resample=convert.patch_resample,
        )
        source = file
    load_vit_state(vit, state, source=source)
    return vit


@BACKBONE_REGISTRY.register()
class DINOv2(VFMBackbone):
    """DINOv2 ViT; LoRA on the fused ``qkv`` projection of every block (DGVFM).

    timm's attention calls ``self.qkv(x)`` as a module, as DGVFM's does: the LoRA acts.
    """

    block_pattern = r"blocks\.\d+"
    default_lora_targets = ("attn.qkv",)

    def __init__(self, *, pos_interp_offset: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pos_interp_offset = pos_interp_offset

    @classmethod
    def from_config(cls, cfg: CfgNode) -> DINOv2:
        vfm = cfg.MODEL.VFM
        vit = create_dinov2(
            vfm.MODEL_ID,
            weights=vfm.WEIGHTS,
            local_files_only=vfm.LOCAL_FILES_ONLY,
            convert=ConvertSettings.from_config(cfg),
            tiny=TinySettings.from_config(cfg),
        )
        return cls.from_vit(
            cfg,
            vit,
            embed_dim=vit.embed_dim,
            depth=len(vit.blocks),
            pos_interp_offset=vfm.POS_INTERP_OFFSET,
        )

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> 4 x (B, C, H/16, W/16): raw block outputs, class token dropped."""
        vit = self.vit
        x = vit.patch_embed.proj(images)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([vit.cls_token.expand(b, -1, -1).to(x.dtype), x], dim=1)
        x = x + dinov2_pos_embed(vit.pos_embed, (h, w), self.pos_interp_offset).to(x.dtype)
        return self.run_blocks(
            vit.blocks, x, lambda tokens: tokens[:, 1:].transpose(1, 2).reshape(b, c, h, w)
        )
