"""Errors of a run that say what and where: a checkpoint that does not fit names its file on
resume, a file that is no checkpoint says so (without advice to load it unsafely), and a run
that stops on an error writes it to ``OUTPUT_DIR/log.txt`` too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from clouds.config import load_config
from clouds.engine.arguments import default_argument_parser
from clouds.engine.launch import launch_from_args, run
from clouds.modeling.checkpoint import CheckpointMismatchError, load_model_weights
from tests.engine._tiny import (
    TinyTestSegmentor,
    register_tiny_datasets,
    register_tiny_model,
    tiny_overrides,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    register_tiny_model()
    root = tmp_path_factory.mktemp("tiny")
    register_tiny_datasets(str(root / "data"))
    cfg = load_config(None, tiny_overrides(str(root / "out"), **{"DATASETS.TEST": "()"}))
    cfg.freeze()
    run(cfg)
    return root


def test_resume_from_a_checkpoint_of_another_model_names_the_file(tiny_run, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_run / "out", out)
    opts = tiny_overrides(str(out), **{"MODEL.SEM_SEG_HEAD.NUM_CLASSES": 5, "DATASETS.TEST": "()"})
    cfg = load_config(None, [*opts, "SOLVER.MAX_ITER", "8"])
    cfg.freeze()
    with pytest.raises(CheckpointMismatchError, match=rf"(?s){out / 'last.ckpt'}.*query_embed"):
        run(cfg, resume=True)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is empty"),
        (b"model: not a checkpoint\n", "is not a weights file of a known format"),
        (None, "holds pickled Python objects besides tensors"),
    ],
    ids=["empty", "text", "pickled-object"],
)
def test_a_file_that_is_no_checkpoint_says_so(tmp_path, content, message) -> None:
    path = tmp_path / "weights.pth"
    if content is None:
        torch.save({"model": Path("x")}, path)
    else:
        path.write_bytes(content)
    model = TinyTestSegmentor(num_classes=3, ignore_value=255)
    with pytest.raises(ValueError, match=rf"MODEL.WEIGHTS {path} {message}") as e:
        load_model_weights(model, str(path))
    assert "weights_only" not in str(e.value) and "trust" not in str(e.value)


def test_a_fatal_error_is_written_to_the_run_log(tiny_run, tmp_path) -> None:
    out = tmp_path / "failing"
    opts = tiny_overrides(str(out), **{"DATASETS.TRAIN": "('no_such_dataset',)"})
    args = default_argument_parser().parse_args(opts)
    with pytest.raises(Exception, match="no_such_dataset") as e:
        launch_from_args(args)
    log = (out / "log.txt").read_text()
    assert f"Run stopped by {type(e.value).__name__}" in log and "no_such_dataset" in log
    assert "Traceback" in log
    assert not (out / "run.lock").exists()
