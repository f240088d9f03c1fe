"""build_model: weightless foundation-model backbones come out the same in every build."""

from __future__ import annotations

import pytest
import torch

from clouds.config import load_config
from clouds.data.datasets import register_all_datasets
from clouds.modeling import build_model


def _built_under_seed(config: str, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(load_config(config))
    return model, torch.rand(4)  # what the caller's generator gives after the build


@pytest.mark.parametrize(
    "config", ["configs/toy/Base-Toy-CLOUDS.yaml", "configs/toy/dg_dinov2_ms_masked.yaml"]
)
def test_random_backbone_is_the_same_whatever_the_global_seed(config: str) -> None:
    register_all_datasets()
    first, after_first = _built_under_seed(config, 1)
    second, after_second = _built_under_seed(config, 2)
    backbone_a, backbone_b = first.backbone.state_dict(), second.backbone.state_dict()
    assert backbone_a.keys() == backbone_b.keys()
    for key in backbone_a:
        assert torch.equal(backbone_a[key], backbone_b[key]), key
    # the caller's random state is left alone: heads and later draws still follow its seed
    assert not torch.equal(after_first, after_second)
    head_a = next(p for n, p in first.named_parameters() if not n.startswith("backbone."))
    head_b = next(p for n, p in second.named_parameters() if not n.startswith("backbone."))
    assert not torch.equal(head_a, head_b)


def test_init_seed_changes_the_random_backbone() -> None:
    register_all_datasets()
    config = "configs/toy/Base-Toy-CLOUDS.yaml"
    a = build_model(load_config(config)).backbone.state_dict()
    b = build_model(load_config(config, ["MODEL.BACKBONE.INIT_SEED", "1"])).backbone.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
