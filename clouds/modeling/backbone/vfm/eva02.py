"""EVA02 ViT as DGVFM runs it (its own ``EVA2`` module), as a LoRA-tuned VFM backbone.

The architecture follows DGVFM's ``EVA2`` with its state-dict names (those of the official
``eva02_L_pt_m38m_p14to16.pt``): patch 16, class token, absolute position embedding at the
converted grid, 2-D rotary embedding on the patch tokens (reference grid 16, ``intp_freq``),
q/k/v projections with q and v biases, SwiGLU feed-forward with its sub-LayerNorm, no layer
scale, no final norm. As in DGVFM, every LayerNorm has eps MODEL.VFM.EVA02_LN_EPS (1e-5: its
blocks are built without the configured norm layer) and the release's ``attn.inner_attn_ln``
entries are not used.

DGVFM's attention reads ``q_proj.weight`` / ``k_proj.weight`` / ``v_proj.weight`` directly, so
their LoRA branches never act there; MODEL.LORA.MODE "effective" therefore adapts ``attn.proj``
only. Ours calls the projections as modules, so "all" adapts all four.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.vfm.base import TinySettings, VFMBackbone
from clouds.modeling.backbone.vfm.loading import (
    ConvertSettings,
    load_converted_weights,
    load_vit_state,
)
from clouds.modeling.registry import BACKBONE_REGISTRY

__all__ = ["EVA02", "EVA02ViT", "rotary_tables"]

_LARGE = {"embed_dim": 1024, "depth": 24, "num_heads": 16}
_MLP_RATIO = 4 * 2 / 3
_ROPE_REFERENCE_GRID = 16  # pt_hw_seq_len: the pre-training grid (224 / 14)


def rotary_tables(
    head_dim: int, grid: tuple[int, int], reference: int, scale_grid: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """EVA02's 2-D rotary tables (cos, sin), each (h * w, head_dim), for a token grid (h, w).

    Half the channels rotate with the row, half with the column; positions are
    ``i / scale_grid * reference`` (DGVFM: ``scale_grid`` is the converted grid, so its 32 rows
    span the 16 pre-training positions). Frequencies ``10000 ** (-2k / (head_dim / 2))``,
    each repeated for the two channels of a rotated pair.
    """
    half = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    rows = torch.arange(grid[0]) / scale_grid * reference
    cols = torch.arange(grid[1]) / scale_grid * reference
    fr = (rows[:, None] * freqs).repeat_interleave(2, dim=-1)
    fc = (cols[:, None] * freqs).repeat_interleave(2, dim=-1)
    table = torch.cat(
        [
            fr[:, None, :].expand(grid[0], grid[1], -1),
            fc[None, :, :].expand(grid[0], grid[1], -1),
        ],
        dim=-1,
    ).reshape(grid[0] * grid[1], -1)
    return table.cos(), table.sin()


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(..., 2k) -> (..., 2k): each channel pair (a, b) becomes (-b, a)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)


class _Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections and rotary patch tokens."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (B, 1 + N, C), rope tables (N, C / heads) -> (B, 1 + N, C)."""
        b, n, c = x.shape
        q = self.q_proj(x) + self.q_bias
        k = self.k_proj(x)
        v = self.v_proj(x) + self.v_bias
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        cos, sin = (t.to(x.dtype) for t in rope)
        q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + _rotate_pairs(q[:, :, 1:]) * sin], 2)
        k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + _rotate_pairs(k[:, :, 1:]) * sin], 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _SwiGLU(nn.Module):
    """SiLU(w1 x) * w2 x -> LayerNorm -> w3."""

    def __init__(self, dim: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(dim, hidden)
        self.ffn_ln = nn.LayerNorm(hidden, eps=eps)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.ffn_ln(F.silu(self.w1(x)) * self.w2(x)))


class _Block(nn.Module):
    """Pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = _SwiGLU(dim, int(dim * _MLP_RATIO), eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    """Patch convolution (state-dict name ``patch_embed.proj``)."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)


class EVA02ViT(nn.Module):
    """DGVFM's EVA02 trunk at a fixed position grid ``grid`` (tokens)."""

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        patch_size: int,
        grid: tuple[int, int],
        ln_eps: float,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads or (embed_dim // num_heads) % 4:
            raise ConfigError(
                f"EVA02 width {embed_dim} / {num_heads} heads must give a head width divisible by 4"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.grid = tuple(grid)
        self.patch_embed = _PatchEmbed(embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid[0] * grid[1], embed_dim))
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, ln_eps) for _ in range(depth))

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, 1 + h*w, C): as stored at the converted grid; other grids (which DGVFM's
        ``EVA2`` cannot run) get a bicubic resampling of the patch entries."""
        if tuple(grid) == self.grid:
            return self.pos_embed
        patch = self.pos_embed[:, 1:].reshape(1, *self.grid, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=grid, mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], patch.flatten(2).transpose(1, 2)], dim=1)

    def rope(self, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables for ``grid`` with the spacing of the converted grid."""
        cos, sin = rotary_tables(
            self.embed_dim // self.num_heads, grid, _ROPE_REFERENCE_GRID, self.grid[0]
        )
        return cos.to(self.pos_embed.device), sin.to(self.pos_embed.device)


@BACKBONE_REGISTRY.register()
class EVA02(VFMBackbone):
    """EVA02 ViT; DGVFM's LoRA targets q/k/v/out projections, of which only ``attn.proj`` acts."""

    block_pattern = r"blocks\.\d+"
    default_lora_targets = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.proj")
    bypassed_lora_targets = ("attn.q_proj", "attn.k_proj", "attn.v_proj")

    @classmethod
    def from_config(cls, cfg: CfgNode) -> EVA02:
        vfm = cfg.MODEL.VFM
        tiny = TinySettings.from_config(cfg)
        convert = ConvertSettings.from_config(cfg)
        if not vfm.WEIGHTS and tiny is None:
            raise ConfigError(
                "EVA02 needs MODEL.VFM.WEIGHTS: the official eva02_L_pt_m38m_p14to16.pt (or its "
                "converted file), or 'random'"
            )
        arch = dict(_LARGE)
        if tiny is not None:
            arch = {"embed_dim": tiny.width, "depth": tiny.depth, "num_heads": tiny.heads}
        vit = EVA02ViT(
            **arch, patch_size=convert.patch_size, grid=convert.grid, ln_eps=vfm.EVA02_LN_EPS
        )
        if vfm.WEIGHTS and vfm.WEIGHTS != "random":
            state = load_converted_weights(vfm.WEIGHTS, "eva02", convert)
            load_vit_state(vit, state, source=f"MODEL.VFM.WEIGHTS {vfm.WEIGHTS}")
        return cls.from_vit(cfg, vit, embed_dim=vit.embed_dim, depth=len(vit.blocks))

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> 4 x (B, C, H/16, W/16): raw block outputs, class token dropped."""
        vit = self.vit
        x = vit.patch_embed.proj(images)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([vit.cls_token.expand(b, -1, -1).to(x.dtype), x], dim=1)
        x = x + vit.position_embedding((h, w)).to(x.dtype)
        return self.run_blocks(
            vit.blocks,
            x,
            lambda tokens: tokens[:, 1:].transpose(1, 2).reshape(b, c, h, w),
            vit.rope((h, w)),
        )
