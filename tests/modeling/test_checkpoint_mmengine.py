"""Checkpoints written by the original DGVFM runner (mmengine) load into our models.

Fixture ``dinov2_mmengine.pth`` (see tests/modeling/dgvfm_fixtures.py): the original's tiny
LoRA DINOv2 saved in mmengine's checkpoint layout, with real mmengine HistoryBuffer objects in
``message_hub`` (mmengine is not needed to read it here) and two head entries.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from clouds.cli_errors import user_error_code
from clouds.modeling.checkpoint import (
    CHECKPOINT_FORMATS,
    CheckpointMismatchError,
    UntrustedCheckpointError,
    detect_checkpoint_format,
    detect_pickled_format,
    is_mmengine_checkpoint,
    load_model_weights,
    map_original_state_dict,
    provides_foundation_weights,
    read_checkpoint,
    read_checkpoint_payload,
    read_mmengine_checkpoint,
)
from clouds.modeling.registry import BACKBONE_REGISTRY
from tests.modeling.dgvfm_fixtures import FIXTURES, fixture_cfg, fixture_image, original_record

CHECKPOINT = FIXTURES / "dinov2_mmengine.pth"


class _Bias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3))


def _model(with_aux: bool = True) -> nn.Module:
    """A random-weight tiny DINOv2 + LoRA with stand-ins for the two head entries of the file."""
    model = nn.Module()
    cfg = fixture_cfg("DINOv2", ["MODEL.VFM.WEIGHTS", "random"])
    model.backbone = BACKBONE_REGISTRY.get("DINOv2").from_config(cfg).eval()
    model.decode_head = nn.Module()
    model.decode_head.conv_seg = nn.Conv2d(4, 3, 1, bias=False)
    if with_aux:
        model.aux_decoder = nn.Module()
        model.aux_decoder.conv_seg = _Bias()
    return model


def test_mmengine_files_are_recognised_without_unpickling(tmp_path: Path) -> None:
    assert is_mmengine_checkpoint(CHECKPOINT)
    assert not is_mmengine_checkpoint(FIXTURES / "dinov2_official.pth")
    torch.save({"model": {"w": torch.zeros(1)}, "config": ""}, tmp_path / "ours.pth")
    assert not is_mmengine_checkpoint(tmp_path / "ours.pth")


def test_pickled_objects_need_the_trust_switch() -> None:
    with pytest.raises(UntrustedCheckpointError, match="MODEL.WEIGHTS_TRUST_PICKLE True"):
        read_mmengine_checkpoint(CHECKPOINT, trust_pickle=False)
    with pytest.raises(UntrustedCheckpointError, match="arbitrary code"):
        load_model_weights(_model(), CHECKPOINT)


def test_trusted_file_reads_with_inert_mmengine_objects() -> None:
    payload = read_mmengine_checkpoint(CHECKPOINT, trust_pickle=True)
    assert {"meta", "state_dict", "message_hub"} <= set(payload)
    buffers = payload["message_hub"]["log_scalars"]
    assert buffers and all(
        type(b).__module__.startswith("clouds.inert.mmengine.") for b in buffers.values()
    )


def test_checkpoint_gives_the_originals_model() -> None:
    """Base weights, LoRA and head entries come from the file: the features of a model built
    with random base weights become the original's."""
    model = _model()
    fmt = load_model_weights(model, CHECKPOINT, trust_pickle=True)
    assert "mmengine" in fmt.name
    state = read_mmengine_checkpoint(CHECKPOINT, trust_pickle=True)["state_dict"]
    assert torch.equal(model.decode_head.conv_seg.weight, state["decode_head.conv_seg.weight"])
    assert torch.equal(model.aux_decoder.conv_seg.bias, state["aux_decoder.conv_seg.bias"])
    record = original_record("DINOv2")
    for size, expected in zip(record["sizes"], record["features"]):
        with torch.no_grad():
            got = list(model.backbone(fixture_image(*size)).values())
        for ours, theirs in zip(got, expected, strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_mismatching_model_is_reported() -> None:
    with pytest.raises(CheckpointMismatchError, match="aux_decoder.conv_seg.bias"):
        load_model_weights(_model(with_aux=False), CHECKPOINT, trust_pickle=True)


def test_key_mapping_follows_which_layers_are_wrapped() -> None:
    prefix = "backbone.model.base_model.model.blocks.0.attn."
    original = {
        prefix + "q_proj.base_layer.weight": torch.zeros(1),
        prefix + "q_proj.lora_A.default.weight": torch.zeros(1),
        prefix + "proj.base_layer.weight": torch.zeros(1),
        prefix + "proj.lora_A.default.weight": torch.zeros(1),
        "backbone.model.base_model.model.rope.freqs_cos": torch.zeros(1),
        "decode_head.conv_seg.weight": torch.zeros(1),
    }
    ours = {
        "backbone.vit.blocks.0.attn.q_proj.weight",
        "backbone.vit.blocks.0.attn.proj.base_layer.weight",
        "backbone.vit.blocks.0.attn.proj.lora_A.default.weight",
        "decode_head.conv_seg.weight",
    }
    mapped, left_out = map_original_state_dict(original, ours)
    assert set(mapped) == ours
    assert set(left_out) == {
        prefix + "q_proj.lora_A.default.weight",
        "backbone.model.base_model.model.rope.freqs_cos",
    }


def test_light_head_checkpoints_keep_the_backbone_under_their_own_prefix() -> None:
    """The original's light-head segmentor (LoraBackboneEncoderDecoder) wraps the backbone in
    peft itself: its keys start with ``backbone.base_model.model.``, and map the same way."""
    ours = {"backbone.vit.blocks.0.attn.qkv.base_layer.weight", "decode_head.conv_seg.weight"}
    for prefix in ("backbone.model.base_model.model.", "backbone.base_model.model."):
        original = {
            prefix + "blocks.0.attn.qkv.base_layer.weight": torch.ones(1),
            "decode_head.conv_seg.weight": torch.zeros(1),
        }
        mapped, left_out = map_original_state_dict(original, ours)
        assert set(mapped) == ours and not left_out


def test_mmengine_files_are_an_entry_of_the_format_dispatch(tmp_path: Path) -> None:
    """The format is told from the file before anything is unpickled: reading it untrusted is
    refused, and it provides no foundation weights."""
    fmt = detect_pickled_format(CHECKPOINT)
    assert fmt in CHECKPOINT_FORMATS and "mmengine" in fmt.name and not fmt.complete
    assert detect_pickled_format(FIXTURES / "dinov2_official.pth") is None
    with pytest.raises(UntrustedCheckpointError):
        read_checkpoint(CHECKPOINT)
    assert read_checkpoint(CHECKPOINT, trust_pickle=True)[0] is fmt
    assert not provides_foundation_weights(CHECKPOINT)
    plain = tmp_path / "plain_mmengine.pth"  # no pickled objects: recognised by its payload too
    torch.save({"meta": {}, "state_dict": {"decode_head.conv_seg.weight": torch.zeros(1)}}, plain)
    assert detect_checkpoint_format(read_checkpoint_payload(plain)) is fmt


def test_untrusted_file_is_a_user_error() -> None:
    with pytest.raises(UntrustedCheckpointError) as info:
        load_model_weights(_model(), CHECKPOINT)
    assert user_error_code(info.value) == 1


def test_damaged_torch_zip_is_reported_as_unreadable(tmp_path: Path) -> None:
    """The path test reads the zip's pickle: a damaged one (bad CRC) is left to the
    weights-only reader, whose message names the file."""
    path = tmp_path / "damaged.pth"
    torch.save({"meta": {}, "state_dict": {"w": torch.zeros(1)}}, path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    data[data.find(pickled) + len(pickled) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not is_mmengine_checkpoint(path)
    with pytest.raises(ValueError, match="damaged.pth"):
        read_checkpoint(path)
