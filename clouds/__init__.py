"""CLOUDS: domain-generalised semantic segmentation with collaborating foundation models.

``import clouds`` stays light: the public :class:`Predictor` (and the torch, model and data
stack behind it) is imported on first access to ``clouds.Predictor``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clouds.predictor import Predictor

__all__ = ["Predictor"]

_LAZY = {"Predictor": "clouds.predictor"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'clouds' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
