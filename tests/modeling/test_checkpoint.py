"""Checkpoints: what counts as trainable, round trip with the config, mismatch errors, and the
original CLOUDS' detectron2 checkpoints (format detection, key lists, strict whole-model load)."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.model import CLIP as OpenCLIP
from torch import nn

import clouds.modeling.backbone.clip as clip_module
from clouds.config import get_cfg, load_config
from clouds.modeling import build_model
from clouds.modeling.backbone.clip import create_clip_model
from clouds.modeling.checkpoint import (
    CheckpointMismatchError,
    foundation_weights_context,
    load_checkpoint,
    load_model_weights,
    load_trainable_state_dict,
    provides_foundation_weights,
    read_checkpoint,
    save_checkpoint,
    trainable_state_dict,
)
from tests.modeling.model_utils import toy_config
from tests.modeling.original_parity import (
    FIXTURES,
    REPO,
    parity_config,
    write_original_checkpoint,
)


class Student(nn.Module):
    """A frozen "backbone" (conv + BN), a trained "head" (linear + BN) and an EMA teacher copy."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.head.register_buffer("cache", torch.zeros(2), persistent=False)
        self.scale = nn.Parameter(torch.ones(()))
        self.fixed = nn.Parameter(torch.ones(()), requires_grad=False)
        self.teacher = copy.deepcopy(self.head).requires_grad_(False)


def test_rule_keeps_trained_parameters_and_their_buffers_only() -> None:
    keys = set(trainable_state_dict(Student()))
    assert keys == {
        "head.0.weight",
        "head.0.bias",
        "head.1.weight",
        "head.1.bias",
        "head.1.running_mean",
        "head.1.running_var",
        "head.1.num_batches_tracked",
        "scale",
    }


def test_clouds_checkpoint_leaves_out_the_frozen_clip_model() -> None:
    model = build_model(toy_config())
    state = trainable_state_dict(model)
    assert state and not any(key.startswith("backbone.") for key in state)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained <= set(state)
    # the text decoder trains the void embedding (a child of the model, as in the original)
    assert all(key.startswith(("sem_seg_head.", "void_embedding.")) for key in state)
    assert "void_embedding.weight" in state


def test_round_trip_with_config(tmp_path: Path) -> None:
    cfg = toy_config()
    source = build_model(cfg)
    path = tmp_path / "ckpt" / "model_final.pth"
    save_checkpoint(path, source, cfg, extra={"iteration": 7})
    target = build_model(cfg)
    assert not all(
        torch.equal(v, trainable_state_dict(target)[k])
        for k, v in trainable_state_dict(source).items()
    )
    payload = load_checkpoint(path, target)
    assert payload["iteration"] == 7
    for key, value in trainable_state_dict(source).items():
        torch.testing.assert_close(trainable_state_dict(target)[key], value)
    saved_cfg = get_cfg()
    saved_cfg.merge_from_other_cfg(saved_cfg.load_cfg(payload["config"]))
    assert saved_cfg.MODEL.CLOUDS.CLIP_MODEL_NAME == "clouds_tiny_convnext"
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path]


def test_mismatched_architecture_lists_keys_and_shapes() -> None:
    state = trainable_state_dict(build_model(toy_config()))
    other = build_model(
        toy_config(
            ["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "12", "MODEL.MASK_FORMER.DEC_LAYERS", "4"]
        )
    )
    before = {k: v.clone() for k, v in trainable_state_dict(other).items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_trainable_state_dict(other, state)
    error = info.value
    assert any(".2." in key for key in error.missing), error.missing
    assert not error.unexpected
    shapes = {key: (got, want) for key, got, want in error.shape_mismatches}
    assert shapes["sem_seg_head.predictor.query_feat.weight"] == ((10, 32), (12, 32))
    assert "sem_seg_head.predictor.query_feat.weight" in str(error)
    assert "missing in the checkpoint" in str(error)
    for key, value in trainable_state_dict(other).items():
        assert torch.equal(value, before[key]), "nothing may be loaded on a mismatch"


def test_unexpected_keys_are_reported() -> None:
    model = Student()
    state = trainable_state_dict(model)
    state["head.2.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected.*head\.2\.weight"):
        load_trainable_state_dict(model, state)


def test_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(tmp_path / "nothing.pth", Student())
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="foreign.pth"):
        load_checkpoint(foreign, Student())


# ----------------------------------------------------------------- original CLOUDS checkpoints
# The key lists of the original's full-size models (original_key_lists.json.gz) were written by
# building the ORIGINAL model (yasserben/CLOUDS @ bac4305, open-clip-torch 2.20.0, timm 0.9.5)
# from its configs/warmup/gta/train_gta{,_r50,_r101}.yaml without weights and saving every
# state-dict key with its shape; "train_gta_r50_text" is train_gta_r50.yaml with
# TRANSFORMER_DECODER_NAME MultiScaleMaskedTransformerDecoder.
KEY_LISTS = FIXTURES / "original_key_lists.json.gz"
LINEAR = "OriginalMultiScaleMaskedTransformerDecoder"
TEXT = "MultiScaleMaskedTransformerDecoder"
FULL_SIZE = {  # variant: (our config, first that exists; decoder)
    "train_gta": (("train_gta.yaml",), LINEAR),
    "train_gta_r50": (("train_gta_r50.yaml",), LINEAR),
    "train_gta_r101": (("train_gta_r101.yaml",), LINEAR),
    "train_gta_r50_text": (("train_gta_r50.yaml",), TEXT),
}


def _meta_clip(model_name: str, pretrained: str = "") -> nn.Module:
    """The open_clip architecture on the meta device (keys and shapes only, instantly)."""
    with torch.device("meta"):
        return OpenCLIP(**open_clip.get_model_config(model_name))


@pytest.mark.parametrize("variant", sorted(FULL_SIZE))
def test_full_size_state_dict_keys_equal_the_originals(variant, monkeypatch) -> None:
    names, decoder = FULL_SIZE[variant]
    folder = REPO / "configs" / "warmup" / "gta"
    config = next(folder / n for n in names if (folder / n).is_file())
    cfg = load_config(str(config), ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", decoder])
    monkeypatch.setattr(clip_module, "create_clip_model", _meta_clip)
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in build_model(cfg).state_dict().items()}
    with gzip.open(KEY_LISTS, "rt") as f:
        original = json.load(f)
    entry = original["model"][variant]
    expected = {
        **{f"backbone.clip_model.{k}": v for k, v in original["clip"][entry["clip_model"]].items()},
        **entry["other"],
    }
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


def test_original_checkpoint_loads_whole_model_with_its_clip(tmp_path: Path) -> None:
    path = write_original_checkpoint("resnet_text", tmp_path / "model_final.pth")
    payload = torch.load(path, weights_only=True)
    payload["model"]["sem_seg_head_ema.predictor.query_feat.weight"] = torch.zeros(1)  # teacher
    torch.save(payload, path)
    fmt, state = read_checkpoint(path)
    assert fmt.complete and fmt.name.startswith("original CLOUDS")
    assert not any(k.startswith("sem_seg_head_ema.") for k in state)
    model = build_model(parity_config("resnet_text"))
    with torch.no_grad():  # another CLIP than the file's: loading must replace it
        model.backbone.clip_model.logit_scale.fill_(0.0)
    assert load_model_weights(model, path) is fmt
    for key, value in model.state_dict().items():
        assert torch.equal(value, payload["model"][key]), key


def test_original_checkpoint_of_another_architecture_loads_nothing(tmp_path: Path) -> None:
    path = write_original_checkpoint("resnet_text", tmp_path / "model_final.pth")
    model = build_model(parity_config("convnext_linear"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_model_weights(model, path)
    message = str(info.value)
    assert "original CLOUDS" in message and str(path) in message
    assert "sem_seg_head.predictor.class_embed.weight" in message  # Linear vs MLP head
    assert "backbone.clip_model.visual.trunk.stem.0.weight" in message  # ConvNeXt vs ResNet
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), "nothing may be loaded on a mismatch"


def test_clip_is_built_without_download_when_the_checkpoint_holds_it(
    tmp_path: Path, monkeypatch
) -> None:
    calls = []
    real = open_clip.create_model

    def recording(name, pretrained=None, **kwargs):
        calls.append((name, pretrained, kwargs.get("force_quick_gelu")))
        return real(name, pretrained=None, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", recording)
    original = write_original_checkpoint("resnet_text", tmp_path / "original.pth")
    ours = tmp_path / "ours.pth"
    torch.save({"model": {}, "config": ""}, ours)
    calls.clear()
    with foundation_weights_context(original):
        create_clip_model("RN50", "openai")
    assert calls == [("RN50", None, True)]  # no weights, but OpenAI's QuickGELU
    assert provides_foundation_weights(original)
    assert not provides_foundation_weights(ours)
    assert not provides_foundation_weights(tmp_path / "missing.pth")


def test_unknown_file_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "weird.pth"
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="weird.pth is not a checkpoint of a known format"):
        read_checkpoint(path)
