"""Locating and reading VFM weight files: local files/folders or cached hub files."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
from safetensors.torch import load_file

__all__ = [
    "WEIGHT_FILE_NAMES",
    "hub_weights_file",
    "read_state_dict",
    "resolve_weights_path",
    "submodule_state_dict",
]

# file names looked up inside a weights folder or a hub repository, in this order
WEIGHT_FILE_NAMES = (
    "model.safetensors",
    "open_clip_model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
    "model.pth",
)


def resolve_weights_path(path: str, names: Sequence[str] = WEIGHT_FILE_NAMES) -> str:
    """The weight file at ``path``, or the first of ``names`` inside the folder ``path``.

    Raises:
        FileNotFoundError: naming ``path`` (MODEL.VFM.WEIGHTS) when nothing usable is there.
    """
    path = os.path.expanduser(path)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in names:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"MODEL.VFM.WEIGHTS folder {path} holds none of {', '.join(names)}")
    raise FileNotFoundError(f"MODEL.VFM.WEIGHTS file or folder not found: {path}")


def hub_weights_file(
    repo_id: str, *, local_files_only: bool, names: Sequence[str] = WEIGHT_FILE_NAMES
) -> str:
    """Download (or, with ``local_files_only``, find in the cache) a weight file of a hub repo.

    Raises:
        FileNotFoundError: naming the repository when none of ``names`` can be had.
    """
    errors = []
    for name in names:
        try:
            return hf_hub_download(repo_id, name, local_files_only=local_files_only)
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
            errors.append(f"{name}: {type(e).__name__}")
    mode = "in the local cache" if local_files_only else "on the hub"
    raise FileNotFoundError(
        f"No weight file of {repo_id} found {mode} ({'; '.join(errors)}); set MODEL.VFM.WEIGHTS "
        f"to a local file or folder"
    )


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a safetensors or torch checkpoint; unwraps a ``{"state_dict"|"model": ...}`` dict."""
    if path.endswith(".safetensors"):
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def submodule_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a submodule: those under ``prefix`` (e.g. ``"visual."``), ``prefix``
    removed, when any key has it; else ``state`` itself (a checkpoint of the submodule alone)."""
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state
