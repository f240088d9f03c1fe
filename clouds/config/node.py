"""fvcore's CfgNode with errors that name the file, key or value (:class:`ConfigError`)."""

from __future__ import annotations

import difflib
import os
import re

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvCfgNode

__all__ = ["CfgNode", "ConfigError", "flat_keys"]


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names it."""


class CfgNode(_FvCfgNode):
    """fvcore CfgNode whose file loading reports missing ``_BASE_`` files by name."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict:
        if not os.path.isfile(filename):
            raise ConfigError(f"Config file not found: {filename}")
        with open(filename) as f:
            try:
                content = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"Config file {filename} is not valid YAML: {e}") from e
        if not isinstance(content, dict):
            raise ConfigError(f"Config file {filename} must hold a mapping, got {type(content)}")
        bases = content.get(BASE_KEY, [])
        for base in [bases] if isinstance(bases, str) else bases:
            base_path = os.path.join(os.path.dirname(filename), os.path.expanduser(base))
            if not os.path.isfile(base_path):
                raise ConfigError(
                    f"_BASE_ file {base!r} of {filename} not found (looked at {base_path})"
                )
        return super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{cfg_filename}: {_suggest_key(self, _message(e))}") from e

    def merge_from_list(self, cfg_list: list) -> None:
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"Overrides must be KEY VALUE pairs, got an odd list: {cfg_list}")
        try:
            super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"command-line override: {_suggest_key(self, _message(e))}") from e


def _message(e: Exception) -> str:
    return e.args[0] if e.args else str(e)


def _suggest_key(cfg: _FvCfgNode, message: str) -> str:
    """``message`` plus "did you mean <closest valid key>?" when it names a non-existent key."""
    match = re.search(r"Non-existent (?:config )?key: (\S+)", str(message))
    if not match:
        return message
    keys = list(flat_keys(cfg))
    close = difflib.get_close_matches(match.group(1).upper(), keys, n=1, cutoff=0.6)
    return f"{message} (did you mean {close[0]}?)" if close else message


def flat_keys(node: _FvCfgNode, prefix: str = "") -> list[str]:
    """Every leaf key of ``node`` as a dotted path, e.g. "SOLVER.MAX_ITER"."""
    keys = []
    for name, value in node.items():
        if isinstance(value, _FvCfgNode):
            keys.extend(flat_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys
