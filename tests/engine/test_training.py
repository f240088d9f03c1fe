"""In-process training runs on CPU: outputs, resume, eval-only, NaN handling, weights."""

from __future__ import annotations

import json
import os

import lightning.pytorch as pl
import pytest
import torch

from clouds.config import load_config
from clouds.engine.launch import run
from clouds.engine.lightning_module import NonFiniteLossError
from clouds.modeling.checkpoint import (
    CheckpointMismatchError,
    load_model_weights,
    trainable_state_dict,
)
from tests.engine._predictions import RecordedPredictions, assert_results_match
from tests.engine._tiny import (
    NUM_CLASSES,
    TinyTestSegmentor,
    register_tiny_datasets,
    register_tiny_model,
    tiny_overrides,
)


def _cfg(output_dir, **extra):
    cfg = load_config(None, tiny_overrides(str(output_dir), **extra))
    cfg.freeze()
    return cfg


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


class _SimulatedKill(RuntimeError):
    """The job dies here (a crash, OOM kill or pre-emption would leave the same files)."""


class _Crash(pl.Callback):
    """Simulates a killed job: raises when iteration ``at`` starts (after earlier checkpoints)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise _SimulatedKill(f"killed at iteration {self.at}")


class _PoisonLoss(pl.Callback):
    """From iteration ``at`` on, the model's losses become NaN."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            pl_module.model.register_forward_hook(
                lambda module, args, out: {k: v * float("nan") for k, v in out.items()}
            )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    register_tiny_model()
    root = str(tmp_path_factory.mktemp("tiny_data"))
    register_tiny_datasets(root)
    return root


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("full")
    results = run(_cfg(out))
    return str(out), results


def test_run_writes_checkpoints_logs_and_metrics(full_run) -> None:
    out, results = full_run
    for name in ("model_0000003.ckpt", "model_0000006.ckpt", "last.ckpt", "model_final.ckpt"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))
    assert os.path.isfile(os.path.join(out, "report.md"))
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    losses = [r for r in records if "total_loss" in r]
    evals = [r for r in records if "tiny_val/sem_seg/mIoU" in r]
    assert [r["iteration"] for r in losses] == list(range(6))
    assert all("lr" in r and "loss_ce" in r for r in losses)
    assert len(evals) == 2  # TEST.EVAL_PERIOD 3 over 6 iterations
    assert evals[-1]["tiny_val/sem_seg/mIoU"] == pytest.approx(
        results["tiny_val"]["sem_seg"]["mIoU"]
    )
    ckpt = torch.load(os.path.join(out, "last.ckpt"), map_location="cpu", weights_only=True)
    # only trainable parts, plus optimizer, scheduler, sampler and iteration
    assert set(ckpt["state_dict"]) == {
        "query_embed",
        "head.0.weight",
        "head.0.bias",
        "head.1.weight",
        "head.1.bias",
    }
    assert ckpt["global_step"] == 6 and ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    assert ckpt["CloudsDataModule"]["sampler"]["num_samples"] == 12


def test_killed_run_resumes_to_the_same_weights(full_run, data_root, tmp_path) -> None:
    out, _ = full_run
    cfg = _cfg(tmp_path)
    with pytest.raises(_SimulatedKill):
        run(cfg, callbacks=[_Crash(at=4)])  # dies after the checkpoint of iteration 3
    assert _weights(tmp_path / "last.ckpt") and not (tmp_path / "model_final.ckpt").exists()
    run(cfg, resume=True)
    resumed = torch.load(tmp_path / "model_final.ckpt", map_location="cpu", weights_only=True)
    reference = torch.load(os.path.join(out, "model_final.ckpt"), weights_only=True)
    assert resumed["global_step"] == reference["global_step"] == 6
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0)


def test_eval_only_reproduces_training_evaluation(full_run, data_root, tmp_path) -> None:
    out, results = full_run
    weights = os.path.join(out, "model_final.ckpt")
    again = run(_cfg(tmp_path, **{"MODEL.WEIGHTS": weights}), eval_only=True)
    assert again == results
    # a plain state dict works as MODEL.WEIGHTS too
    plain = tmp_path / "plain.pth"
    torch.save(_weights(weights), plain)
    assert run(_cfg(tmp_path, **{"MODEL.WEIGHTS": str(plain)}), eval_only=True) == results


def test_model_weights_initialise_and_mismatches_are_named(full_run, tmp_path) -> None:
    out, _ = full_run
    model = TinyTestSegmentor(num_classes=3, ignore_value=255)
    load_model_weights(model, os.path.join(out, "model_final.ckpt"))
    for key, value in _weights(os.path.join(out, "model_final.ckpt")).items():
        assert torch.equal(trainable_state_dict(model)[key], value)
    wrong = TinyTestSegmentor(num_classes=5, ignore_value=255)
    with pytest.raises(CheckpointMismatchError, match="query_embed"):
        load_model_weights(wrong, os.path.join(out, "model_final.ckpt"))
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_model_weights(model, str(tmp_path / "nope.ckpt"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"iteration 4 .*loss_ce=nan"):
        run(cfg, callbacks=[_PoisonLoss(at=4)])
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (tmp_path / "model_final.ckpt").exists()


def test_eval_at_start_evaluates_before_the_first_iteration(data_root, tmp_path) -> None:
    run(_cfg(tmp_path, **{"TEST.EVAL_AT_START": True, "SOLVER.MAX_ITER": 3}))
    with open(tmp_path / "metrics.json") as f:
        records = [json.loads(line) for line in f]
    evals = [r["iteration"] for r in records if "tiny_val/sem_seg/mIoU" in r]
    assert evals == [0, 2]  # before training, then after iteration 2 (the 3rd, detectron2's count)


def test_scoring_at_the_test_size_runs_end_to_end(data_root, tmp_path) -> None:
    """Test images and labels resized to short side 48 (labels nearest), scored and reported."""
    extra = {"INPUT.MIN_SIZE_TEST": 48, "TEST.SCORE_AT_TEST_SIZE": True, "SOLVER.MAX_ITER": 3}
    with RecordedPredictions(TinyTestSegmentor, resize_labels=True) as recorded:
        results = run(_cfg(tmp_path, **extra))
    # the reported metrics are those of the model's predictions, scored against the label PNGs
    # resized nearest to the prediction size (48 x 96) by hand
    assert {pred.shape for _, pred in recorded.by_file.values()} == {(48, 96)}
    assert_results_match(results["tiny_val"]["sem_seg"], recorded, 4, NUM_CLASSES)
    assert (tmp_path / "report.md").is_file()
