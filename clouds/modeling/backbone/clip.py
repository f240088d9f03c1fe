"""Frozen open_clip backbone: multi-scale features, dense CLIP features and the text encoder.

Two kinds of CLIP image towers are supported, each read through its own module names:

- ConvNeXt (timm trunk inside open_clip's ``TimmModel``, e.g. ``convnext_large_d_320``): the
  stem and the four stages give res2..res5 (strides 4..32); the dense CLIP feature map is the
  last stage after the trunk's ``norm_pre``; a mask-pooled vector goes through the trunk's head
  (norm) and open_clip's projection head to the joint embedding space.
- ResNet (open_clip's ``ModifiedResNet``, ``RN50`` / ``RN101``): the three-conv stem and
  layer1..layer4 give res2..res5; the dense CLIP feature map is layer4's output, and a mask's
  embedding is CLIP's attention pool whose query attends only to the mask's pixels (as the
  original CLOUDS / FC-CLIP).

Weights come from an open_clip pretrained tag, a local checkpoint file, or nothing (random
init, tests only). Inside :func:`clip_weights_from_checkpoint` (a model checkpoint that holds
the whole CLIP model is about to be loaded) the architecture is built without weights and
nothing is downloaded; a tag still selects its activation (QuickGELU for OpenAI weights). Model-config JSON folders are added through open_clip's own
``add_model_config``; the package's folder (with the tiny test model) is always added.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.timm_model import TimmModel
from timm.models.convnext import ConvNeXt
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.modeling.backbone.base import Backbone
from clouds.modeling.registry import BACKBONE_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import mask_pool
from clouds.utils import comm
from clouds.utils.weights_file import OPEN_CLIP_FORMATS, reading_weights

__all__ = [
    "CLIP",
    "PACKAGE_MODEL_CONFIG_DIR",
    "clip_weights_from_checkpoint",
    "create_clip_model",
    "register_model_configs",
]

logger = logging.getLogger(__name__)

PACKAGE_MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
_FEATURE_NAMES = ("res2", "res3", "res4", "res5")
_T = TypeVar("_T")
_ADDED_CONFIG_DIRS: set[Path] = set()
_WEIGHTS_FROM_CHECKPOINT: ContextVar[bool] = ContextVar(
    "clip_weights_from_checkpoint", default=False
)


@contextmanager
def clip_weights_from_checkpoint() -> Iterator[None]:
    """CLIP models created inside are built without pretrained weights (no download): the
    caller loads a checkpoint holding them right after building the model."""
    token = _WEIGHTS_FROM_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _WEIGHTS_FROM_CHECKPOINT.reset(token)


def _is_not_random_init_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No pretrained weights loaded for model")


@contextmanager
def _without_random_init_warning() -> Iterator[None]:
    """Drop open_clip's "No pretrained weights loaded ... initialized randomly" warning (logged
    on the root logger): untrue when a checkpoint's weights are loaded right after."""
    root = logging.getLogger()
    root.addFilter(_is_not_random_init_warning)
    try:
        yield
    finally:
        root.removeFilter(_is_not_random_init_warning)


def register_model_configs(extra_dir: str = "") -> None:
    """Add the package's model-config folder and ``extra_dir`` (if given) to open_clip.

    Adding a folder twice is a no-op. Raises ConfigError when ``extra_dir`` is not a folder.
    """
    folders = [PACKAGE_MODEL_CONFIG_DIR]
    if extra_dir:
        extra = Path(extra_dir).expanduser().resolve()
        if not extra.is_dir():
            raise ConfigError(
                f"MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR={extra_dir!r} is not a folder of open_clip "
                "model-config JSON files"
            )
        folders.append(extra)
    for folder in folders:
        if folder not in _ADDED_CONFIG_DIRS:
            open_clip.add_model_config(folder)
            _ADDED_CONFIG_DIRS.add(folder)


def _local_rank_zero_first(load: Callable[[], _T]) -> _T:
    """Run ``load`` on local rank 0 first, then on the other ranks (only under torch.distributed).

    Local rank 0 fills the download cache; the other processes then read it instead of
    downloading the same weights concurrently.
    """
    if comm.get_world_size() == 1:
        return load()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if local_rank == 0:
        result = load()
        comm.barrier()
        return result
    comm.barrier()
    return load()


def create_clip_model(model_name: str, pretrained: str = "") -> nn.Module:
    """Build the open_clip model ``model_name`` with weights from ``pretrained``.

    Args:
        model_name: an open_clip model-config name (built-in or from an added folder).
        pretrained: an open_clip pretrained tag of that model, a local checkpoint file, or ""
            for random initialisation.

    Raises:
        ConfigError: unknown model name, or ``pretrained`` neither a tag nor an existing file.
    """
    if open_clip.get_model_config(model_name) is None:
        raise ConfigError(
            f"MODEL.CLOUDS.CLIP_MODEL_NAME={model_name!r} is not an open_clip model config. "
            f"Known: {', '.join(open_clip.list_models())}"
        )
    quick_gelu = False
    from_checkpoint = _WEIGHTS_FROM_CHECKPOINT.get()
    if pretrained and not os.path.isfile(pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if not tag_cfg and not from_checkpoint:
            tags = open_clip.list_pretrained_tags_by_model(model_name) or ["none"]
            raise ConfigError(
                f"MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS={pretrained!r} is neither an existing "
                f"checkpoint file nor a pretrained tag of {model_name!r} (tags: {', '.join(tags)})"
            )
        quick_gelu = bool((tag_cfg or {}).get("quick_gelu", False))

    if from_checkpoint:
        logger.info(
            "Building %s without pretrained weights: a checkpoint provides them", model_name
        )
        with _without_random_init_warning():
            return open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)
    if not pretrained:
        logger.warning(
            "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS is empty: %s is randomly initialised "
            "(toy and test models)",
            model_name,
        )
        with _without_random_init_warning():
            return open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)

    def load() -> nn.Module:
        # a local file is checked first, and a failure to read it named by its key
        reading = (
            reading_weights(
                pretrained, key="MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", formats=OPEN_CLIP_FORMATS
            )
            if pretrained and os.path.isfile(pretrained)
            else nullcontext()
        )
        with reading:
            return open_clip.create_model(
                model_name, pretrained=pretrained or None, force_quick_gelu=quick_gelu
            )

    return _local_rank_zero_first(load)


@BACKBONE_REGISTRY.register()
class CLIP(Backbone):
    """open_clip CLIP model as a (frozen) segmentation backbone and text encoder.

    forward(x) with x (B, 3, H, W) normalised returns
    ``{"res2": (B, C2, H/4, W/4), "res3": (B, C3, H/8, W/8), "res4": (B, C4, H/16, W/16),
    "res5": (B, C5, H/32, W/32), "clip_vis_dense": (B, Cd, H/32, W/32)}``; H and W must be
    multiples of ``size_divisibility`` (32).
    """

    size_divisibility: int = 32
    has_text_encoder = True

    def __init__(
        self,
        *,
        clip_model: nn.Module,
        tokenizer: Callable[[Sequence[str]], torch.Tensor],
        freeze: bool = True,
    ) -> None:
        """
        Args:
            clip_model: an open_clip ``CLIP`` model with a ConvNeXt (timm) or ModifiedResNet
                image tower.
            tokenizer: open_clip tokenizer of that model, texts -> (N, context_length) int64.
            freeze: keep the whole model in eval mode without gradients. When False only the
                image tower trains; the text tower stays frozen (the text classifier is cached).
        """
        super().__init__()
        visual = clip_model.visual
        if isinstance(visual, TimmModel) and isinstance(visual.trunk, ConvNeXt):
            self.tower = "convnext"
            channels = [info["num_chs"] for info in visual.trunk.feature_info]
            self.dense_channels = visual.trunk.num_features
        elif isinstance(visual, ModifiedResNet):
            self.tower = "resnet"
            channels = [layer[-1].bn3.num_features for layer in self._resnet_layers(visual)]
            self.dense_channels = channels[-1]
        else:
            raise ConfigError(
                f"CLIP image tower {type(visual).__name__} is not supported: use a ConvNeXt "
                "(timm) or ModifiedResNet (RN50/RN101) open_clip model"
            )
        self.clip_model = clip_model
        self.tokenizer = tokenizer
        self.frozen = freeze
        self._out_shapes = {
            name: ShapeSpec(channels=c, stride=2 ** (i + 2))
            for i, (name, c) in enumerate(zip(_FEATURE_NAMES, channels))
        }
        for name, parameter in clip_model.named_parameters():
            parameter.requires_grad_(not freeze and name.startswith("visual."))
        self.train(self.training)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> CLIP:
        register_model_configs(cfg.MODEL.CLOUDS.CLIP_MODEL_CONFIG_DIR)
        name = cfg.MODEL.CLOUDS.CLIP_MODEL_NAME
        model_config = open_clip.get_model_config(name)
        if model_config is not None and model_config["embed_dim"] != cfg.MODEL.CLOUDS.EMBED_DIM:
            raise ConfigError(
                f"MODEL.CLOUDS.EMBED_DIM={cfg.MODEL.CLOUDS.EMBED_DIM} does not match the joint "
                f"embedding width {model_config['embed_dim']} of CLIP model {name!r}"
            )
        clip_model = create_clip_model(name, cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS)
        return cls(
            clip_model=clip_model,
            tokenizer=open_clip.get_tokenizer(name),
            freeze=cfg.MODEL.BACKBONE.FREEZE,
        )

    @staticmethod
    def _resnet_layers(visual: ModifiedResNet) -> list[nn.Sequential]:
        return [visual.layer1, visual.layer2, visual.layer3, visual.layer4]

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of res2..res5."""
        return dict(self._out_shapes)

    @property
    def embed_dim(self) -> int:
        """Width E of the joint image-text embedding space."""
        return self.clip_model.text_projection.shape[1]

    @property
    def device(self) -> torch.device:
        return self.clip_model.logit_scale.device

    def train(self, mode: bool = True) -> CLIP:
        """Set training mode; a frozen CLIP model (and the text tower always) stays in eval."""
        super().train(mode)
        self.clip_model.eval()
        if not self.frozen:
            self.clip_model.visual.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Multi-scale features (see the class docstring) of x (B, 3, H, W)."""
        if x.shape[-2] % self.size_divisibility or x.shape[-1] % self.size_divisibility:
            raise ValueError(
                f"CLIP backbone input size {tuple(x.shape[-2:])} is not a multiple of "
                f"{self.size_divisibility}; pad the batch first"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.tower == "convnext":
                return self._convnext_features(x)
            return self._resnet_features(x)

    def _convnext_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        trunk = self.clip_model.visual.trunk
        out = {}
        x = trunk.stem(x)
        for name, stage in zip(_FEATURE_NAMES, trunk.stages):
            x = stage(x)
            out[name] = x.contiguous()  # as the original: kernels downstream see one layout
        out["clip_vis_dense"] = trunk.norm_pre(x).contiguous()
        return out

    def _resnet_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        visual = self.clip_model.visual
        out = {}
        x = visual.stem(x)
        for name, layer in zip(_FEATURE_NAMES, self._resnet_layers(visual)):
            x = layer(x)
            out[name] = x.contiguous()
        out["clip_vis_dense"] = x
        return out

    def mask_embeddings(self, dense: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings of the region of each mask, as the original's ensemble computes
        them.

        Args:
            dense: "clip_vis_dense" (B, Cd, h, w).
            mask_logits: (B, Q, H, W) mask logits, resized (bilinear) to (h, w) and binarised at 0.

        Returns:
            (B, Q, E). ConvNeXt: the mean dense feature inside the mask through the trunk's head
            and the projection head. ResNet: CLIP's attention pool with the mean-feature query
            attending only to the mask's pixels (an empty mask attends to nothing: what torch's
            attention gives then, as in the original; the valid-mask option ignores it).
        """
        masks = F.interpolate(
            mask_logits, size=dense.shape[-2:], mode="bilinear", align_corners=False
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.tower == "convnext":
                return self._convnext_pooled_embeddings(mask_pool(dense, masks))
            return self._resnet_masked_attention_pool(dense, masks)

    def _convnext_pooled_embeddings(self, pooled: torch.Tensor) -> torch.Tensor:
        """Mask-pooled features (B, Q, Cd) -> (B, Q, E) through the trunk head and projection."""
        batch, queries, channels = pooled.shape
        visual = self.clip_model.visual
        x = visual.trunk.head(pooled.reshape(batch * queries, channels, 1, 1))
        return visual.head(x).reshape(batch, queries, -1)

    def _resnet_masked_attention_pool(
        self, dense: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """CLIP's attention pool per mask: dense (B, C, h, w), masks (B, Q, h, w) -> (B, Q, E)."""
        pool = self.clip_model.visual.attnpool
        batch, channels, height, width = dense.shape
        queries = masks.shape[1]
        pos = pool.positional_embedding.to(dense.dtype)
        side = int(math.sqrt(pos.shape[0] - 1))
        spatial = pos[1:].T.reshape(1, channels, side, side)
        spatial = F.interpolate(spatial, size=(height, width), mode="bilinear", align_corners=False)
        tokens = dense.flatten(2).permute(2, 0, 1)  # (hw, B, C)
        key_value = tokens + spatial.flatten(2).permute(2, 0, 1)
        query = (tokens.mean(0, keepdim=True) + pos[:1, None, :]).repeat_interleave(queries, dim=0)
        blocked = (masks > 0).flatten(2) == 0  # (B, Q, hw): pixels outside the mask
        attn_mask = blocked[:, None].expand(-1, pool.num_heads, -1, -1)
        out = F.multi_head_attention_forward(
            query=query,
            key=key_value,
            value=key_value,
            embed_dim_to_check=channels,
            num_heads=pool.num_heads,
            q_proj_weight=pool.q_proj.weight,
            k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight,
            out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True,
            training=False,
            need_weights=False,
            attn_mask=attn_mask.reshape(batch * pool.num_heads, queries, height * width),
        )[0]
        return out.permute(1, 0, 2)

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned temperature, exp(logit_scale) clamped to 100 as in CLIP, scalar."""
        return self.clip_model.logit_scale.detach().exp().clamp(max=100.0).reshape(())

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (N, E) of ``texts``."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.clip_model.encode_text(tokens, normalize=True)
