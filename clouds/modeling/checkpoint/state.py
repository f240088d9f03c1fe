"""Which entries of a model a checkpoint holds, and loading state dicts into a model.

Our checkpoints leave frozen foundation models (the CLIP backbone, a frozen VFM, an EMA teacher
copy) out: they are re-created from their ids / paths in the config. The rule, for any model:

- a parameter is saved when it requires grad;
- a persistent buffer is saved when the module owning it has a trainable parameter somewhere
  in its subtree (so buffers of frozen subtrees, e.g. BatchNorm statistics of a frozen
  backbone or of a teacher copy, are left out, and those of trained modules are kept).

Every load checks the keys and shapes first and loads nothing on a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = [
    "CheckpointMismatchError",
    "load_complete_state_dict",
    "load_trainable_state_dict",
    "trainable_state_dict",
    "verify_state_dict",
]


class CheckpointMismatchError(RuntimeError):
    """A checkpoint whose trainable keys or shapes do not match the model's; the message lists them."""

    def __init__(
        self,
        *,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "state dict",
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        lines = [f"Checkpoint {source} does not match the model's trainable parameters:"]
        if missing:
            lines.append(f"  missing in the checkpoint ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(
                f"  unexpected in the checkpoint ({len(unexpected)}): {', '.join(unexpected)}"
            )
        for key, got, want in shape_mismatches:
            lines.append(f"  shape of {key}: checkpoint {list(got)}, model {list(want)}")
        super().__init__("\n".join(lines))


def _trainable_subtrees(model: nn.Module) -> set[str]:
    """Names of the modules whose subtree holds at least one parameter that requires grad."""
    names = set()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            parts = name.split(".")[:-1]
            names.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    return names


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict restricted to its trainable parts (see the module docstring)."""
    trainable_modules = _trainable_subtrees(model)
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    for module_name, module in model.named_modules():
        if module_name not in trainable_modules:
            continue
        prefix = f"{module_name}." if module_name else ""
        for buffer_name, _ in module.named_buffers(recurse=False):
            if buffer_name not in module._non_persistent_buffers_set:
                keep.add(prefix + buffer_name)
    return {key: value for key, value in model.state_dict().items() if key in keep}


def verify_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    *,
    source: str,
    required: Iterable[str] | None = None,
) -> None:
    """Check that ``state_dict`` fits ``expected`` (a model's entries): every key of
    ``required`` (default: all of ``expected``) present, no key outside ``expected``, no shape
    that differs.

    Raises:
        CheckpointMismatchError: naming ``source`` and the offending keys.
    """
    required_keys = set(expected) if required is None else set(required)
    missing = sorted(required_keys - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        (key, tuple(state_dict[key].shape), tuple(expected[key].shape))
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            missing=missing, unexpected=unexpected, shape_mismatches=shapes, source=source
        )


def load_trainable_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load ``state_dict`` into the trainable parts of ``model``.

    Raises:
        CheckpointMismatchError: keys missing from / unexpected in ``state_dict`` compared with
            ``trainable_state_dict(model)``, or tensors of the wrong shape; nothing is loaded.
    """
    verify_state_dict(state_dict, trainable_state_dict(model), source=source)
    model.load_state_dict(state_dict, strict=False)


def load_complete_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load every persistent parameter and buffer of ``model`` from ``state_dict``.

    Raises:
        CheckpointMismatchError: keys missing / unexpected / of the wrong shape compared with
            ``model.state_dict()``; nothing is loaded.
    """
    verify_state_dict(state_dict, model.state_dict(), source=source)
    model.load_state_dict(dict(state_dict), strict=True)
