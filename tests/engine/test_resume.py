"""Exact resume of the real tiny CLOUDS model (configs/toy, CPU) after SIGKILL.

A training is started through ``launch_from_args`` (lock, config check, temp-file cleaning,
checkpoints) in a forked child process that kills itself with SIGKILL at one point: before the
first checkpoint, half-way through writing a checkpoint (the temporary file cut short), or
during an evaluation. The run is then resumed in this process with ``--resume``; its final
weights must equal, bit for bit, those of an uninterrupted run. The same for joint training
(EMA teacher + tiny SAM refinement). Also: a corrupt ``last.ckpt`` falls back to the newest
good periodic checkpoint, and no ``-v1`` duplicates appear.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from clouds.data.datasets import register_all_datasets
from clouds.data.toy import make_converted_toy_datasets
from clouds.engine.arguments import default_argument_parser
from clouds.engine.launch import launch_from_args
from clouds.engine.resume import find_resume_checkpoint
from clouds.modeling.checkpoint import ours as checkpointing
from clouds.sam import build_tiny_sam
from clouds.utils.io import is_temp_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "toy"


class KillAt(pl.Callback):
    """SIGKILL this process at iteration ``step``: at the start of the iteration ("step"),
    during the evaluation that follows it ("eval"), or half-way through writing its checkpoint
    ("save": the temporary file is cut to half its size first)."""

    def __init__(self, where: str, step: int) -> None:
        self.where, self.step = where, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.where == "step" and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.where == "save" and trainer.global_step == self.step - 1:
            real_save = torch.save

            def save_and_die(obj, path, *args, **kwargs) -> None:
                real_save(obj, path, *args, **kwargs)
                os.truncate(path, os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)

            checkpointing.torch.save = save_and_die

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *_) -> None:
        if self.where == "eval" and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _args(config: str, opts: list[str], *, resume: bool):
    argv = ["--config-file", str(CONFIGS / config), *(["--resume"] if resume else []), *opts]
    return default_argument_parser().parse_args(argv)


def _train(config: str, opts: list[str], *, resume: bool = False) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    launch_from_args(_args(config, opts, resume=resume))
    out = Path(opts[opts.index("OUTPUT_DIR") + 1])
    return torch.load(out / "model_final.ckpt", map_location="cpu", weights_only=False)


def _killed_child(config: str, opts: list[str], where: str, step: int) -> None:
    torch.set_num_threads(1)
    launch_from_args(_args(config, opts, resume=False), callbacks=[KillAt(where, step)])


def _run_killed(config: str, opts: list[str], where: str, step: int) -> None:
    child = multiprocessing.get_context("fork").Process(
        target=_killed_child, args=(config, opts, where, step)
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL, f"child ended with {child.exitcode}, not killed"


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def _tensors(state: object) -> list[torch.Tensor]:
    """Every tensor in a nested checkpoint state, in a fixed order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in _tensors(state[k])]
    if isinstance(state, list | tuple):
        return [t for item in state for t in _tensors(item)]
    return []


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    make_converted_toy_datasets(root / "data", seed=0, num_images=2, size=(64, 128))
    register_all_datasets(root / "data")
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), root / "sam.pth")
    os.environ["DETECTRON2_DATASETS"] = str(root / "data")
    return root


WARMUP = "warmup_gta.yaml"
WARMUP_OPTS = [
    "DATASETS.TEST", "('cityscapes_val',)",
    "SOLVER.MAX_ITER", "4",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "TEST.EVAL_PERIOD", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def warmup_reference(toy_data: Path) -> dict:
    return _train(WARMUP, [*WARMUP_OPTS, "OUTPUT_DIR", str(toy_data / "reference")])


@pytest.mark.parametrize(
    "where,step",
    [("step", 1), ("save", 4), ("eval", 2)],
    ids=["before-first-checkpoint", "while-writing-checkpoint", "during-evaluation"],
)
def test_killed_warmup_resumes_bit_identical(toy_data, warmup_reference, where, step) -> None:
    out = toy_data / f"killed_{where}"
    opts = [*WARMUP_OPTS, "OUTPUT_DIR", str(out)]
    _run_killed(WARMUP, opts, where, step)
    assert (out / "run.lock").exists()  # left by the killed run, taken over below
    if where == "save":  # the half-written checkpoint is left; resume removes it
        assert [p for p in out.iterdir() if is_temp_file(p)]
    resumed = _train(WARMUP, opts, resume=True)
    _assert_same_weights(resumed, warmup_reference)
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if ".tmp" in n or "-v1" in n], names
    assert "run.lock" not in names


def test_corrupt_last_checkpoint_falls_back_to_periodic(toy_data, warmup_reference, caplog):
    out = toy_data / "corrupt_last"
    opts = [*WARMUP_OPTS, "OUTPUT_DIR", str(out)]
    _run_killed(WARMUP, opts, "step", 3)  # model_0000002.ckpt and last.ckpt at iteration 2
    last = out / "last.ckpt"
    os.truncate(last, last.stat().st_size - 100)
    resume_logger = logging.getLogger("clouds.engine.resume")
    resume_logger.addHandler(caplog.handler)
    try:
        assert find_resume_checkpoint(out) == str(out / "model_0000002.ckpt")
    finally:
        resume_logger.removeHandler(caplog.handler)
    assert "corrupt or truncated" in caplog.text
    resumed = _train(WARMUP, opts, resume=True)
    _assert_same_weights(resumed, warmup_reference)


def _joint_opts(toy_data: Path, out: str) -> list[str]:
    return [
        "MODEL.WEIGHTS", "",
        "DATASETS.TEST", "('cityscapes_val',)",
        "MODEL.CLOUDS.SAM.CHECKPOINT", str(toy_data / "sam.pth"),
        "SOLVER.MAX_ITER", "4",
        "SOLVER.CHECKPOINT_PERIOD", "2",
        "TEST.EVAL_PERIOD", "2",
        "OUTPUT_DIR", str(toy_data / out),
    ]  # fmt: skip


def test_killed_joint_training_resumes_bit_identical(toy_data) -> None:
    reference = _train("joint_gta.yaml", _joint_opts(toy_data, "joint_reference"))
    opts = _joint_opts(toy_data, "joint_killed")
    _run_killed("joint_gta.yaml", opts, "step", 3)  # after the EMA update of iteration 2
    resumed = _train("joint_gta.yaml", opts, resume=True)
    _assert_same_weights(resumed, reference)
    # The EMA teacher (in the state of a joint-training callback) is restored exactly too.
    states = {k: v for k, v in reference["callbacks"].items() if not k.startswith("ModelCheck")}
    teacher = [t for v in states.values() for t in _tensors(v)]
    assert teacher, "the checkpoint holds no EMA teacher state"
    resumed_states = {k: resumed["callbacks"][k] for k in states}
    assert all(map(torch.equal, teacher, [t for v in resumed_states.values() for t in _tensors(v)]))
