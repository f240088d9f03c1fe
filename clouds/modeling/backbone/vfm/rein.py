"""Rein: learnable tokens that refine the output of ViT blocks (Wei et al., CVPR 2024), as the
DGVFM repository's ``Reins`` / ``LoRAReins`` modules act, with their parameter names.

For a refined block ``l`` with tokens ``T_l`` (M, C) and features ``f`` (patch tokens, the class
token passes unchanged)::

    a = softmax(f T_l^T / sqrt(C))                (over the M tokens; USE_SOFTMAX)
    f <- f + scale * mlp_delta_f(a[:, 1:] mlp_token2feat(T_l[1:]) + f)

(the first token takes part in the softmax only). ``LoRAReins`` stores each ``T_l`` as the
product ``A_l B_l`` of (M, r) and (r, C) factors. The token-to-query link turns the tokens of all
refined blocks into (M, QUERY_DIMS) queries for a mask-classification head: ``transform`` maps
every token to the query width; its maximum, mean and last-block value over the blocks are
interleaved per channel and merged by a linear layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.config.rein_keys import REIN_TYPES

__all__ = ["LoRAReins", "ReinSettings", "Reins", "TOKEN_LAYOUTS", "build_reins"]

# how a backbone's blocks hold their tokens: (B, 1 + N, C) with a class token first, (1 + N, B, C)
# sequence-first with a class token first, or a (B, H, W, C) grid without class token
TOKEN_LAYOUTS = ("batch_first", "sequence_first", "grid")


@dataclass(frozen=True)
class ReinSettings:
    """Rein hyper-parameters (MODEL.REIN.*); ``layers`` [] = the backbone's default blocks."""

    type: str
    token_length: int
    lora_dim: int
    link_token_to_query: bool
    query_dims: int
    scale_init: float
    use_softmax: bool
    zero_mlp_delta_f: bool
    layers: tuple[int, ...]

    @classmethod
    def from_config(cls, cfg: CfgNode) -> ReinSettings | None:
        """None when MODEL.REIN.ENABLED is off.

        Raises:
            ConfigError: an unknown MODEL.REIN.TYPE or a non-positive size (named).
        """
        rein = cfg.MODEL.REIN
        if not rein.ENABLED:
            return None
        if rein.TYPE not in REIN_TYPES:
            raise ConfigError(
                f"MODEL.REIN.TYPE {rein.TYPE!r} is not one of {', '.join(REIN_TYPES)}"
            )
        for key in ("LORA_DIM", "QUERY_DIMS"):
            if rein[key] < 1:
                raise ConfigError(f"MODEL.REIN.{key} must be positive, got {rein[key]}")
        return cls(
            type=rein.TYPE,
            token_length=rein.TOKEN_LENGTH,
            lora_dim=rein.LORA_DIM,
            link_token_to_query=rein.LINK_TOKEN_TO_QUERY,
            query_dims=rein.QUERY_DIMS,
            scale_init=rein.SCALE_INIT,
            use_softmax=rein.USE_SOFTMAX,
            zero_mlp_delta_f=rein.ZERO_MLP_DELTA_F,
            layers=tuple(rein.LAYERS),
        )


class Reins(nn.Module):
    """Full learnable tokens ``learnable_tokens`` (L, M, C) for L refined blocks."""

    def __init__(
        self,
        *,
        num_layers: int,
        embed_dims: int,
        patch_size: int,
        query_dims: int = 256,
        token_length: int = 100,
        use_softmax: bool = True,
        link_token_to_query: bool = True,
        scale_init: float = 0.001,
        zero_mlp_delta_f: bool = False,
    ) -> None:
        super().__init__()
        if token_length < 2:
            raise ConfigError(f"MODEL.REIN.TOKEN_LENGTH must be at least 2, got {token_length}")
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.patch_size = patch_size
        self.token_length = token_length
        self.use_softmax = use_softmax
        self.link_token_to_query = link_token_to_query
        self.mlp_token2feat = nn.Linear(embed_dims, embed_dims)
        self.mlp_delta_f = nn.Linear(embed_dims, embed_dims)
        self.transform = nn.Linear(embed_dims, query_dims)
        self.merge = nn.Linear(3 * query_dims, query_dims)
        self.scale: nn.Parameter | float
        if zero_mlp_delta_f:
            self.scale = 1.0
            nn.init.zeros_(self.mlp_delta_f.weight)
            nn.init.zeros_(self.mlp_delta_f.bias)
        else:
            self.scale = nn.Parameter(torch.tensor(float(scale_init)))
        self.create_tokens()

    def token_init_bound(self, fan: float) -> float:
        """Bound of the uniform token init: sqrt(6 / (3 * patch_size^2 + fan))."""
        return math.sqrt(6.0 / (3 * self.patch_size**2 + fan))

    def create_tokens(self) -> None:
        """``learnable_tokens`` (L, M, C), uniform in +-bound(C)."""
        bound = self.token_init_bound(self.embed_dims)
        self.learnable_tokens = nn.Parameter(
            torch.empty(self.num_layers, self.token_length, self.embed_dims).uniform_(-bound, bound)
        )

    def tokens(self, layer: int | None = None) -> torch.Tensor:
        """Tokens of refined block ``layer`` (M, C), or of all blocks (L, M, C) for None."""
        return self.learnable_tokens if layer is None else self.learnable_tokens[layer]

    def forward(self, x: torch.Tensor, layer: int, *, layout: str) -> torch.Tensor:
        """Refine the tokens ``x`` of refined block ``layer``; same shape and layout as ``x``.

        ``layout`` (one of :data:`TOKEN_LAYOUTS`): (B, 1 + N, C), (1 + N, B, C) with a class
        token first, or (B, H, W, C) without class token.
        """
        if layout == "grid":
            return x + self.delta(x, self.tokens(layer))
        dim = 1 if layout == "batch_first" else 0
        cls_token, patches = torch.tensor_split(x, [1], dim=dim)
        patches = patches + self.delta(patches, self.tokens(layer))
        return torch.cat([cls_token, patches], dim=dim)

    def delta(self, feats: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """scale * mlp_delta_f(attention over ``tokens`` (M, C) + ``feats`` (..., C))."""
        attn = feats @ tokens.t()
        if self.use_softmax:
            attn = F.softmax(attn * self.embed_dims**-0.5, dim=-1)
        delta = attn[..., 1:] @ self.mlp_token2feat(tokens[1:])
        return self.mlp_delta_f(delta + feats) * self.scale

    def link_queries(self) -> torch.Tensor:
        """(M, QUERY_DIMS) queries from the tokens of all refined blocks."""
        per_block = self.transform(self.tokens())  # (L, M, Q)
        pooled = torch.stack(
            [per_block.amax(dim=0), per_block.mean(dim=0), per_block[-1]], dim=-1
        )  # (M, Q, 3)
        return self.merge(pooled.flatten(-2))


class LoRAReins(Reins):
    """Tokens as products ``learnable_tokens_a`` (L, M, r) @ ``learnable_tokens_b`` (L, r, C)."""

    def __init__(self, *, lora_dim: int = 16, **kwargs: Any) -> None:
        """``lora_dim``: the rank r of the token factors; ``kwargs``: those of :class:`Reins`."""
        self.lora_dim = lora_dim  # read by create_tokens, which Reins.__init__ calls
        super().__init__(**kwargs)

    def create_tokens(self) -> None:
        """Both factors uniform in +-bound(sqrt(C * r))."""
        bound = self.token_init_bound((self.embed_dims * self.lora_dim) ** 0.5)
        shape_a = (self.num_layers, self.token_length, self.lora_dim)
        shape_b = (self.num_layers, self.lora_dim, self.embed_dims)
        self.learnable_tokens_a = nn.Parameter(torch.empty(shape_a).uniform_(-bound, bound))
        self.learnable_tokens_b = nn.Parameter(torch.empty(shape_b).uniform_(-bound, bound))

    def tokens(self, layer: int | None = None) -> torch.Tensor:
        if layer is None:
            return self.learnable_tokens_a @ self.learnable_tokens_b
        return self.learnable_tokens_a[layer] @ self.learnable_tokens_b[layer]


def build_reins(
    settings: ReinSettings, *, num_layers: int, embed_dims: int, patch_size: int
) -> Reins:
    """The ``Reins`` / ``LoRAReins`` module of ``settings`` for ``num_layers`` refined blocks."""
    kwargs = {
        "num_layers": num_layers,
        "embed_dims": embed_dims,
        "patch_size": patch_size,
        "query_dims": settings.query_dims,
        "token_length": settings.token_length,
        "use_softmax": settings.use_softmax,
        "link_token_to_query": settings.link_token_to_query,
        "scale_init": settings.scale_init,
        "zero_mlp_delta_f": settings.zero_mlp_delta_f,
    }
    if settings.type == "LoRAReins":
        return LoRAReins(lora_dim=settings.lora_dim, **kwargs)
    return Reins(**kwargs)
