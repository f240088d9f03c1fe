"""Frozen / trainable parameter counts of a model, per component."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterCount", "format_parameter_counts", "parameter_counts"]


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of one module (its whole subtree); ``name`` "" is the model itself."""

    name: str
    frozen: int
    trainable: int

    @property
    def total(self) -> int:
        return self.frozen + self.trainable


def _count(module: nn.Module, name: str) -> ParameterCount:
    frozen = trainable = 0
    for parameter in module.parameters():
        if parameter.requires_grad:
            trainable += parameter.numel()
        else:
            frozen += parameter.numel()
    return ParameterCount(name=name, frozen=frozen, trainable=trainable)


def parameter_counts(model: nn.Module, max_depth: int = 2) -> list[ParameterCount]:
    """Counts of the model, then of every submodule up to ``max_depth`` levels (depth first).

    Submodules without parameters are skipped.
    """
    rows = [_count(model, "")]
    for name, module in model.named_modules():
        depth = name.count(".") + 1
        if name and depth <= max_depth and any(True for _ in module.parameters()):
            rows.append(_count(module, name))
    return rows


def format_parameter_counts(rows: list[ParameterCount]) -> str:
    """A text table: component, frozen, trainable and total counts (in millions too)."""
    width = max(len(r.name or "model (total)") + 2 * r.name.count(".") for r in rows)
    lines = [f"{'component':<{width}}  {'frozen':>14}  {'trainable':>14}  {'total':>14}"]
    for r in rows:
        label = "  " * r.name.count(".") + (r.name or "model (total)")
        lines.append(
            f"{label:<{width}}  {r.frozen:>14,}  {r.trainable:>14,}  {r.total:>14,}"
            f"  ({r.frozen / 1e6:.2f}M / {r.trainable / 1e6:.2f}M)"
        )
    return "\n".join(lines)
