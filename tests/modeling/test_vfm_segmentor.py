"""VFMSegmentor: what trains, multi-scale losses, sub-crops and outputs (tiny DINOv2 + LoRA)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clouds.config import ConfigError
from clouds.modeling import build_model
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from tests.modeling.vfm_test_utils import tiny_vfm_cfg


def _batch(n: int = 2, size: int = 64) -> list[dict]:
    return [
        {
            "image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8),
            "sem_seg": torch.randint(0, 5, (size, size)),
        }
        for _ in range(n)
    ]


def _is_lora_or_head(name: str) -> bool:
    return name.startswith(("decode_head.", "aux_decoder.")) or (
        name.startswith("backbone.vit.") and (".lora_A." in name or ".lora_B." in name)
    )


@pytest.mark.parametrize("head_type", ["light", "ms", "ms_masked"])
def test_trainable_parameters_are_exactly_lora_and_heads(head_type: str) -> None:
    model = build_model(tiny_vfm_cfg("EVA02", ["MODEL.VFM_HEAD.TYPE", head_type]))
    assert isinstance(model, VFMSegmentor)
    names = dict(model.named_parameters())
    trainable = {n for n, p in names.items() if p.requires_grad}
    assert trainable == {n for n in names if _is_lora_or_head(n)}
    assert any(n.startswith("aux_decoder.") for n in trainable) == (head_type != "light")
    assert any(".lora_" in n for n in trainable)


def test_training_steps_change_only_lora_and_heads() -> None:
    model = build_model(tiny_vfm_cfg("DINOv2")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    for _ in range(2):
        losses = model(_batch())
        assert set(losses) == {"loss_coarse", "loss_refine"}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(_is_lora_or_head(k) for k in changed), sorted(changed)[:5]
    assert any(".lora_B." in k for k in changed)
    assert any(k.startswith("aux_decoder.") for k in changed)
    assert any(k.startswith("decode_head.") for k in changed)


def test_multi_scale_loss_gradients_reach_both_heads_and_lora() -> None:
    model = build_model(tiny_vfm_cfg("DINOv2")).train()
    losses = model(_batch())
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    losses["loss_refine"].backward()
    light = [p.grad for p in model.decode_head.parameters()]
    assert all(g is None for g in light), "coarse logits must reach the refiner detached"
    assert all(p.grad is not None for p in model.aux_decoder.parameters())
    lora = [p for n, p in model.named_parameters() if ".lora_A." in n]
    assert all(p.grad is not None for p in lora)


def test_light_head_training_loss() -> None:
    model = build_model(tiny_vfm_cfg("SAMViT", ["MODEL.VFM_HEAD.TYPE", "light"])).train()
    losses = model(_batch(size=32))
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])


def test_sub_crop_offsets_as_the_originals_get_crop_bbox() -> None:
    """randint(0, (margin + 1) // grid) * grid: margin 64 - 32 = 32 -> (33 // 16) = 2 values."""
    model = build_model(tiny_vfm_cfg("DINOv2"))
    offsets = {model.sample_sub_crop(64, 96) for _ in range(200)}
    assert {y for y, _ in offsets} == {0, 16} and {x for _, x in offsets} == {0, 16, 32, 48}
    assert model.sample_sub_crop(32, 32) == (0, 0)
    with pytest.raises(ConfigError, match="SUB_CROP"):
        model.sample_sub_crop(16, 96)


def test_cross_entropy_averages_over_all_pixels_like_mmseg() -> None:
    """avg_non_ignore=False: sum over labelled pixels / all pixels (mmseg's reduce 'mean')."""
    model = build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light"]))
    logits = torch.randn(2, 5, 4, 4)
    labels = torch.randint(0, 5, (2, 4, 4))
    labels[0, :2] = 255
    per_pixel = -logits.log_softmax(1).gather(1, labels.clamp(max=4)[:, None])[:, 0]
    labelled = labels != 255
    torch.testing.assert_close(model._ce(logits, labels), per_pixel[labelled].sum() / 32)
    model.ce_avg_non_ignore = True
    torch.testing.assert_close(model._ce(logits, labels), per_pixel[labelled].mean())


def test_cross_entropy_keeps_float64_and_promotes_half_precision() -> None:
    """float64 logits (the parity runs) give a float64 loss; bfloat16 ones a float32 loss."""
    model = build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light"]))
    logits = torch.randn(2, 5, 4, 4, dtype=torch.float64) * 10
    labels = torch.randint(0, 5, (2, 4, 4))
    expected = -logits.log_softmax(1).gather(1, labels[:, None]).mean()
    loss = model._ce(logits, labels)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, rtol=1e-13, atol=0)
    assert model._ce(logits.bfloat16(), labels).dtype == torch.float32


def test_eval_outputs_class_probabilities_at_requested_size() -> None:
    model = build_model(tiny_vfm_cfg("CLIPViT", ["MODEL.VFM_HEAD.TYPE", "light"])).eval()
    inputs = [
        {
            "image": torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8),
            "height": 80,
            "width": 112,
        },
        {"image": torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)},
    ]
    outputs = model(inputs)
    assert outputs[0]["sem_seg"].shape == (5, 80, 112)
    assert outputs[1]["sem_seg"].shape == (5, 32, 32)
    torch.testing.assert_close(outputs[0]["sem_seg"].sum(0), torch.ones(80, 112))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="VFM_HEAD.TYPE"):
        build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "heavy"]))
    with pytest.raises(ConfigError, match="LIGHT_HEAD_NAME"):
        build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.LIGHT_HEAD_NAME", "Nope"]))
    with pytest.raises(ConfigError, match="coarse_to_fine"):
        build_model(
            tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light", "TEST.MODE", "coarse_to_fine"])
        )
    with pytest.raises(ConfigError, match="not a VFM backbone"):
        build_model(tiny_vfm_cfg("DINOv2", ["MODEL.BACKBONE.NAME", "CLIP"]))
    for meta_architecture in ("MultiScaleSegmentor", "HRDASegmentor"):
        overrides = ["MODEL.META_ARCHITECTURE", meta_architecture, "MODEL.VFM_HEAD.TYPE", "ms"]
        with pytest.raises(ConfigError, match="not a VFM backbone"):
            build_model(tiny_vfm_cfg("DINOv2", [*overrides, "MODEL.BACKBONE.NAME", "CLIP"]))


def test_training_batches_pad_to_the_crop_size_like_mmseg() -> None:
    """INPUT.VFM_PIPELINE.PAD_TO_CROP: smaller crops padded to INPUT.CROP.SIZE, the image with 0
    after normalisation and the label with the ignore value (mmseg's SegDataPreProcessor)."""
    overrides = ["INPUT.VFM_PIPELINE.PAD_TO_CROP", "True", "INPUT.CROP.SIZE", "(48, 80)"]
    model = build_model(tiny_vfm_cfg("DINOv2", overrides)).train()
    images, labels = model._training_batch(_batch(size=32))
    assert images.shape == (2, 3, 48, 80) and labels.shape == (2, 48, 80)
    assert (images[..., 32:, :] == 0).all() and (images[..., :, 32:] == 0).all()
    assert (labels[:, 32:, :] == 255).all() and (labels[:, :, 32:] == 255).all()
    assert (labels[:, :32, :32] < 5).all()
    unpadded = build_model(tiny_vfm_cfg("DINOv2")).train()
    assert unpadded._training_batch(_batch(size=32))[0].shape == (2, 3, 32, 32)


def _normalised(model: VFMSegmentor, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 -> (1, 3, H, W) normalised by the model's pixel mean / std, by hand."""
    mean, std = model.pixel_mean.view(3, 1, 1), model.pixel_std.view(3, 1, 1)
    return ((image.float() - mean) / std)[None]


def _by_hand(
    model: VFMSegmentor, head: torch.nn.Module, image: torch.Tensor, *extra: torch.Tensor
) -> torch.Tensor:
    """Zero-pad to 48 x 64 (multiples of 16), predict, upsample to 48 x 64, crop the padding."""
    padded = F.pad(_normalised(model, image), (0, 64 - image.shape[-1], 0, 48 - image.shape[-2]))
    logits = head(model.backbone(padded), *extra)
    up = F.interpolate(logits, size=(48, 64), mode="bilinear", align_corners=False)
    return up[..., : image.shape[-2], : image.shape[-1]]


def test_inference_crops_the_padding_before_resizing() -> None:
    """A 40 x 50 input (size divisibility 16): scores = softmax of the padded prediction cropped
    to 40 x 50 and only then resized to the requested 80 x 100."""
    torch.manual_seed(0)
    model = build_model(tiny_vfm_cfg("DINOv2", ["MODEL.VFM_HEAD.TYPE", "light"])).eval()
    assert model.size_divisibility == 16
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    with torch.no_grad():
        scores = model([{"image": image, "height": 80, "width": 100}])[0]["sem_seg"]
        cropped = _by_hand(model, model.decode_head, image)
    expected = F.interpolate(cropped, size=(80, 100), mode="bilinear", align_corners=False)
    torch.testing.assert_close(scores, expected[0].softmax(0), atol=1e-5, rtol=1e-4)


def test_refined_logits_crop_the_padding() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_vfm_cfg("DINOv2")).eval()
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    context = torch.randn(1, 5, 20, 25)
    with torch.no_grad():
        refined = model.refined_logits(_normalised(model, image), context)
        expected = _by_hand(model, model.aux_decoder, image, context)
    torch.testing.assert_close(refined, expected, atol=1e-5, rtol=1e-4)


def test_multi_scale_sub_crop_label_is_the_image_crops_box() -> None:
    """Labels are a function of the image (red value mod 5), so the refinement head's label crop
    must equal that function of its image crop, whatever box is drawn (64 x 96, sub-crop 32)."""
    torch.manual_seed(0)
    model = build_model(tiny_vfm_cfg("DINOv2")).train()
    inputs, ce_labels = [], []
    for _ in range(2):
        image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
        inputs.append({"image": image, "sem_seg": image[0].long() % 5})
    backbone_inputs: list[torch.Tensor] = []
    model.backbone.register_forward_pre_hook(lambda _, args: backbone_inputs.append(args[0]))

    def record_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce_labels.append(labels)  # calls: coarse (half-size labels), then the sub-crop's
        return logits.sum()

    model._ce = record_ce
    boxes = set()
    for _ in range(12):
        backbone_inputs.clear()
        ce_labels.clear()
        with torch.no_grad():
            model(inputs)
        sub_images, sub_labels = backbone_inputs[1], ce_labels[1]
        assert sub_images.shape == (2, 3, 32, 32) and sub_labels.shape == (2, 32, 32)
        std, mean = model.pixel_std.view(3, 1, 1), model.pixel_mean.view(3, 1, 1)
        red = (sub_images * std + mean).round().long()[:, 0]
        assert torch.equal(sub_labels, red % 5)
        full = torch.stack([_normalised(model, x["image"])[0] for x in inputs])
        matches = [
            (y, x)
            for y in range(0, 33, 16)
            for x in range(0, 65, 16)
            if torch.equal(full[..., y : y + 32, x : x + 32], sub_images)
        ]
        assert len(matches) == 1
        boxes.add(matches[0])
    assert len({y for y, _ in boxes}) == 2 and len({x for _, x in boxes}) > 2  # boxes vary
