"""open_clip's "No pretrained weights loaded ... initialized randomly" is never shown: a CLIP
built for a checkpoint that holds it logs nothing of the kind, and an empty
MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS (toy and test models) says so once, naming the key."""

from __future__ import annotations

import logging

import pytest

from clouds.modeling.backbone.clip import (
    clip_weights_from_checkpoint,
    create_clip_model,
    register_model_configs,
)

TINY = "clouds_tiny_convnext"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_built_for_a_checkpoint_no_random_init_warning(caplog) -> None:
    register_model_configs()
    with caplog.at_level(logging.INFO), clip_weights_from_checkpoint():
        create_clip_model(TINY, "")
    assert not _warnings(caplog)


def test_empty_pretrained_weights_named_once(caplog) -> None:
    register_model_configs()
    with caplog.at_level(logging.INFO):
        create_clip_model(TINY, "")
    assert _warnings(caplog) == [
        f"MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS is empty: {TINY} is randomly initialised "
        "(toy and test models)"
    ]
    # the filter is gone afterwards: other root-logger warnings still show
    logging.getLogger().warning("No pretrained weights loaded for model 'x'")
    assert len(_warnings(caplog)) == 2
