"""Predictor on checkpoints written by the original CLOUDS: per-class scores equal the original
model's ``sem_seg`` (fixtures and how they were made: tests/modeling/original_parity.py).

Both fixtures are detectron2-format files of the whole original model ({"model": state dict,
"iteration"}), for the ConvNeXt backbone with Mask2Former's linear class head (train_gta.yaml's
decoder) and for the ResNet backbone with the text-classifier decoder, on a 30 x 40 image (not a
multiple of 32: padded to 32 x 64 inside).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clouds.predictor import Predictor
from tests.modeling.original_parity import (
    VARIANTS,
    load_fixture,
    parity_config,
    write_original_checkpoint,
)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scores_equal_the_original_models(variant: str, tmp_path: Path) -> None:
    weights = write_original_checkpoint(variant, tmp_path / "model_final.pth")
    predictor = Predictor(parity_config(variant, ["MODEL.WEIGHTS", str(weights)]))
    fixture = load_fixture(variant)
    scores = predictor(fixture["image"].permute(1, 2, 0).numpy())
    assert scores.shape == fixture["sem_seg"].shape == (19, 30, 40)
    torch.testing.assert_close(scores, fixture["sem_seg"], atol=1e-4, rtol=0)


def test_geometric_ensemble_scores_equal_the_originals(tmp_path: Path) -> None:
    """ResNet CLIP's masked attention pool and the in/out-of-vocabulary blend (valid masks
    only, as the original's R50 configs), against the original's ``sem_seg`` with the
    ensemble on."""
    weights = write_original_checkpoint("resnet_text", tmp_path / "model_final.pth")
    overrides = ["MODEL.CLOUDS.GEOMETRIC_ENSEMBLE", "True"]
    overrides += ["MODEL.CLOUDS.ENSEMBLE_ON_VALID_MASK", "True", "MODEL.WEIGHTS", str(weights)]
    predictor = Predictor(parity_config("resnet_text", overrides))
    fixture = load_fixture("resnet_text")
    scores = predictor(fixture["image"].permute(1, 2, 0).numpy())
    assert not torch.allclose(scores, fixture["sem_seg"], atol=1e-3)  # the ensemble changes them
    torch.testing.assert_close(scores, fixture["sem_seg_ensemble"], atol=1e-4, rtol=0)
