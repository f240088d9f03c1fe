"""Optimisation: parameter groups, optimizers, per-iteration LR schedules, gradient clipping.

Only parameters with ``requires_grad=True`` are handed to the optimizer, so frozen foundation
models and EMA teachers (which keep ``requires_grad=False``) are never optimised and DDP never
synchronises their gradients.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from clouds.config import CfgNode, ConfigError

__all__ = [
    "EMBEDDING_NAME_KEYS",
    "build_lr_lambda",
    "build_lr_scheduler",
    "build_optimizer",
    "clip_gradients",
    "get_param_groups",
    "trainable_parameters",
]

logger = logging.getLogger(__name__)

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
)
# Parameters that the original CLOUDS never decays (Swin-style position tables).
NO_DECAY_PARAM_NAMES: tuple[str, ...] = ("relative_position_bias_table", "absolute_pos_embed")
# Parameter-name fragments of learned embeddings that get SOLVER.WEIGHT_DECAY_EMBED when
# SOLVER.WEIGHT_DECAY_EMBED_BY_NAME (ours; the original matches nn.Embedding modules only).
EMBEDDING_NAME_KEYS: tuple[str, ...] = (
    "query_embed",
    "query_feat",
    "level_embed",
    "pos_embed",
    "position_embedding",
    "absolute_pos_embed",
    "relative_position_bias_table",
    "void_embedding",
    "logit_scale",
    "mask_token",
)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every distinct parameter of ``model`` with ``requires_grad=True``."""
    seen: set[int] = set()
    params = []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    return params


def get_param_groups(
    model: nn.Module,
    *,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float,
    weight_decay_embed: float,
    backbone_multiplier: float,
    embed_by_name: bool = False,
    no_decay_keys: Iterable[str] = (),
) -> list[dict]:
    """Split the trainable parameters of ``model`` into optimizer groups.

    As the original CLOUDS ``build_optimizer``: parameters under a module whose qualified name
    contains "backbone" get ``base_lr * backbone_multiplier``; parameters named
    ``relative_position_bias_table`` or ``absolute_pos_embed`` get no weight decay, those of norm
    layers ``weight_decay_norm`` and ``nn.Embedding`` weights ``weight_decay_embed``; every other
    parameter (a bare ``nn.Parameter`` such as the pixel decoder's ``level_embed`` included) gets
    ``weight_decay``. With ``embed_by_name`` (ours) parameters named like an embedding
    (:data:`EMBEDDING_NAME_KEYS`) get ``weight_decay_embed`` too. Parameters whose qualified name
    contains one of ``no_decay_keys`` get no weight decay, whatever the other rules say (the
    DGVFM configs' mmengine ``custom_keys`` with ``decay_mult=0``). Groups with equal
    (lr, weight_decay) are merged; each group keeps the parameter names in ``"param_names"``.
    """
    groups: dict[tuple[float, float], dict] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            lr = base_lr * backbone_multiplier if "backbone" in module_name else base_lr
            wd = weight_decay
            if param_name in NO_DECAY_PARAM_NAMES:
                wd = 0.0
            if isinstance(module, NORM_TYPES):
                wd = weight_decay_norm
            if isinstance(module, nn.Embedding) or (
                embed_by_name and any(k in full_name for k in EMBEDDING_NAME_KEYS)
            ):
                wd = weight_decay_embed
            if any(key in full_name for key in no_decay_keys):
                wd = 0.0
            group = groups.setdefault(
                (lr, wd), {"params": [], "param_names": [], "lr": lr, "weight_decay": wd}
            )
            group["params"].append(param)
            group["param_names"].append(full_name)
    if not groups:
        raise ValueError("The model has no trainable parameters (all have requires_grad=False)")
    return list(groups.values())


def config_param_groups(cfg: CfgNode, model: nn.Module) -> list[dict]:
    """:func:`get_param_groups` of ``model`` with the config's SOLVER settings."""
    s = cfg.SOLVER
    return get_param_groups(
        model,
        base_lr=s.BASE_LR,
        weight_decay=s.WEIGHT_DECAY,
        weight_decay_norm=s.WEIGHT_DECAY_NORM,
        weight_decay_embed=s.WEIGHT_DECAY_EMBED,
        backbone_multiplier=s.BACKBONE_MULTIPLIER,
        embed_by_name=s.WEIGHT_DECAY_EMBED_BY_NAME,
        no_decay_keys=s.NO_DECAY_NAME_KEYS,
    )


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW or SGD (``SOLVER.OPTIMIZER``) over the parameter groups of :func:`get_param_groups`."""
    s = cfg.SOLVER
    groups = config_param_groups(cfg, model)
    name = s.OPTIMIZER.upper()
    if name == "ADAMW":
        return torch.optim.AdamW(groups, lr=s.BASE_LR, betas=tuple(s.BETAS))
    if name == "SGD":
        return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM)
    raise ConfigError(f"SOLVER.OPTIMIZER must be ADAMW or SGD, got {s.OPTIMIZER!r}")


def _warmup_factor(method: str, iteration: int, warmup_iters: int, warmup_factor: float) -> float:
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = iteration / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    raise ConfigError(f"SOLVER.WARMUP_METHOD must be linear or constant, got {method!r}")


def build_lr_lambda(cfg: CfgNode) -> Callable[[int], float]:
    """The LR multiplier as a function of the iteration (``SOLVER.LR_SCHEDULER_NAME``).

    As detectron2 (and its DeepLab project for the poly schedule), each times the warm-up factor:
    WarmupPolyLR: ``(1 - it / MAX_ITER) ** POLY_LR_POWER`` (floored at POLY_LR_CONSTANT_ENDING
    once warm-up is over); WarmupMultiStepLR: ``GAMMA ** #(STEPS <= it)``, where STEPS beyond
    MAX_ITER are ignored with a warning (so ``STEPS: (100000,)`` with a shorter run and
    ``WARMUP_FACTOR: 1.0`` is a constant LR, as in the original CLOUDS); WarmupCosineLR:
    ``0.5 * (1 + cos(pi * it / MAX_ITER))``.
    """
    s = cfg.SOLVER
    name, max_iter = s.LR_SCHEDULER_NAME, s.MAX_ITER
    method, warmup_iters, warmup_factor = s.WARMUP_METHOD, s.WARMUP_ITERS, s.WARMUP_FACTOR
    _warmup_factor(method, 0, 1, warmup_factor)  # validate the method name early
    steps = sorted(s.STEPS)
    if name not in ("WarmupPolyLR", "WarmupMultiStepLR", "WarmupCosineLR"):
        raise ConfigError(
            "SOLVER.LR_SCHEDULER_NAME must be WarmupPolyLR, WarmupMultiStepLR or WarmupCosineLR, "
            f"got {name!r}"
        )
    if name == "WarmupMultiStepLR" and steps and steps[-1] > max_iter:
        logger.warning(
            "SOLVER.STEPS %s go past SOLVER.MAX_ITER=%d; those steps are ignored",
            tuple(steps),
            max_iter,
        )
        steps = [step for step in steps if step <= max_iter]

    def lr_lambda(iteration: int) -> float:
        warm = _warmup_factor(method, iteration, warmup_iters, warmup_factor)
        progress = min(iteration, max_iter) / max_iter
        if name == "WarmupPolyLR":
            factor = (1.0 - progress) ** s.POLY_LR_POWER
            if warm == 1.0 and s.POLY_LR_CONSTANT_ENDING > 0:
                factor = max(factor, s.POLY_LR_CONSTANT_ENDING)
        elif name == "WarmupMultiStepLR":
            factor = s.GAMMA ** bisect.bisect_right(steps, iteration)
        else:
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * factor

    return lr_lambda


def build_lr_scheduler(
    cfg: CfgNode, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over :func:`build_lr_lambda`, meant to be stepped once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, build_lr_lambda(cfg))


def clip_gradients(cfg: CfgNode, params: Iterable[torch.Tensor]) -> torch.Tensor | None:
    """Clip gradients in place as ``SOLVER.CLIP_GRADIENTS`` says.

    "full_model": one norm (``NORM_TYPE``) over all gradients, scaled to at most ``CLIP_VALUE``;
    "value": every gradient entry clamped to ``[-CLIP_VALUE, CLIP_VALUE]``.

    Returns:
        The total gradient norm before clipping ("full_model"), else None.
    """
    c = cfg.SOLVER.CLIP_GRADIENTS
    if not c.ENABLED:
        return None
    params = [p for p in params if p.grad is not None]
    if c.CLIP_TYPE == "full_model":
        return torch.nn.utils.clip_grad_norm_(params, c.CLIP_VALUE, norm_type=c.NORM_TYPE)
    if c.CLIP_TYPE == "value":
        torch.nn.utils.clip_grad_value_(params, c.CLIP_VALUE)
        return None
    raise ConfigError(
        f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE must be full_model or value, got {c.CLIP_TYPE!r}"
    )
