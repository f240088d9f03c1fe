"""DGVFM's light head normalises over all processes (the original's SyncBatchNorm): one step on
2 CPU processes (gloo, DDP) x 2 images gives the gradients and BatchNorm statistics of one
process on the 4 pooled images; nothing else in the model is converted."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from clouds.config import load_config
from clouds.engine.sync_batchnorm import (
    CPUSyncBatchNorm,
    convert_batchnorm,
    sync_light_head_batchnorm,
)
from clouds.modeling.meta_arch.vfm_segmentor import VFMSegmentor
from tests.engine._pooled_batch import (
    REPO,
    build_model,
    ddp_worker,
    pooled_batch,
    step_record,
    to_cpu,
)
from tests.engine.test_mask2former_configs import _tiny_model_overrides

TOLERANCE = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict[str, list[dict]]:
    """Each of 2 processes' record of the step with and without the synchronised light head."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return {
        name: [torch.load(out / f"rank{r}_{name}.pt", weights_only=True) for r in range(2)]
        for name in ("sync", "local")
    }


def _max_difference(a: dict, b: dict) -> dict[str, float]:
    """Largest absolute difference of the gradients and of the BatchNorm statistics."""
    return {
        "grads": max((a["grads"][k] - b["grads"][k]).abs().max().item() for k in a["grads"]),
        "running_stats": max(
            (x - y).abs().max().item()
            for key in ("running_mean", "running_var")
            for x, y in zip(a[key], b[key])
        ),
    }


@pytest.fixture(scope="module")
def pooled() -> dict:
    model = build_model()
    return step_record(model, model, pooled_batch())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch's SyncBatchNorm needs CUDA")
def test_on_a_gpu_torch_syncbatchnorm_gives_the_step_of_the_pooled_batch(tmp_path) -> None:
    """The GPU path (torch.nn.SyncBatchNorm, the original's layer): 2 processes sharing GPU 0."""
    model = build_model("cuda")
    reference = to_cpu(step_record(model, model, pooled_batch()))
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path), "cuda"), nprocs=2, join=True)
    for r in range(2):
        record = torch.load(tmp_path / f"rank{r}_sync.pt", weights_only=True)
        assert record["norm_types"] == ["SyncBatchNorm"]
        difference = _max_difference(record, reference)
        assert max(difference.values()) < TOLERANCE, difference


def test_two_processes_give_the_step_of_the_pooled_batch(two_processes, pooled) -> None:
    ranks = two_processes["sync"]
    assert ranks[0]["norm_types"] == ["CPUSyncBatchNorm"]
    for record in ranks:
        difference = _max_difference(record, pooled)
        assert difference["grads"] < TOLERANCE, difference
        assert difference["running_stats"] < TOLERANCE, difference
    # the per-process losses average to the pooled one (equal pixel counts per process)
    for name, value in pooled["losses"].items():
        mean = (ranks[0]["losses"][name] + ranks[1]["losses"][name]) / 2
        assert torch.allclose(mean, value, atol=TOLERANCE), name


def test_without_synchronisation_the_statistics_are_per_process(two_processes, pooled) -> None:
    """The control: the check above would see a light head normalising per process."""
    ranks = two_processes["local"]
    assert ranks[0]["norm_types"] == ["BatchNorm2d"]
    for record in ranks:
        difference = _max_difference(record, pooled)
        assert difference["running_stats"] > 10 * TOLERANCE, difference
        assert difference["grads"] > 10 * TOLERANCE, difference


def test_only_the_light_head_batchnorm_is_converted_with_its_state() -> None:
    model = build_model()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 1 and any(m is norms[0] for m in model.decode_head.modules())
    norms[0].running_mean.uniform_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert sync_light_head_batchnorm(model, device_type="cpu") == 1
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    converted = model.decode_head.output_upscaling[1]
    assert isinstance(converted, CPUSyncBatchNorm) and converted.training
    assert converted.weight.requires_grad
    assert sync_light_head_batchnorm(model, device_type="cpu") == 0  # already converted


def test_accelerators_get_torch_syncbatchnorm() -> None:
    head = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    converted = convert_batchnorm(head, device_type="cuda")
    assert type(converted[1]) is nn.SyncBatchNorm and not converted[1].training


def test_one_process_is_a_plain_batchnorm() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    plain, synced = nn.BatchNorm2d(4), convert_batchnorm(nn.BatchNorm2d(4), device_type="cpu")
    y_plain, y_synced = plain(x), synced(x)
    assert torch.equal(y_plain, y_synced)
    assert torch.equal(plain.running_var, synced.running_var)


def test_rein_clip_pyramid_batchnorm_is_converted() -> None:
    config = "configs/dg/gta2citys/rein_clip-L_mask2former_512x512_bs1x4.yaml"
    cfg = load_config(str(REPO / config), [str(x) for x in _tiny_model_overrides(config)])
    model = VFMSegmentor.from_config(cfg)
    assert model.backbone.pyramid
    assert sync_light_head_batchnorm(model, device_type="cpu") == 1  # the original's SyncBN
    assert isinstance(model.backbone.fpn1[2], CPUSyncBatchNorm)
