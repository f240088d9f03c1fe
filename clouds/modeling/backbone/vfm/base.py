"""Shared contract of the vision-foundation-model (VFM) backbones.

Every VFM backbone wraps one ViT (``self.vit``) and returns the raw outputs of four of its blocks
(class/register tokens dropped) as (B, C, H/16, W/16) maps named ``vfm0`` .. ``vfm3``. The base
weights are frozen; LoRA branches (peft) on the family's default target modules are the only
trainable backbone parameters. The ViT always stays in eval mode (no drop-path); only the LoRA
dropout follows ``train()``. With MODEL.REIN.ENABLED, a Rein module (``self.reins``) refines the
output of the backbone's Rein blocks and is trainable; :meth:`VFMBackbone.link_queries` gives its
token-to-query link. MODEL.VFM.RESIZE_FEATURES brings the maps to strides 4, 8, 16 and 32.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.base import Backbone
from clouds.modeling.backbone.vfm.lora import inject_lora
from clouds.modeling.backbone.vfm.rein import ReinSettings, build_reins
from clouds.modeling.shape_spec import ShapeSpec

__all__ = ["LORA_MODES", "LoraSettings", "TinySettings", "VFMBackbone"]

_Backbone = TypeVar("_Backbone", bound="VFMBackbone")


LORA_MODES = ("effective", "all")
# scale factors of MODEL.VFM.RESIZE_FEATURES: stride 16 -> 4, 8, 16, 32
_RESIZE_FACTORS = (4.0, 2.0, 1.0, 0.5)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters (MODEL.LORA.*); ``targets`` are module paths inside a block."""

    rank: int
    alpha: float
    dropout: float
    targets: tuple[str, ...]

    @classmethod
    def from_config(
        cls,
        cfg: CfgNode,
        default_targets: Sequence[str],
        bypassed_targets: Sequence[str] = (),
    ) -> LoraSettings | None:
        """None when MODEL.LORA.ENABLED is off; [] targets fall back to ``default_targets``.

        MODEL.LORA.MODE "effective" leaves out ``bypassed_targets``: the modules whose LoRA
        branch DGVFM's forward never reaches (its attention reads their weights directly), so
        that only what the original really adapts is adapted; "all" keeps every target.
        """
        if not cfg.MODEL.LORA.ENABLED:
            return None
        mode = cfg.MODEL.LORA.MODE
        if mode not in LORA_MODES:
            raise ConfigError(f"MODEL.LORA.MODE {mode!r} is not one of {', '.join(LORA_MODES)}")
        targets = tuple(cfg.MODEL.LORA.TARGET_MODULES) or tuple(default_targets)
        if mode == "effective":
            targets = tuple(t for t in targets if t not in bypassed_targets)
        return cls(
            rank=cfg.MODEL.LORA.RANK,
            alpha=cfg.MODEL.LORA.ALPHA,
            dropout=cfg.MODEL.LORA.DROPOUT,
            targets=targets,
        )


@dataclass(frozen=True)
class TinySettings:
    """Width, depth and heads of a tiny random-init variant (MODEL.VFM.TINY_*)."""

    width: int
    depth: int
    heads: int

    @classmethod
    def from_config(cls, cfg: CfgNode) -> TinySettings | None:
        """None unless MODEL.VFM.TINY is set."""
        if not cfg.MODEL.VFM.TINY:
            return None
        vfm = cfg.MODEL.VFM
        return cls(width=vfm.TINY_WIDTH, depth=vfm.TINY_DEPTH, heads=vfm.TINY_HEADS)


class VFMBackbone(Backbone):
    """A frozen ViT with optional LoRA and / or Rein returning four stride-16 feature maps.

    Subclasses set ``block_pattern`` (regex of one block's module path inside ``vit``) and
    ``default_lora_targets``, build ``vit`` in ``from_config`` and implement ``forward_blocks``.
    """

    block_pattern: str = r"blocks\.\d+"
    default_lora_targets: tuple[str, ...] = ()
    # targets whose LoRA branch DGVFM's own forward bypasses (left out in MODEL.LORA.MODE effective)
    bypassed_lora_targets: tuple[str, ...] = ()
    # input normalisation of every DGVFM backbone (ImageNet, 0-255 RGB), as its configs set it
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    # how the blocks hold their tokens (rein.TOKEN_LAYOUTS), for Rein's refinement
    token_layout: str = "batch_first"

    def __init__(
        self,
        *,
        vit: nn.Module,
        embed_dim: int,
        out_indices: Sequence[int],
        depth: int,
        patch_size: int = 16,
        freeze: bool = True,
        lora: LoraSettings | None = None,
        rein: ReinSettings | None = None,
        resize_features: bool = False,
    ) -> None:
        super().__init__()
        if len(out_indices) != 4:
            raise ConfigError(f"MODEL.VFM.OUT_INDICES needs 4 block indices, got {out_indices}")
        bad = [i for i in out_indices if not 0 <= i < depth]
        if bad:
            raise ConfigError(
                f"MODEL.VFM.OUT_INDICES {list(out_indices)}: {bad} outside 0..{depth - 1} "
                f"(the ViT has {depth} blocks)"
            )
        self.out_indices = tuple(out_indices)
        self.resize_features = resize_features
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self._out_features = [f"vfm{i}" for i in range(len(out_indices))]
        self.frozen = freeze
        if freeze:
            vit.requires_grad_(False)
        if lora is not None:
            vit = inject_lora(
                vit,
                block_pattern=self.block_pattern,
                targets=lora.targets,
                rank=lora.rank,
                alpha=lora.alpha,
                dropout=lora.dropout,
            )
        self.vit = vit
        self.vit.eval()
        self.rein_layers: dict[int, int] = {}
        if rein is not None:
            if not freeze:
                raise ConfigError(
                    "MODEL.REIN.ENABLED trains Rein on a frozen ViT: set MODEL.BACKBONE.FREEZE True"
                )
            layers = rein.layers or self.default_rein_layers(depth)
            bad = [i for i in layers if not 0 <= i < depth]
            if bad:
                raise ConfigError(f"MODEL.REIN.LAYERS {list(layers)}: {bad} outside 0..{depth - 1}")
            self.rein_layers = {block: k for k, block in enumerate(layers)}
            self.reins = build_reins(
                rein, num_layers=len(layers), embed_dims=embed_dim, patch_size=patch_size
            )

    def default_rein_layers(self, depth: int) -> tuple[int, ...]:
        """Blocks Rein refines when MODEL.REIN.LAYERS is []: every block."""
        return tuple(range(depth))

    @classmethod
    def from_vit(
        cls: type[_Backbone],
        cfg: CfgNode,
        vit: nn.Module,
        *,
        embed_dim: int,
        depth: int,
        **extra: Any,
    ) -> _Backbone:
        """The backbone around a built ``vit`` (of ``embed_dim`` channels and ``depth`` blocks)
        with the MODEL.VFM.OUT_INDICES / PATCH_SIZE, MODEL.BACKBONE.FREEZE and MODEL.LORA of
        ``cfg`` and the subclass's own ``extra`` arguments; the subclasses' ``from_config``
        build the ViT and end here."""
        return cls(
            **extra,
            vit=vit,
            embed_dim=embed_dim,
            out_indices=cfg.MODEL.VFM.OUT_INDICES,
            depth=depth,
            patch_size=cfg.MODEL.VFM.PATCH_SIZE,
            freeze=cfg.MODEL.BACKBONE.FREEZE,
            lora=LoraSettings.from_config(cfg, cls.default_lora_targets, cls.bypassed_lora_targets),
            rein=ReinSettings.from_config(cfg),
            resize_features=cfg.MODEL.VFM.RESIZE_FEATURES,
        )

    @property
    def size_divisibility(self) -> int:
        """Inputs must be multiples of the patch size (16)."""
        return self.patch_size

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Four maps of ``embed_dim`` channels at stride 16 (4, 8, 16, 32 when resized)."""
        factors = _RESIZE_FACTORS if self.resize_features else (1.0,) * len(self._out_features)
        return {
            name: ShapeSpec(channels=self.embed_dim, stride=int(self.patch_size / f))
            for name, f in zip(self._out_features, factors)
        }

    def link_queries(self) -> torch.Tensor | None:
        """Rein's token-to-query link: (TOKEN_LENGTH, QUERY_DIMS) queries for a mask head.

        None without Rein or with MODEL.REIN.LINK_TOKEN_TO_QUERY off. The queries depend on Rein's
        parameters only; call it in the same step as the forward, as the original returns both.
        """
        reins = getattr(self, "reins", None)
        if reins is None or not reins.link_token_to_query:
            return None
        return reins.link_queries()

    def train(self, mode: bool = True) -> VFMBackbone:
        """Keep the ViT in eval mode; only LoRA dropout layers follow ``mode``."""
        super().train(mode)
        self.vit.eval()
        for name, module in self.vit.named_modules():
            if name.rsplit(".", 1)[-1] == "lora_dropout":
                module.train(mode)
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images (B, 3, H, W), H and W multiples of 16 -> {name: (B, C, H/16, W/16)}."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"input size {h}x{w} is not a multiple of the patch size {self.patch_size}; pad first"
            )
        features = self.forward_blocks(images)
        if self.resize_features:
            features = [
                f
                if s == 1.0
                else F.interpolate(f, scale_factor=s, mode="bilinear", align_corners=False)
                for f, s in zip(features, _RESIZE_FACTORS)
            ]
        return dict(zip(self._out_features, features))

    @abstractmethod
    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Raw outputs of the blocks ``out_indices``: a list of (B, C, H/16, W/16) maps."""

    def run_blocks(
        self,
        blocks: Sequence[nn.Module],
        x: torch.Tensor,
        to_map: Callable[[torch.Tensor], torch.Tensor],
        *block_args: Any,
    ) -> list[torch.Tensor]:
        """Run ``blocks`` (each called as ``block(x, *block_args)``) on the tokens ``x`` up to
        the last of ``out_indices``, Rein refining the output of its blocks; ``to_map`` turns the
        output of each block of ``out_indices`` into a (B, C, H/16, W/16) map."""
        features = []
        for i, block in enumerate(blocks[: max(self.out_indices) + 1]):
            x = block(x, *block_args)
            if i in self.rein_layers:
                x = self.reins(x, self.rein_layers[i], layout=self.token_layout)
            if i in self.out_indices:
                features.append(to_map(x))
        return features
