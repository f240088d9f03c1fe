import pytest
import torch

from clouds.modeling.criterion import SetCriterion
from clouds.modeling.registry import SEM_SEG_HEADS_REGISTRY
from clouds.modeling.shape_spec import ShapeSpec
from tests.modeling.head_utils import TINY_SHAPES, fake_features, text_classifier, tiny_head_cfg


def _head(cfg=None):
    cfg = cfg or tiny_head_cfg()
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME).from_config(cfg, TINY_SHAPES)


def test_end_to_end_shapes():
    head = _head()
    out = head(fake_features(2, 64, 96), *text_classifier(4))
    assert out["pred_logits"].shape == (2, 6, 5)
    assert out["pred_masks"].shape == (2, 6, 16, 24)
    assert len(out["aux_outputs"]) == 3


def test_extra_backbone_features_are_ignored_and_missing_ones_named():
    cfg = tiny_head_cfg()
    head = SEM_SEG_HEADS_REGISTRY.get("MaskFormerHead").from_config(
        cfg, {**TINY_SHAPES, "clip_vis_dense": ShapeSpec(channels=40, stride=32)}
    )
    features = fake_features(1, 64, 64)
    features["clip_vis_dense"] = torch.randn(1, 40, 2, 2)
    assert head(features, *text_classifier(2))["pred_logits"].shape == (1, 6, 3)
    shapes = {k: v for k, v in TINY_SHAPES.items() if k != "res2"}
    with pytest.raises(ValueError, match="res2"):
        SEM_SEG_HEADS_REGISTRY.get("MaskFormerHead").from_config(cfg, shapes)


def test_a_few_optimiser_steps_reduce_the_loss():
    cfg = tiny_head_cfg()
    head = _head(cfg)
    criterion = SetCriterion.from_config(cfg)
    features = fake_features(1, 64, 64)
    classes = text_classifier(3)
    masks = torch.zeros(1, 2, 16, 16, dtype=torch.bool)
    masks[:, 0, :, :6] = True
    masks[:, 1, 4:, 6:] = True
    targets = [{"labels": torch.tensor([0, 2]), "masks": m} for m in masks]
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)

    def step() -> float:
        losses = criterion(head(features, *classes), targets)
        loss = sum(criterion.weight_dict[k] * v for k, v in losses.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    history = [step() for _ in range(5)]
    assert history[-1] < 0.85 * history[0]
