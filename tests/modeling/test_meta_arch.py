"""CLOUDS meta-architecture: losses, targets, padding, inference sizes, open vocabulary, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import MetadataCatalog
from clouds.modeling import build_model
from clouds.modeling.geometric_ensemble import GeometricEnsemble
from clouds.modeling.meta_arch.clouds import CLOUDS, seen_classes, semantic_inference
from clouds.modeling.meta_arch.image_list import pad_to_divisible
from clouds.modeling.registry import BACKBONE_REGISTRY
from clouds.modeling.targets import semantic_targets
from tests.modeling.model_utils import (
    TEST_CLASSES,
    TEST_DATASET,
    TRAIN_CLASSES,
    TRAIN_DATASET,
    toy_config,
)


@pytest.fixture(scope="module")
def model() -> CLOUDS:
    return build_model(toy_config())


def _image(h: int, w: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


def _training_batch() -> list[dict]:
    """Two images whose colours tell the classes apart: road bottom, sky top, a car block."""
    batch = []
    for shift in (0, 8):
        label = torch.zeros(64, 64, dtype=torch.long)
        label[:24] = 2
        label[30 + shift : 46 + shift, 10:40] = 1
        label[:2] = 255
        palette = torch.tensor([[90, 90, 90], [200, 30, 30], [100, 160, 240], [0, 0, 0]])
        image = palette[label.clamp(max=3)].permute(2, 0, 1).to(torch.uint8)
        batch.append({"image": image, "sem_seg": label, "file_name": f"img{shift}.png"})
    return batch


def test_pad_to_divisible() -> None:
    batch, sizes = pad_to_divisible([torch.ones(3, 30, 50), torch.ones(3, 40, 20)], 32)
    assert batch.shape == (2, 3, 64, 64)
    assert sizes == [(30, 50), (40, 20)]
    assert batch[0, :, :30, :50].eq(1).all() and batch[0, :, 30:].eq(0).all()
    labels, _ = pad_to_divisible([torch.zeros(5, 7, dtype=torch.long)], 4, pad_value=255)
    assert (
        labels.shape == (1, 8, 8) and labels[0, 5:].eq(255).all() and labels[0, :, 7:].eq(255).all()
    )


def test_semantic_targets() -> None:
    label = torch.tensor([[0, 0, 255], [2, 2, 0]])
    target = semantic_targets(label, num_classes=3)
    assert target["labels"].tolist() == [0, 2]
    assert target["masks"].dtype == torch.bool
    assert target["masks"][0].tolist() == [[True, True, False], [False, False, True]]
    assert target["masks"][1].tolist() == [[False, False, False], [True, True, False]]
    with pytest.raises(ValueError, match=r"\[7\]"):
        semantic_targets(torch.tensor([[7, 0]]), num_classes=3)


def test_semantic_inference_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.3]])  # (Q=2, K=2)
    masks = torch.tensor([[[10.0, -10.0]], [[-10.0, 10.0]]])  # (Q, 1, 2)
    scores = semantic_inference(probs, masks)
    sig = torch.sigmoid(torch.tensor(10.0)).item()
    expected = torch.tensor(
        [
            [[0.9 * sig + 0.2 * (1 - sig), 0.9 * (1 - sig) + 0.2 * sig]],
            [[0.1 * sig + 0.3 * (1 - sig), 0.1 * (1 - sig) + 0.3 * sig]],
        ]
    )
    torch.testing.assert_close(scores, expected)


def test_training_returns_weighted_losses(model: CLOUDS) -> None:
    batch = _training_batch()
    model.train()
    torch.manual_seed(3)
    losses = model(batch)
    torch.manual_seed(3)
    images, _ = model.preprocess(batch)
    outputs = model.predict(images, TRAIN_CLASSES)
    targets = model.prepare_targets(batch, images.shape[-2:], len(TRAIN_CLASSES))
    unweighted = model.criterion(outputs, targets)
    weights = model.criterion.weight_dict
    assert set(losses) == set(unweighted) & set(weights)
    assert {"loss_ce", "loss_mask", "loss_dice", "loss_ce_0"} <= set(losses)
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value)
        torch.testing.assert_close(value, unweighted[name] * weights[name])
    assert weights["loss_ce"] == 2.0 and weights["loss_mask"] == 5.0 and weights["loss_dice"] == 5.0


def test_targets_are_padded_with_ignore(model: CLOUDS) -> None:
    batch = [{"image": _image(40, 50), "sem_seg": torch.ones(40, 50, dtype=torch.long)}]
    (target,) = model.prepare_targets(batch, (64, 64), 3)
    assert target["labels"].tolist() == [1]
    assert target["masks"].shape == (1, 64, 64)
    assert target["masks"][0, :40, :50].all() and not target["masks"][0, 40:].any()
    bad = [{"image": _image(40, 50), "sem_seg": torch.ones(40, 49, dtype=torch.long)}]
    with pytest.raises(ValueError, match="differs from image size"):
        model.prepare_targets(bad, (64, 64), 3)


def test_inference_outputs_test_classes_at_requested_sizes(model: CLOUDS) -> None:
    model.eval()
    inputs = [
        {"image": _image(50, 70), "height": 100, "width": 140},
        {"image": _image(64, 64)},
    ]
    outputs = model(inputs)
    assert outputs[0]["sem_seg"].shape == (len(TEST_CLASSES), 100, 140)
    assert outputs[1]["sem_seg"].shape == (len(TEST_CLASSES), 64, 64)
    for out in outputs:
        assert torch.isfinite(out["sem_seg"]).all() and out["sem_seg"].min() >= 0
    assert model.sem_seg_head.training is False


def test_class_list_can_be_swapped_at_test_time(model: CLOUDS) -> None:
    names = ["pothole", "tram", "graffiti", "road", "sky", "horse", "crane"]
    model.eval()
    image = _image(64, 64)
    open_vocab = {"image": image, "dataset_name": "clouds_test_open_vocab", "class_names": names}
    (swapped,) = model([open_vocab])
    (default,) = model([{"image": image, "dataset_name": TEST_DATASET}])
    assert swapped["sem_seg"].shape == (7, 64, 64)
    assert default["sem_seg"].shape == (4, 64, 64)
    with pytest.raises(KeyError, match="clouds_test_not_registered"):
        model([{"image": image, "dataset_name": "clouds_test_not_registered"}])
    mixed = [{"image": image, "dataset_name": TEST_DATASET}, open_vocab]
    with pytest.raises(ValueError, match="several datasets"):
        model(mixed)


def test_forward_reads_class_lists_given_at_build_not_the_catalog(
    model: CLOUDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model.class_names == {
        TRAIN_DATASET: list(TRAIN_CLASSES),
        TEST_DATASET: list(TEST_CLASSES),
    }

    def no_catalog(name: str) -> None:
        raise AssertionError(f"forward read the dataset catalog ({name})")

    monkeypatch.setattr(MetadataCatalog, "get", no_catalog)
    model.eval()
    (scores,) = model([{"image": _image(64, 64), "dataset_name": TEST_DATASET}])
    assert scores["sem_seg"].shape == (len(TEST_CLASSES), 64, 64)
    model.train()
    assert torch.isfinite(sum(model(_training_batch()).values()))


def test_geometric_ensemble_is_applied_at_inference(model: CLOUDS) -> None:
    model.eval()
    inputs = [{"image": _image(64, 96), "height": 32, "width": 48}]
    try:
        model.geometric_ensemble = None
        (plain,) = model(inputs)
        model.geometric_ensemble = GeometricEnsemble(
            alpha=0.0, beta=0.0, ensemble_on_valid_mask=True
        )
        (neutral,) = model(inputs)
        model.geometric_ensemble = GeometricEnsemble(
            alpha=0.4, beta=0.8, ensemble_on_valid_mask=False
        )
        (blended,) = model(inputs)
    finally:
        model.geometric_ensemble = None
    torch.testing.assert_close(neutral["sem_seg"], plain["sem_seg"])
    assert blended["sem_seg"].shape == plain["sem_seg"].shape
    assert not torch.allclose(blended["sem_seg"], plain["sem_seg"])


def test_geometric_ensemble_from_config() -> None:
    model = build_model(toy_config(["MODEL.CLOUDS.GEOMETRIC_ENSEMBLE", "True"]))
    assert model.geometric_ensemble is not None
    assert (model.geometric_ensemble.alpha, model.geometric_ensemble.beta) == (0.4, 0.8)
    model.eval()
    (out,) = model([{"image": _image(64, 64)}])
    assert out["sem_seg"].shape == (len(TEST_CLASSES), 64, 64)


def test_a_few_steps_on_one_batch_drive_the_loss_down() -> None:
    model = build_model(toy_config())
    model.train()
    assert not model.backbone.clip_model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    batch = _training_batch()[:1]
    totals = []
    for _ in range(12):
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(loss.item())
    assert totals[-1] < 0.6 * totals[0], totals
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), f"frozen {key} changed"


def test_build_model_rejects_unknown_meta_architecture() -> None:
    with pytest.raises(ConfigError, match="NoSuchArch"):
        build_model(toy_config(["MODEL.META_ARCHITECTURE", "NoSuchArch"]))


class TextlessTestBackbone(nn.Module):
    """A backbone without ``encode_text``."""

    @classmethod
    def from_config(cls, cfg: CfgNode) -> TextlessTestBackbone:
        return cls()


def test_meta_architecture_needs_a_text_encoder() -> None:
    if "TextlessTestBackbone" not in BACKBONE_REGISTRY:
        BACKBONE_REGISTRY.register(TextlessTestBackbone)
    with pytest.raises(ConfigError, match="TextlessTestBackbone"):
        build_model(toy_config(["MODEL.BACKBONE.NAME", "TextlessTestBackbone"]))


def test_padding_must_suit_the_backbone() -> None:
    with pytest.raises(ConfigError, match="SIZE_DIVISIBILITY"):
        build_model(toy_config(["MODEL.MASK_FORMER.SIZE_DIVISIBILITY", "48"]))


def test_seen_classes_share_a_synonym_with_a_training_class() -> None:
    seen = seen_classes(["road", "railroad", "sky", "hydrant", "bike,scooter"], ["road", "bicycle"])
    assert seen.tolist() == [True, True, False, False, True]


def test_linear_head_refuses_a_dataset_with_another_class_count() -> None:
    cfg = toy_config(
        ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "OriginalMultiScaleMaskedTransformerDecoder"]
    )
    model = build_model(cfg).eval()
    assert not model.void_embedding.weight.requires_grad  # unused by the linear head
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        model([{"image": torch.zeros(3, 32, 32, dtype=torch.uint8)}])


def test_inference_crops_the_padding_before_resizing(model: CLOUDS) -> None:
    # A 40x50 image is padded to 64x64 with zeros after normalisation; the scores must be the
    # head's output upsampled to 64x64, cropped to 40x50 and only then resized to 80x100.
    model.eval()
    image = _image(40, 50)
    mean, std = model.pixel_mean.view(3, 1, 1), model.pixel_std.view(3, 1, 1)
    padded = torch.zeros(1, 3, 64, 64)
    padded[0, :, :40, :50] = (image.float() - mean) / std
    with torch.no_grad():
        scores = model([{"image": image, "height": 80, "width": 100}])[0]["sem_seg"]
        outputs = model.predict(padded, list(TEST_CLASSES))
    probs = outputs["pred_logits"][0].softmax(dim=-1)[:, :-1]
    masks = F.interpolate(outputs["pred_masks"], size=(64, 64), mode="bilinear")[0, :, :40, :50]
    expected = torch.einsum("qc,qhw->chw", probs, masks.sigmoid())
    expected = F.interpolate(expected[None], size=(80, 100), mode="bilinear")[0]
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)
