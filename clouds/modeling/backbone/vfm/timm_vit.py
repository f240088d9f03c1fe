"""Creating timm ViTs (DINOv2, EVA02) at patch 16 from hub ids or local weight files."""

from __future__ import annotations

from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.weights import hub_weights_file, resolve_weights_path

__all__ = ["TimmVFMBackbone", "create_timm_vit"]


def _native_grid(model_id: str, arch_kwargs: dict[str, Any]) -> tuple[int, int]:
    """Position-embedding grid of the model as published (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = timm.create_model(model_id, pretrained=False, num_classes=0, **arch_kwargs)
    return tuple(model.patch_embed.grid_size)


def create_timm_vit(
    model_id: str,
    *,
    weights: str,
    local_files_only: bool,
    patch_size: int,
    tiny: TinySettings | None,
) -> nn.Module:
    """A timm ViT running at ``patch_size`` on any input size.

    Weights: ``"random"`` or a tiny variant without a file -> random init; a local file/folder ->
    that checkpoint; ``""`` -> the hub weights of ``model_id`` (from the local cache only with
    ``local_files_only``). The patch kernel is resampled to ``patch_size`` and the model is built
    at the published position grid (``img_size = grid * patch_size``) so that the position
    embedding is interpolated once, to each input's grid, at run time (``dynamic_img_size``).
    """
    arch: dict[str, Any] = {}
    if tiny is not None:
        arch = {"embed_dim": tiny.width, "depth": tiny.depth, "num_heads": tiny.heads}
    grid = _native_grid(model_id, arch)
    kwargs: dict[str, Any] = dict(
        arch,
        num_classes=0,
        patch_size=patch_size,
        img_size=(grid[0] * patch_size, grid[1] * patch_size),
        dynamic_img_size=True,
    )
    if weights == "random" or (tiny is not None and not weights):
        return timm.create_model(model_id, pretrained=False, **kwargs)
    if weights:
        file = resolve_weights_path(weights)
    else:
        pretrained_cfg = get_pretrained_cfg(model_id)
        if pretrained_cfg is None or not pretrained_cfg.hf_hub_id:
            raise ConfigError(
                f"MODEL.VFM.MODEL_ID {model_id!r} has no hub weights in timm; set MODEL.VFM.WEIGHTS"
            )
        file = hub_weights_file(pretrained_cfg.hf_hub_id, local_files_only=local_files_only)
    return timm.create_model(
        model_id, pretrained=True, pretrained_cfg_overlay={"file": file}, **kwargs
    )


class TimmVFMBackbone(VFMBackbone):
    """A VFM backbone around a timm ViT (``VisionTransformer`` or ``Eva``) built by model id."""

    @classmethod
    def from_config(cls, cfg: CfgNode) -> TimmVFMBackbone:
        vfm = cfg.MODEL.VFM
        vit = create_timm_vit(
            vfm.MODEL_ID,
            weights=vfm.WEIGHTS,
            local_files_only=vfm.LOCAL_FILES_ONLY,
            patch_size=vfm.PATCH_SIZE,
            tiny=TinySettings.from_config(cfg),
        )
        return cls.from_vit(cfg, vit, embed_dim=vit.embed_dim, depth=len(vit.blocks))

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> 4 x (B, C, H/16, W/16): raw block outputs, prefix tokens dropped."""
        return self.vit.forward_intermediates(
            images,
            indices=list(self.out_indices),
            norm=False,
            stop_early=True,
            output_fmt="NCHW",
            intermediates_only=True,
        )
