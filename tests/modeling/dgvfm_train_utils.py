"""One DGVFM training step of ours, set up as the fixtures of tests/fixtures/dgvfm_train/ record
the original's (tpy001/VFMSeg @ 6b019b9 on mmsegmentation 1.2.2, run outside this project).

The generator built the original's model from each config of :data:`CASES` at tiny widths and
depths, filled its parameters (and BatchNorm statistics) with :func:`original_state` from the
fixture's key list, ran one training step on the fixture's batch after seeding torch, NumPy and
``random`` with the fixture's step seed, and stored every loss term, the gradient of every
trainable tensor and the change of every trainable tensor by the AdamW step its optim_wrapper
builds. Large tensors are kept as :func:`digest`. We load the same state through
:func:`clouds.modeling.checkpoint.mmengine.map_original_state_dict`, as any original
checkpoint, and take the same step.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clouds.config import CfgNode, load_config
from clouds.engine.solver import build_optimizer
from clouds.modeling import build_model
from clouds.modeling.checkpoint.mmengine import map_original_state_dict
from clouds.modeling.inference import InferenceSettings, LogitsFn, RefineFn, infer_logits

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "dgvfm_train"
DIGEST_SIZE = 64  # tensors larger than this are compared on a seeded sample of their entries
# a gradient the architecture makes zero (a bias right before a normalisation): rounding only
STRUCTURAL_ZERO = 1e-12


@dataclass(frozen=True)
class TrainCase:
    """A reproduction config at tiny sizes: the original's counterpart had the same sizes."""

    config: str
    overrides: tuple[str, ...]


def _tiny(depth: int, out_indices: str, refine_layers: int, crop: str, sub_crop: int = 32) -> tuple:
    return (
        "MODEL.DEVICE", "cpu", "MODEL.VFM.WEIGHTS", "random",
        "MODEL.VFM.TINY", "True", "MODEL.VFM.TINY_WIDTH", "32", "MODEL.VFM.TINY_HEADS", "2",
        "MODEL.VFM.TINY_DEPTH", str(depth), "MODEL.VFM.OUT_INDICES", out_indices,
        "MODEL.VFM.CONVERT_SIZE", "[64, 64]",
        "MODEL.LORA.RANK", "4", "MODEL.LORA.ALPHA", "8",
        "MODEL.VFM_HEAD.HIDDEN_DIM", "128", "MODEL.VFM_HEAD.REFINE_HEADS", "2",
        "MODEL.VFM_HEAD.REFINE_HEAD_DIM", "16", "MODEL.VFM_HEAD.REFINE_LAYERS", str(refine_layers),
        "MODEL.VFM_HEAD.SUB_CROP", str(sub_crop), "MODEL.VFM_HEAD.SUB_CROP_GRID", "16",
        "INPUT.CROP.SIZE", crop,
    )  # fmt: skip


_GTA = "configs/dg/gta2citys/dg_lora_{}.yaml"
CASES = {
    "dinov2_ms_masked": TrainCase(
        _GTA.format("dinov2_ms_masked"), _tiny(4, "[0, 1, 2, 3]", 3, "(64, 96)")
    ),
    "dinov2_linearhead": TrainCase(
        _GTA.format("dinov2_linearhead"), _tiny(4, "[0, 1, 2, 3]", 1, "(64, 64)")
    ),
    "eva02_ms_masked": TrainCase(
        _GTA.format("eva02_ms_masked"), _tiny(4, "[0, 1, 2, 3]", 1, "(128, 128)", 64)
    ),
    "clip_ms_masked": TrainCase(
        _GTA.format("clip_ms_masked"), _tiny(4, "[0, 1, 2, 3]", 1, "(64, 96)")
    ),
    "sam_ms_masked": TrainCase(
        _GTA.format("sam_ms_masked"), _tiny(6, "[1, 2, 3, 5]", 1, "(128, 128)", 64)
    ),
}


def case_config(name: str) -> CfgNode:
    case = CASES[name]
    return load_config(str(REPO / case.config), list(case.overrides))


def original_state(keys: list[str], shapes: list[list[int]], seed: int) -> dict[str, torch.Tensor]:
    """The fixture's initial state under the original's key names: in key order, N(0, 1) x 0.1
    from one seeded generator (BatchNorm running variances |N(0, 1)| + 0.5)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in zip(keys, shapes):
        value = torch.randn(shape, generator=generator)
        state[key] = value.abs() + 0.5 if key.endswith("running_var") else value * 0.1
    return state


def digest(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """A tensor as stored in the fixtures: whole up to DIGEST_SIZE entries, else its norm and
    DIGEST_SIZE entries at positions drawn from a generator seeded by the key."""
    flat = value.detach().double().flatten()
    if flat.numel() <= DIGEST_SIZE:
        return {"values": flat}
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    index = torch.randperm(flat.numel(), generator=generator)[:DIGEST_SIZE]
    return {"values": flat[index], "norm": flat.norm()[None]}


def pack_digests(digests: dict[str, dict[str, torch.Tensor]]) -> dict:
    """Digests as one float32 tensor and an index of (key, part, length): a small file."""
    index, parts = [], []
    for key, digest_ in digests.items():
        for part, values in digest_.items():
            index.append([key, part, values.numel()])
            parts.append(values.float().flatten())
    return {"index": index, "data": torch.cat(parts)}


def unpack_digests(packed: dict) -> dict[str, dict[str, torch.Tensor]]:
    digests: dict[str, dict[str, torch.Tensor]] = {}
    offset = 0
    for key, part, length in packed["index"]:
        digests.setdefault(key, {})[part] = packed["data"][offset : offset + length]
        offset += length
    return digests


def relative_difference(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> float:
    """max over the digest's parts of ||ours - theirs|| / ||theirs||."""
    worst = 0.0
    for part, expected in theirs.items():
        scale = float(expected.double().norm())
        diff = float((ours[part].double() - expected.double()).norm())
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def check_digests(
    ours: Mapping[str, torch.Tensor],
    theirs: Mapping[str, dict[str, torch.Tensor]],
    what: str,
    tolerance: float,
) -> None:
    """Each tensor of ours within ``tolerance`` (:func:`relative_difference`) of the fixture's
    digest of the same key, the same keys on both sides; a gradient that is zero in the fixture
    (below STRUCTURAL_ZERO) must be zero here too."""
    assert set(ours) == set(theirs), f"{what}: {sorted(set(ours) ^ set(theirs))}"
    for key, expected in theirs.items():
        scale = float(expected.get("norm", expected["values"]).double().norm())
        if what == "gradient" and scale < STRUCTURAL_ZERO:
            assert float(ours[key].norm()) < STRUCTURAL_ZERO, key
            continue
        difference = relative_difference(digest(key, ours[key]), expected)
        assert difference < tolerance, f"{what} of {key}: {difference:.2e}"


def check_prediction(
    settings: InferenceSettings,
    expected: dict,
    tolerance: float,
    *,
    logits_fn: LogitsFn,
    refine_fn: RefineFn | None = None,
) -> None:
    """The logits of the fixture's seeded image (``expected["image_seed"]``, ``["size"]``)
    by the test-time strategy ``settings`` equal the original's: their norm and every 8th
    pixel (``["logits_norm"]``, ``["logits_sub8"]``) within ``tolerance`` relative."""
    generator = torch.Generator().manual_seed(int(expected["image_seed"]))
    image = torch.randn((1, 3, *expected["size"]), generator=generator, dtype=torch.float64)
    with torch.no_grad():
        logits = infer_logits(settings, image, logits_fn=logits_fn, refine_fn=refine_fn)
    assert abs(float(logits.norm()) / expected["logits_norm"] - 1) < tolerance
    sub = logits[..., ::8, ::8].float()
    difference = (sub - expected["logits_sub8"]).norm() / expected["logits_sub8"].norm()
    assert float(difference) < tolerance


def seed_all(seed: int) -> None:
    """The generators the original's step draws from, seeded as mmengine's set_random_seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class StepResult:
    losses: dict[str, float]  # every loss term and "total"
    grads: dict[str, torch.Tensor]  # original key (or ours) -> gradient
    updates: dict[str, torch.Tensor]  # original key (or ours) -> weight after the step minus before


def fixture_batch(crop: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The fixtures' batch: a (3, h, w) uint8 RGB image of the crop size and one 16 px smaller
    in each side (padded by the model), with 19-class labels, 10% ignored, from seed 3."""
    generator = torch.Generator().manual_seed(3)
    images, labels = [], []
    for h, w in (crop, (crop[0] - 16, crop[1] - 16)):
        images.append(torch.randint(0, 256, (3, h, w), generator=generator, dtype=torch.uint8))
        label = torch.randint(0, 19, (h, w), generator=generator, dtype=torch.uint8)
        label[torch.rand(h, w, generator=generator) < 0.1] = 255
        labels.append(label)
    return images, labels


def our_model(
    name: str, record: dict, dtype: torch.dtype = torch.float64
) -> tuple[torch.nn.Module, CfgNode, dict[str, str]]:
    """Our model of case ``name`` in train mode with the fixture's initial state, and the map
    from our trainable parameter names to the original's keys."""
    cfg = case_config(name)
    model = build_model(cfg)
    state = original_state(record["keys"], record["shapes"], int(record["state_seed"]))
    ours = model.state_dict()
    mapped, _ = map_original_state_dict(state, set(ours))
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    if trainable - set(mapped):
        raise AssertionError(
            f"trainable without an original value: {sorted(trainable - set(mapped))}"
        )
    model.load_state_dict(mapped, strict=False)
    to_original = {}
    for key in state:
        mapped_one, _ = map_original_state_dict({key: state[key]}, set(ours))
        for our_key in mapped_one:
            to_original[our_key] = key
    return model.to(dtype).train(), cfg, to_original


def train_step(
    model: torch.nn.Module,
    cfg: CfgNode,
    step_seed: int,
    to_original: Mapping[str, str] | None = None,
) -> StepResult:
    """One training step of ``model`` (train mode) on the fixtures' batch of the config's
    crop size, after :func:`seed_all` with ``step_seed``, with the AdamW the config builds: loss
    values, and the gradient and update of every parameter that got a gradient, under the
    original's keys (``to_original``; None: our names)."""
    optimizer = build_optimizer(cfg, model)
    images, labels = fixture_batch(tuple(cfg.INPUT.CROP.SIZE))
    batch = [{"image": image, "sem_seg": label.long()} for image, label in zip(images, labels)]
    seed_all(step_seed)
    losses = model(batch)
    total = sum(losses.values())
    total.backward()
    params = {k: p for k, p in model.named_parameters() if p.grad is not None}
    key = (lambda k: k) if to_original is None else to_original.__getitem__
    grads = {key(k): p.grad.detach().clone() for k, p in params.items()}
    before = {k: p.detach().clone() for k, p in params.items()}
    optimizer.step()
    updates = {key(k): p.detach() - before[k] for k, p in params.items()}
    values = {k: float(v.detach()) for k, v in losses.items()}
    values["total"] = float(total.detach())
    return StepResult(values, grads, updates)


def our_step(name: str, record: dict, dtype: torch.dtype = torch.float64) -> StepResult:
    """One training step of ours as the fixture's: same state, batch and step seed (float64 as
    the fixtures, so that only real differences exceed rounding)."""
    model, cfg, to_original = our_model(name, record, dtype)
    return train_step(model, cfg, int(record["step_seed"]), to_original)


def load_record(name: str) -> dict:
    return torch.load(FIXTURES / f"step_{name}.pt", map_location="cpu", weights_only=True)
