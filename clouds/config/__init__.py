"""Configuration: every key of both systems, each with a one-line comment.

Keys follow the original CLOUDS / Mask2Former naming (MODEL.CLOUDS.*, MODEL.MASK_FORMER.*,
MODEL.SEM_SEG_HEAD.*, SOLVER.*, INPUT.*, DATASETS.*, DATALOADER.*, TEST.*). Files are loaded
with fvcore's CfgNode: ``_BASE_`` inheritance and ``KEY VALUE`` overrides, unknown keys and
wrong types are errors naming the key.

Each system adds its own keys: :mod:`~clouds.config.base_keys` (shared: run, data, solver,
test), :mod:`~clouds.config.mask_former_keys` (the Mask2Former head both systems can use),
:mod:`~clouds.config.clouds_keys` (CLOUDS) and :mod:`~clouds.config.dgvfm_keys` (VFM + LoRA).
"""

from __future__ import annotations

from collections.abc import Sequence

from clouds.config import base_keys, mask_former_keys
from clouds.config.base_keys import add_base_config
from clouds.config.clouds_keys import add_clouds_config
from clouds.config.dgvfm_keys import add_dgvfm_config
from clouds.config.mask_former_keys import add_mask_former_config
from clouds.config.node import CfgNode, ConfigError

__all__ = [
    "CfgNode",
    "ConfigError",
    "add_base_config",
    "add_clouds_config",
    "add_dgvfm_config",
    "add_mask_former_config",
    "check_fixed_values",
    "get_cfg",
    "load_config",
]

# Keys kept for the original configs that set them, with the only value we implement.
_FIXED_VALUES = {**base_keys.FIXED_VALUES, **mask_former_keys.FIXED_VALUES}


def get_cfg() -> CfgNode:
    """A fresh config holding every key of both systems with its default."""
    cfg = CfgNode()
    add_base_config(cfg)
    add_mask_former_config(cfg)
    add_clouds_config(cfg)
    add_dgvfm_config(cfg)
    return cfg


def check_fixed_values(cfg: CfgNode) -> None:
    """Refuse a value nothing would read: keys kept only because the original configs set them.

    Raises:
        ConfigError: naming the key, the value given and the one accepted.
    """
    for key, accepted in _FIXED_VALUES.items():
        value = cfg
        for part in key.split("."):
            value = value[part]
        if value != accepted:
            raise ConfigError(
                f"{key}={value!r} is not supported: nothing reads this key, it exists for the "
                f"original configs, which set {accepted!r}"
            )


def load_config(config_file: str | None = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then ``config_file`` (with its ``_BASE_`` chain), then ``KEY VALUE`` overrides.

    Raises:
        ConfigError: a missing file, unknown key, wrong type or unsupported value (named).
    """
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    if overrides:
        cfg.merge_from_list(list(overrides))
    check_fixed_values(cfg)
    return cfg
