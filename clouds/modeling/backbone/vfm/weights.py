"""Locating and reading VFM weight files: local files/folders or cached hub files."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

from clouds.utils.weights_file import (
    WEIGHT_FILE_NAMES,
    check_weights_file,
    load_safetensors_weights,
    load_torch_weights,
    resolve_weights_path,
)

__all__ = [
    "WEIGHT_FILE_NAMES",
    "hub_weights_file",
    "read_state_dict",
    "resolve_weights_path",
    "submodule_state_dict",
]


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


def read_state_dict(path: str, *, key: str = "MODEL.VFM.WEIGHTS") -> dict[str, torch.Tensor]:
    """Read a safetensors or torch checkpoint (through :mod:`clouds.utils.weights_file`,
    errors naming ``key``); unwraps a ``{"state_dict"|"model": ...}`` dict."""
    if check_weights_file(path, key=key).format == "safetensors":
        return load_safetensors_weights(path, key=key)
    state = load_torch_weights(path, key=key)
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
