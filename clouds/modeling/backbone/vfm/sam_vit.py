"""SAM image encoder (segment-anything ``vit_h`` + checkpoint) as a LoRA-tuned VFM backbone.

Features are the raw outputs of SAM's global-attention blocks (no neck). The position
embedding is the converted one (MODEL.VFM.CONVERT_SIZE grid), added as is, as DGVFM does;
inputs of another grid (which DGVFM's ``SAMViT`` cannot run) get it resampled bicubically. The encoder is built
with segment-anything's own ``ImageEncoderViT`` and the published hyper-parameters of each
model type; the ``image_encoder.*`` entries of a SAM checkpoint (``sam_vit_h_4b8939.pth``) are
loaded into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.embed import interpolate_pos_embed_nhwc
from clouds.modeling.backbone.vfm.loading import (
    ConvertSettings,
    load_converted_weights,
    load_vit_state,
)
from clouds.modeling.registry import BACKBONE_REGISTRY

__all__ = ["SAM_ENCODER_ARCHS", "SAMViT", "SamEncoderArch", "create_sam_encoder"]

_TINY_WINDOW = 2  # window of the tiny variant's windowed blocks (tokens), fits 64 px inputs


@dataclass(frozen=True)
class SamEncoderArch:
    """Hyper-parameters of one SAM image encoder (as in segment-anything's ``build_sam``)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    img_size: int = 1024


SAM_ENCODER_ARCHS = {
    "vit_h": SamEncoderArch(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamEncoderArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamEncoderArch(768, 12, 12, (2, 5, 8, 11)),
}


def create_sam_encoder(
    model_type: str,
    *,
    weights: str,
    convert: ConvertSettings,
    tiny: TinySettings | None,
    out_indices: tuple[int, ...],
) -> tuple[ImageEncoderViT, SamEncoderArch]:
    """SAM's image encoder without its neck, its position embedding on the ``convert.grid``
    grid, loaded from ``weights`` converted as DGVFM's ``convert_sam.py`` does.

    As DGVFM's ``SAMViT`` (built for 512 px crops, global blocks with ``4 * 32 - 1`` relative
    positions), the encoder is built for twice the converted size, so the relative-position
    tables keep the release's shapes and are resampled to the input at run time. A tiny variant
    takes its global-attention blocks from ``out_indices``. ``weights`` is a SAM checkpoint (whole
    SAM or encoder only); ``"random"`` (or a tiny variant without a file) starts random.

    Raises:
        ConfigError: unknown model type, missing checkpoint, non-square MODEL.VFM.CONVERT_SIZE,
            or ``out_indices`` that are not the global-attention blocks.
    """
    if tiny is not None:
        arch = SamEncoderArch(tiny.width, tiny.depth, tiny.heads, out_indices, _TINY_WINDOW)
    elif model_type in SAM_ENCODER_ARCHS:
        arch = SAM_ENCODER_ARCHS[model_type]
    else:
        raise ConfigError(
            f"MODEL.VFM.MODEL_ID {model_type!r} is not a SAM type ({', '.join(SAM_ENCODER_ARCHS)})"
        )
    if tuple(out_indices) != arch.global_attn_indexes:
        raise ConfigError(
            f"MODEL.VFM.OUT_INDICES {list(out_indices)} must be the global-attention blocks "
            f"{list(arch.global_attn_indexes)} of SAM {model_type}"
        )
    if not weights and tiny is None:
        raise ConfigError(
            f"SAM {model_type} needs a checkpoint: set MODEL.VFM.WEIGHTS (e.g. sam_vit_h_4b8939.pth)"
        )
    grid = convert.grid
    if grid[0] != grid[1]:
        raise ConfigError(f"SAM needs a square MODEL.VFM.CONVERT_SIZE, got {list(grid)} tokens")
    encoder = ImageEncoderViT(
        img_size=2 * grid[0] * convert.patch_size,
        patch_size=convert.patch_size,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_ratio=4.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        window_size=arch.window_size,
        global_attn_indexes=arch.global_attn_indexes,
    )
    encoder.neck = nn.Identity()
    encoder.pos_embed = nn.Parameter(torch.zeros(1, grid[0], grid[1], arch.embed_dim))
    if weights and weights != "random":
        state = load_converted_weights(weights, "sam", convert)
        load_vit_state(encoder, state, source=f"MODEL.VFM.WEIGHTS {weights}")
    return encoder, arch


@BACKBONE_REGISTRY.register()
class SAMViT(VFMBackbone):
    """SAM ViT image encoder; LoRA on the fused ``qkv`` projection of every block (DGVFM)."""

    block_pattern = r"blocks\.\d+"
    default_lora_targets = ("attn.qkv",)
    token_layout = "grid"

    def default_rein_layers(self, depth: int) -> tuple[int, ...]:
        """Rein refines the global-attention blocks (``out_indices``), as the original's."""
        return self.out_indices

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SAMViT:
        vfm = cfg.MODEL.VFM
        encoder, arch = create_sam_encoder(
            vfm.MODEL_ID,
            weights=vfm.WEIGHTS,
            convert=ConvertSettings.from_config(cfg),
            tiny=TinySettings.from_config(cfg),
            out_indices=tuple(vfm.OUT_INDICES),
        )
        return cls.from_vit(cfg, encoder, embed_dim=arch.embed_dim, depth=arch.depth)

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> 4 x (B, C, H/16, W/16): outputs of the global-attention blocks."""
        encoder = self.vit
        x = encoder.patch_embed(images)
        if encoder.pos_embed is not None:
            x = x + interpolate_pos_embed_nhwc(encoder.pos_embed, tuple(x.shape[1:3]))
        return self.run_blocks(encoder.blocks, x, lambda tokens: tokens.permute(0, 3, 1, 2))
