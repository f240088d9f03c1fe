"""One warm-up training step equals the original CLOUDS' step (yasserben/CLOUDS @ bac4305).

The fixtures ``tests/fixtures/clouds_train/{resnet_linear,resnet_text}.pt`` were written by
running the ORIGINAL code outside this project (its model, Mask2Former criterion and matcher,
and its trainer's ``build_optimizer`` with full-model gradient clipping; detectron2 replaced by
small stand-ins, the deformable-attention op by the original's own pure-PyTorch path) on
``configs/warmup/gta/train_gta_r50.yaml`` at the tiny widths of :mod:`tests.modeling.original_parity`
(ResNet CLIP tower width 8, 3 decoder layers, 10 queries, 12,544 training points as the config).
The model weights are the original-written heads of ``tests/fixtures/clouds_model/``:
``resnet_text`` is that fixture's model (text-classifier decoder), ``resnet_linear`` its backbone
and pixel decoder with the linear-class-head decoder of ``convnext_linear`` (Mask2Former's
decoder, as ``train_gta_r50.yaml``). Each fixture holds the batch (2 images of 64 x 64 with their
label maps), the seed set before the forward pass, every weighted loss term, the gradient of
every trainable tensor, the original optimizer's (lr, weight decay) per tensor, the update of
the first 64 entries of every tensor after its optimizer step, the shapes of every
``torch.rand`` call of the step in order, and 8 numbers drawn right after the backward pass.

Gradients are compared at 1e-4 of each tensor's norm plus 1e-6 of the whole model's gradient
norm: float32 rounding scales with the summed terms, not with a result that cancels (the first
lateral convolution's weight and the GroupNorm weights after the input projections, ~1e-3 of the
model's norm, differ by up to 1.3e-4 of their own norm between two runs of the original itself,
on 1 and on 2 threads). Entries whose gradient
is zero in exact arithmetic hold rounding noise on both sides and are checked for being small:
the bias of a convolution right before a GroupNorm with one channel per group (the pixel
decoder's ``input_proj.*.0.bias``) and the key bias of attention (the middle third of
``in_proj_bias``: softmax ignores it). The optimizer step is checked on the original's own
gradients: after clipping to a norm of 0.01 many entries are near AdamW's eps, where the update
is proportional to the gradient and inherits its last-bit rounding, so a full-step comparison
would measure that rounding rather than the optimizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from clouds.config import CfgNode, load_config
from clouds.data.catalog import MetadataCatalog
from clouds.engine.lightning_module import CloudsLightningModule
from clouds.modeling.checkpoint import load_model_weights
from tests.modeling.original_parity import (
    CITYSCAPES_CLASSES,
    DATASET,
    REPO,
    TINY_OVERRIDES,
    VARIANTS,
    original_state_dict,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clouds_train"
CONFIG = REPO / "configs" / "warmup" / "gta" / "train_gta_r50.yaml"
RTOL = 1e-4
UPDATE_SAMPLE = 64
DECODERS = {
    "resnet_linear": "OriginalMultiScaleMaskedTransformerDecoder",
    "resnet_text": "MultiScaleMaskedTransformerDecoder",
}


def training_config(variant: str) -> CfgNode:
    """train_gta_r50.yaml at the fixture's tiny sizes, on a 19-class Cityscapes-named dataset."""
    MetadataCatalog.get(DATASET).set(stuff_classes=list(CITYSCAPES_CLASSES), ignore_label=255)
    overrides = [*TINY_OVERRIDES, *VARIANTS["resnet_text"]]
    overrides += ["MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", ""]
    overrides += ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", DECODERS[variant]]
    return load_config(str(CONFIG), overrides)


def original_weights(variant: str, path: Path) -> Path:
    """An original-format (detectron2) checkpoint of the variant's model at ``path``."""
    state = original_state_dict("resnet_text")
    if variant == "resnet_linear":
        prefix = "sem_seg_head.predictor."
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        linear = original_state_dict("convnext_linear")
        state.update({k: v for k, v in linear.items() if k.startswith(prefix)})
    torch.save({"model": state, "iteration": 0}, path)
    return path


@contextmanager
def recorded_rand_calls() -> Iterator[list[list[int]]]:
    """Record the shape of every ``torch.rand`` call made inside the block, in order."""
    calls: list[list[int]] = []
    real_rand = torch.rand

    def spy(*size: Any, **kwargs: Any) -> torch.Tensor:
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        calls.append([int(s) for s in shape])
        return real_rand(*size, **kwargs)

    torch.rand = spy
    try:
        yield calls
    finally:
        torch.rand = real_rand


def training_step(variant: str, fixture: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """One step as the trainer runs it: the model's weighted losses summed, backward (our
    gradients kept), then the module's gradient clipping and the optimizer step of
    ``configure_optimizers`` applied to the original's gradients."""
    module = CloudsLightningModule.from_config(training_config(variant))
    load_model_weights(module.model, original_weights(variant, tmp_path / "model.pth"))
    model = module.model.train()
    optimizer = module.configure_optimizers()["optimizer"]
    batch = [
        {"image": image, "sem_seg": label.long(), "height": 64, "width": 64}
        for image, label in zip(fixture["images"], fixture["labels"])
    ]
    with recorded_rand_calls() as calls:
        torch.manual_seed(fixture["seed"])
        losses = model(batch)
    total = sum(losses.values())
    total.backward()
    probe = torch.rand(8)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    grads = {name: p.grad.detach().clone() for name, p in params.items()}
    before = {name: p.detach().clone() for name, p in params.items()}
    for name, p in params.items():  # the optimizer step on the original's gradients
        p.grad = fixture["grads"][name].clone() if name in fixture["grads"] else None
    module.configure_gradient_clipping(optimizer)
    optimizer.step()
    groups = {
        name: [group["lr"], group["weight_decay"]]
        for group in optimizer.param_groups
        for name in group["param_names"]
    }
    return {
        "losses": {k: v.detach() for k, v in losses.items()},
        "total": total.detach(),
        "grads": grads,
        "updates": {name: p.detach() - before[name] for name, p in params.items()},
        "param_groups": groups,
        "rand_calls": calls,
        "probe": probe,
    }


@pytest.fixture(scope="module", params=sorted(DECODERS))
def step(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    variant = request.param
    fixture = torch.load(FIXTURES / f"{variant}.pt", map_location="cpu", weights_only=True)
    ours = training_step(variant, fixture, tmp_path_factory.mktemp(variant))
    return variant, fixture, ours


def exact_zero_gradient(name: str, shape: torch.Size) -> torch.Tensor:
    """Entries of a tensor whose gradient is zero in exact arithmetic (see the module doc)."""
    mask = torch.zeros(shape, dtype=torch.bool)
    if ".input_proj." in name and name.endswith(".0.bias"):
        mask[:] = True
    if name.endswith("in_proj_bias"):
        dim = shape[0] // 3
        mask[dim : 2 * dim] = True
    return mask


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


def test_loss_terms_equal_the_originals(step: tuple) -> None:
    _, fixture, ours = step
    assert sorted(ours["losses"]) == sorted(fixture["losses"])
    assert len(fixture["losses"]) == 9  # ce, mask, dice of the final and 2 earlier layers
    for name, reference in fixture["losses"].items():
        torch.testing.assert_close(ours["losses"][name], reference, rtol=RTOL, atol=0, msg=name)
    torch.testing.assert_close(ours["total"], fixture["total"], rtol=RTOL, atol=0)


def test_point_draws_are_the_originals(step: tuple) -> None:
    """The same ``torch.rand`` calls in the same order: per decoder layer one (1, P, 2) per
    image in the matcher, then the criterion's candidates and random points for all matched
    masks. On CUDA each call takes its own offset of the generator, so only equal calls give
    equal points from one seed; the numbers drawn after the step show equal consumption."""
    _, fixture, ours = step
    assert ours["rand_calls"] == fixture["rand_calls"]
    assert [1, 12544, 2] in ours["rand_calls"]
    torch.testing.assert_close(ours["probe"], fixture["probe"], rtol=0, atol=0)


def test_every_gradient_equals_the_originals(step: tuple) -> None:
    _, fixture, ours = step
    assert sorted(ours["grads"]) == sorted(fixture["grads"])
    largest = max(float(g.abs().max()) for g in fixture["grads"].values())
    floor = 1e-6 * float(torch.stack([g.norm() for g in fixture["grads"].values()]).norm())
    for name, reference in fixture["grads"].items():
        grad = ours["grads"][name]
        noise = exact_zero_gradient(name, reference.shape)
        if not noise.all():
            kept = reference[~noise]
            error = float((grad[~noise] - kept).norm())
            assert error <= RTOL * float(kept.norm()) + floor, name
        if noise.any():
            assert float(grad[noise].abs().max()) <= RTOL * largest, name


def test_optimizer_step_equals_the_originals(step: tuple) -> None:
    """Same (lr, weight decay) for every tensor, and from the same gradients the same clipped
    AdamW update. The original also hands the linear head's unused ``void_embedding`` to AdamW,
    which skips it (no gradient); ours leaves it out."""
    _, fixture, ours = step
    unused = set(fixture["param_groups"]) - set(fixture["grads"])
    assert unused <= {"void_embedding.weight"}
    expected = {k: v for k, v in fixture["param_groups"].items() if k not in unused}
    assert ours["param_groups"] == pytest.approx(expected, rel=1e-12)
    assert sorted(ours["updates"]) == sorted(fixture["update_sample"])
    for name, reference in fixture["update_sample"].items():
        update = ours["updates"][name].flatten()[:UPDATE_SAMPLE]
        assert relative_difference(update, reference) <= RTOL, name
