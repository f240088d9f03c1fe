"""One DGVFM training step equals the original's, from the same seed (tests/fixtures/dgvfm_train).

Same initial weights, same batch and the same seed of torch / NumPy / ``random`` before the step:
every loss term, the total, the gradient of every trainable tensor and its change by the AdamW
step built from the config agree with the original's to 1e-4 relative (in float64, so that only
real differences exceed rounding). This holds only if every random draw of the step (sub-crop
box from NumPy, then in torch: LoRA dropouts of the half-size and sub-crop passes, the light
head's Dropout2d, the token mask, the refinement decoder's dropouts and its Dropout2d) is taken
from the same generator, in the same order and shape, as the original's. See
:mod:`tests.modeling.dgvfm_train_utils` for how the fixtures were made.
"""

from __future__ import annotations

import pytest

from tests.modeling.dgvfm_train_utils import (
    CASES,
    check_digests,
    load_record,
    our_step,
    unpack_digests,
)

TOLERANCE = 1e-4
LOSS_NAMES = {
    "decode_lr.loss_ce": "loss_coarse",
    "decode_hr.loss_ce": "loss_refine",
    "decode.loss_ce": "loss_sem_seg",
}


def _relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs)


@pytest.mark.parametrize(
    "name",
    [
        "dinov2_ms_masked",
        "dinov2_linearhead",
        "eva02_ms_masked",
        "clip_ms_masked",
        "sam_ms_masked",
    ],
)
def test_training_step_equals_the_originals(name: str) -> None:
    assert name in CASES
    record = load_record(name)
    result = our_step(name, record)
    for original_name, value in record["losses"].items():
        assert _relative(result.losses[LOSS_NAMES[original_name]], value) < TOLERANCE
    assert _relative(result.losses["total"], record["total"]) < TOLERANCE
    check_digests(result.grads, unpack_digests(record["grads"]), "gradient", TOLERANCE)
    check_digests(result.updates, unpack_digests(record["updates"]), "AdamW update", TOLERANCE)
