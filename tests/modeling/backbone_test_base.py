"""Shared tests every backbone gets for free: shapes, divisibility, freezing, eval mode, grads.

Use it by subclassing in a ``test_*.py`` file::

    class TestMyBackbone(BackboneTestBase):
        def build_backbone(self) -> nn.Module:
            return MyBackbone.from_config(cfg)

        def frozen_modules(self, backbone: nn.Module) -> list[nn.Module]:
            return [backbone.vit]

and set ``expects_trainable_parameters`` (False for a fully frozen backbone) and
``input_size`` (multiples of the backbone's ``size_divisibility``) as class attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytest
import torch
from torch import nn


class BackboneTestBase(ABC):
    input_size: tuple[int, int] = (64, 96)
    batch_size: int = 2
    expects_trainable_parameters: bool = False

    @abstractmethod
    def build_backbone(self) -> nn.Module:
        """A small instance of the backbone under test."""

    @abstractmethod
    def frozen_modules(self, backbone: nn.Module) -> list[nn.Module]:
        """Modules that must stay in eval mode after ``backbone.train()``."""

    @pytest.fixture(scope="class")
    def backbone(self) -> nn.Module:
        return self.build_backbone()

    def _images(self) -> torch.Tensor:
        return torch.randn(self.batch_size, 3, *self.input_size)

    def test_outputs_follow_output_shape(self, backbone: nn.Module) -> None:
        backbone.eval()
        with torch.no_grad():
            features = backbone(self._images())
        shapes = backbone.output_shape()
        assert shapes, "output_shape() declares no feature maps"
        h, w = self.input_size
        for name, spec in shapes.items():
            assert name in features, f"declared feature {name!r} missing from the outputs"
            expected = (self.batch_size, spec.channels, h // spec.stride, w // spec.stride)
            assert tuple(features[name].shape) == expected, name
            assert torch.isfinite(features[name]).all(), name

    def test_size_divisibility_is_enforced(self, backbone: nn.Module) -> None:
        divisibility = backbone.size_divisibility
        assert isinstance(divisibility, int) and divisibility >= 1
        assert all(s % divisibility == 0 for s in self.input_size), "bad test input size"
        if divisibility > 1:
            bad = torch.randn(1, 3, self.input_size[0] + 1, self.input_size[1])
            with pytest.raises(ValueError):
                backbone(bad)

    def test_trainable_parameters_as_expected(self, backbone: nn.Module) -> None:
        trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
        frozen = [n for n, p in backbone.named_parameters() if not p.requires_grad]
        assert frozen, "a foundation-model backbone must have frozen parameters"
        assert bool(trainable) == self.expects_trainable_parameters, trainable[:5]

    def test_eval_mode_kept_after_train(self, backbone: nn.Module) -> None:
        backbone.train()
        try:
            for module in self.frozen_modules(backbone):
                assert not module.training, type(module).__name__
        finally:
            backbone.eval()

    def test_training_forward_leaves_buffers_unchanged(self, backbone: nn.Module) -> None:
        before = {k: v.clone() for k, v in backbone.state_dict().items()}
        backbone.train()
        try:
            backbone(self._images())
        finally:
            backbone.eval()
        after = backbone.state_dict()
        changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
        assert not changed, f"a training forward changed {changed[:5]}"

    def test_gradients_reach_only_trainable_parameters(self, backbone: nn.Module) -> None:
        backbone.zero_grad(set_to_none=True)
        backbone.train()
        try:
            features = backbone(self._images())
        finally:
            backbone.eval()
        with_grad = [f for f in features.values() if f.requires_grad]
        if not self.expects_trainable_parameters:
            assert not with_grad, "a frozen backbone must not build an autograd graph"
            return
        assert with_grad, "trainable backbone outputs do not require grad"
        sum(f.float().square().mean() for f in with_grad).backward()
        for name, parameter in backbone.named_parameters():
            if parameter.requires_grad:
                assert parameter.grad is not None, f"no gradient reached {name}"
                assert torch.isfinite(parameter.grad).all(), name
            else:
                assert parameter.grad is None, f"frozen {name} got a gradient"
        backbone.zero_grad(set_to_none=True)
