"""LoRA adapters on a vision foundation model through peft, and their merge into the base weights.

Targets are module paths relative to one transformer block (e.g. ``"attn.qkv"``); together with
the backbone's block pattern (e.g. ``r"blocks\\.\\d+"``) they form the regular expression peft
matches against full module names, so a suffix such as ``proj`` never catches the patch embedding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

__all__ = ["inject_lora", "lora_layers", "lora_target_regex", "merge_lora"]


def lora_target_regex(block_pattern: str, targets: Sequence[str]) -> str:
    """Regular expression matching ``<block>.<target>`` module names for peft.

    Args:
        block_pattern: regex of one block's module path, e.g. ``r"blocks\\.\\d+"``.
        targets: module paths inside a block, e.g. ``["attn.qkv"]``.
    """
    if not targets:
        raise ValueError("LoRA needs at least one target module (MODEL.LORA.TARGET_MODULES)")
    alternatives = "|".join(re.escape(t) for t in targets)
    return rf"(.*\.)?{block_pattern}\.({alternatives})"


def inject_lora(
    model: nn.Module,
    *,
    block_pattern: str,
    targets: Sequence[str],
    rank: int,
    alpha: float,
    dropout: float,
) -> nn.Module:
    """Wrap every target linear layer of ``model`` with a LoRA branch (in place).

    Base weights are frozen; only the LoRA matrices require gradients.

    Raises:
        ValueError: when a target matches no module of ``model`` (names the target).
    """
    pattern = re.compile(lora_target_regex(block_pattern, targets))
    names = [name for name, _ in model.named_modules() if pattern.fullmatch(name)]
    for target in targets:
        if not any(name.endswith("." + target) for name in names):
            raise ValueError(
                f"LoRA target {target!r} matches no module under blocks {block_pattern!r} of "
                f"{type(model).__name__} (MODEL.LORA.TARGET_MODULES)"
            )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=pattern.pattern,
    )
    model = inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
    return model


def lora_layers(model: nn.Module) -> dict[str, LoraLayer]:
    """The LoRA-wrapped layers of ``model`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA branch into its base layer and put the plain base layer back (in place).

    Returns:
        The number of merged layers.
    """
    layers = lora_layers(model)
    for name, layer in layers.items():
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return len(layers)
