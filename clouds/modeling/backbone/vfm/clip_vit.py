"""CLIP ViT image tower (open_clip ``ViT-L-14``) as a LoRA-tuned VFM backbone, run as DGVFM does.

Weights: OpenAI's TorchScript ``ViT-L-14.pt`` (read with ``torch.jit.load``, no network), an
open_clip / converted state dict, or the open_clip tag MODEL.VFM.PRETRAINED_TAG; converted in
memory as DGVFM's ``convert_clip.py`` does (kernel bicubic to 16, position embedding bilinear
to the MODEL.VFM.CONVERT_SIZE grid). At run time, as DGVFM's ``CLIPVisionTransformer``: the
patch entries are resampled bilinearly from that grid to the input's, and the class token gets
its class embedding twice (once as token, once added to its position entry;
MODEL.VFM.CLIP_DOUBLE_CLASS_TOKEN).

open_clip's blocks use ``nn.MultiheadAttention``, whose forward reads ``out_proj.weight``
directly (``F.multi_head_attention_forward``) and would silently bypass a LoRA-wrapped
``out_proj`` (DGVFM's LoRA on ``out_proj`` never acts, so MODEL.LORA.MODE "effective" adapts
the two MLP layers only). Every such attention is therefore swapped for :class:`ProjectedSelfAttention`,
which holds the same parameters under the same names and calls ``out_proj`` as a module.

The blocks run on sequence-first tokens (N, B, C), as DGVFM's tower (open_clip's default is
batch-first): the LoRA dropouts draw their masks over the tokens in memory order, so only this
layout draws the original's masks from the same seed.

With Rein (MODEL.REIN.ENABLED), as DGVFM's ``ReinsCLIPVisionTransformer``, the four maps go
through the module's trainable feature pyramid (``fpn1`` .. ``fpn4``) to strides 4, 8, 16, 32.
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, VisionTransformer
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.clip_pyramid import clip_pyramid_levels
from clouds.modeling.backbone.vfm.convert import convert_official_state, read_official_file
from clouds.modeling.backbone.vfm.loading import (
    ConvertSettings,
    load_converted_weights,
    load_vit_state,
)
from clouds.modeling.backbone.vfm.weights import hub_weights_file
from clouds.modeling.registry import BACKBONE_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["CLIPViT", "ProjectedSelfAttention", "create_open_clip_visual"]

_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ProjectedSelfAttention(nn.Module):
    """Self-attention with ``nn.MultiheadAttention``'s parameters, ``out_proj`` called as a module.

    Same call signature and output as ``nn.MultiheadAttention`` used for self-attention
    (returns ``(output, None)``), same state-dict keys (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj.*``).
    """

    def __init__(
        self, *, attention: nn.MultiheadAttention, batch_first: bool | None = None
    ) -> None:
        """``batch_first``: the token layout; None keeps ``attention``'s own."""
        super().__init__()
        if not attention._qkv_same_embed_dim:
            raise ValueError("only attention with equal query/key/value widths is supported")
        self.num_heads = attention.num_heads
        self.batch_first = attention.batch_first if batch_first is None else batch_first
        self.in_proj_weight = attention.in_proj_weight
        self.in_proj_bias = attention.in_proj_bias
        self.out_proj = attention.out_proj

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """query = key = value: (B, N, C) if batch_first else (N, B, C)."""
        if key is not query or value is not query or need_weights:
            raise ValueError("ProjectedSelfAttention only computes self-attention without weights")
        x = query if self.batch_first else query.transpose(0, 1)
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.out_proj(out.transpose(1, 2).reshape(b, n, c))
        return (out if self.batch_first else out.transpose(0, 1)), None


def _tower_state(
    model_name: str,
    *,
    pretrained_tag: str,
    tag_cfg: dict[str, Any],
    weights: str,
    local_files_only: bool,
    convert: ConvertSettings,
) -> dict[str, torch.Tensor]:
    """The image-tower state dict to load, converted: MODEL.VFM.WEIGHTS wins; else (with
    ``local_files_only``) the cached hub file of the tag, else open_clip fetches the tag."""
    if weights:
        return load_converted_weights(weights, "clip", convert)
    if local_files_only:
        if not tag_cfg.get("hf_hub"):
            raise ConfigError(
                f"open_clip tag {pretrained_tag!r} of {model_name} has no hub file; "
                f"set MODEL.VFM.WEIGHTS"
            )
        file = hub_weights_file(
            tag_cfg["hf_hub"].strip("/"), local_files_only=True, names=_OPEN_CLIP_FILES
        )
        state = read_official_file(file, "clip")
    else:
        clip = open_clip.create_model(
            model_name, pretrained=pretrained_tag, force_quick_gelu=bool(tag_cfg.get("quick_gelu"))
        )
        state = clip.visual.state_dict()
    return convert_official_state(
        state,
        "clip",
        patch_size=convert.patch_size,
        grid=convert.grid,
        patch_resample=convert.patch_resample,
    )


def create_open_clip_visual(
    model_name: str,
    *,
    pretrained_tag: str,
    weights: str,
    local_files_only: bool,
    convert: ConvertSettings,
    tiny: TinySettings | None,
) -> VisionTransformer:
    """The open_clip image tower of ``model_name`` at ``convert.patch_size``, its position
    embedding on the ``convert.grid`` grid.

    Weights: ``weights`` a local file/folder (OpenAI TorchScript archive, whole CLIP or image
    tower) wins; else the open_clip ``pretrained_tag`` (from the hub cache only with
    ``local_files_only``); tiny variants without a file and ``weights == "random"`` start random.
    The MLP activation is QuickGELU when the tag says so (``openai``).
    """
    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise ConfigError(f"MODEL.VFM.MODEL_ID {model_name!r} is not an open_clip model name")
    if not pretrained_tag and not weights and tiny is None:
        raise ConfigError(
            f"CLIP {model_name}: set MODEL.VFM.PRETRAINED_TAG (e.g. 'openai') or MODEL.VFM.WEIGHTS"
        )
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained_tag) if pretrained_tag else {}
    if pretrained_tag and not tag_cfg:
        raise ConfigError(
            f"MODEL.VFM.PRETRAINED_TAG {pretrained_tag!r} is not an open_clip tag of {model_name} "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(model_name))})"
        )
    quick_gelu = bool(tag_cfg.get("quick_gelu"))
    if tiny is not None:
        vision = model_cfg["vision_cfg"]
        visual = VisionTransformer(
            image_size=vision["image_size"],
            patch_size=vision["patch_size"],
            width=tiny.width,
            layers=tiny.depth,
            heads=tiny.heads,
            mlp_ratio=vision.get("mlp_ratio", 4.0),
            output_dim=tiny.width,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
        )
    else:
        visual = open_clip.create_model(
            model_name, pretrained=None, force_quick_gelu=quick_gelu
        ).visual
    visual.conv1 = nn.Conv2d(
        3, visual.conv1.out_channels, convert.patch_size, convert.patch_size, bias=False
    )
    grid = convert.grid
    visual.positional_embedding = nn.Parameter(
        torch.zeros(1 + grid[0] * grid[1], visual.conv1.out_channels)
    )
    if weights != "random" and not (tiny is not None and not weights):
        state = _tower_state(
            model_name,
            pretrained_tag=pretrained_tag,
            tag_cfg=tag_cfg,
            weights=weights,
            local_files_only=local_files_only,
            convert=convert,
        )
        load_vit_state(visual, state, source=weights or f"open_clip tag {pretrained_tag}")
    _swap_attention(visual)
    return visual


def _swap_attention(visual: VisionTransformer) -> None:
    """Replace each block's ``nn.MultiheadAttention`` by a :class:`ProjectedSelfAttention` and
    make the tower sequence-first (tokens (N, B, C)), as DGVFM's."""
    visual.transformer.batch_first = False
    for i, block in enumerate(visual.transformer.resblocks):
        if not isinstance(block.attn, nn.MultiheadAttention):
            raise ConfigError(
                f"block {i} of the CLIP image tower uses {type(block.attn).__name__}; only "
                f"nn.MultiheadAttention blocks are supported"
            )
        block.attn = ProjectedSelfAttention(attention=block.attn, batch_first=False)


@BACKBONE_REGISTRY.register()
class CLIPViT(VFMBackbone):
    """CLIP ViT image tower; DGVFM's LoRA targets attention-out and both MLP projections."""

    block_pattern = r"transformer\.resblocks\.\d+"
    default_lora_targets = ("attn.out_proj", "mlp.c_fc", "mlp.c_proj")
    bypassed_lora_targets = ("attn.out_proj",)
    token_layout = "sequence_first"

    def __init__(
        self, *, pos_grid: tuple[int, int], double_class_token: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pos_grid = tuple(pos_grid)
        self.double_class_token = double_class_token
        self.pyramid: list[str] = []
        if self.rein_layers:
            if self.patch_size != 16:
                raise ConfigError(
                    f"Rein on CLIP needs MODEL.VFM.PATCH_SIZE 16, got {self.patch_size}"
                )
            if self.resize_features:
                raise ConfigError(
                    "Rein on CLIP brings its maps to strides 4-32 by its pyramid: set MODEL.VFM.RESIZE_FEATURES False"
                )
            for name, level in clip_pyramid_levels(self.embed_dim).items():
                self.add_module(name, level)
                self.pyramid.append(name)

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Stride 16 (4, 8, 16, 32 with Rein's pyramid)."""
        if not self.pyramid:
            return super().output_shape()
        return {
            name: ShapeSpec(channels=self.embed_dim, stride=stride)
            for name, stride in zip(self._out_features, (4, 8, 16, 32))
        }

    @classmethod
    def from_config(cls, cfg: CfgNode) -> CLIPViT:
        vfm = cfg.MODEL.VFM
        convert = ConvertSettings.from_config(cfg)
        visual = create_open_clip_visual(
            vfm.MODEL_ID,
            pretrained_tag=vfm.PRETRAINED_TAG,
            weights=vfm.WEIGHTS,
            local_files_only=vfm.LOCAL_FILES_ONLY,
            convert=convert,
            tiny=TinySettings.from_config(cfg),
        )
        return cls.from_vit(
            cfg,
            visual,
            embed_dim=visual.conv1.out_channels,
            depth=len(visual.transformer.resblocks),
            pos_grid=convert.grid,
            double_class_token=vfm.CLIP_DOUBLE_CLASS_TOKEN,
        )

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1 + h*w, C): the class entry (plus the class embedding when doubled) and the patch
        entries resampled bilinearly from the stored grid to ``grid``."""
        visual = self.vit
        pos = visual.positional_embedding
        cls_pos = pos[:1]
        if self.double_class_token:
            cls_pos = cls_pos + visual.class_embedding
        patch = pos[1:].reshape(1, *self.pos_grid, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=grid, mode="bilinear", align_corners=False)
        return torch.cat([cls_pos, patch.flatten(2)[0].transpose(0, 1)], dim=0)

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> 4 x (B, C, H/16, W/16), class token dropped (with Rein's pyramid:
        strides 4, 8, 16, 32)."""
        visual = self.vit
        x = visual.conv1(images)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls_token = visual.class_embedding.to(x.dtype).expand(b, 1, c)
        pos = self.position_embedding((h, w)).to(x.dtype)
        x = visual.ln_pre(visual.patch_dropout(torch.cat([cls_token, x], dim=1) + pos))
        x = x.transpose(0, 1)  # (N, B, C): the layout the LoRA dropouts draw their masks over

        def to_map(tokens: torch.Tensor) -> torch.Tensor:
            return tokens.transpose(0, 1)[:, 1:].transpose(1, 2).reshape(b, c, h, w)

        features = self.run_blocks(visual.transformer.resblocks, x, to_map)
        if not self.pyramid:
            return features
        return [getattr(self, name)(f) for name, f in zip(self.pyramid, features)]
