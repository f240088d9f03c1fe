"""registered_class: the one lookup of config-named classes, with errors naming the key."""

from __future__ import annotations

import pytest
from fvcore.common.registry import Registry
from torch import nn

from clouds.config import ConfigError
from clouds.modeling.registry import registered_class

REGISTRY = Registry("TEST_PARTS")


@REGISTRY.register()
class LinearPart(nn.Linear):
    pass


@REGISTRY.register()
class PlainPart:
    pass


def test_returns_the_registered_class_that_meets_the_contract() -> None:
    assert registered_class(REGISTRY, "LinearPart", "MODEL.PART", nn.Module) is LinearPart
    assert registered_class(REGISTRY, "PlainPart", "MODEL.PART") is PlainPart


def test_unknown_names_and_contract_breaches_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"MODEL.PART='Nope' is not registered \(known: Linear"):
        registered_class(REGISTRY, "Nope", "MODEL.PART")
    with pytest.raises(
        ConfigError,
        match=r"MODEL.PART='PlainPart' is registered as .*PlainPart.*, which does not implement "
        r"the part contract \(torch.nn.modules.module.Module\)",
    ):
        registered_class(REGISTRY, "PlainPart", "MODEL.PART", nn.Module, "part")
