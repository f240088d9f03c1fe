"""tools/eval_corruptions.py on toy Cityscapes and ACDC with a tiny model: cells, report,
per-image seeding (a rerun of a cell gives the same numbers) and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clouds.data.toy import make_converted_toy_datasets
from tests.tools._tiny_eval import tiny_opts, tiny_weights, tool

DATASETS = ["cityscapes_val", "acdc_fog_val", "acdc_night_val"]
SIZE = (40, 64)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_converted_toy_datasets(tmp_path_factory.mktemp("toy"), num_images=2, size=SIZE)


def _run(output: Path, weights: Path, *extra: str) -> int:
    # config overrides among the options, as the usage line shows them
    argv = ["--severities", "2", *tiny_opts(*SIZE, **{"MODEL.WEIGHTS": weights})]
    argv += ["--output-dir", str(output), "--corruptions", "gaussian_noise", "contrast"]
    argv += ["--seed", "3", *extra]
    for name in DATASETS:
        argv += ["--dataset", name]
    torch.manual_seed(0)  # the tiny model's frozen part, as when its weights were saved
    return tool("eval_corruptions").main(argv)


def test_cells_report_resume_and_reproducibility(
    toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(toy_root))
    weights = tiny_weights(tmp_path / "tiny.ckpt", tiny_opts(*SIZE))
    out = tmp_path / "robustness"
    assert _run(out, weights) == 0
    cells = out / "cells"
    names = sorted(p.stem for p in cells.glob("*.json"))
    assert names == ["clean", "contrast_s2", "gaussian_noise_s2"]
    clean = json.loads((cells / "clean.json").read_text())
    noisy = json.loads((cells / "gaussian_noise_s2.json").read_text())
    assert list(clean) == DATASETS
    assert len(clean["acdc_night_val"]["confusion"]) == 19
    assert clean["cityscapes_val"]["confusion"] != noisy["cityscapes_val"]["confusion"]
    text = (out / "report.md").read_text()
    assert "| gaussian_noise |" in text and "| ACDC day | pixel-wise over acdc_fog_val |" in text
    assert (out / "report_files/corruptions.png").is_file()

    # Resume: a finished cell is kept as it is, a missing one is evaluated again, identically.
    kept = (cells / "contrast_s2.json").stat().st_mtime_ns
    (cells / "gaussian_noise_s2.json").unlink()
    assert _run(out, weights) == 0
    assert (cells / "contrast_s2.json").stat().st_mtime_ns == kept
    assert json.loads((cells / "gaussian_noise_s2.json").read_text()) == noisy

    # Another config is another run: refused in the same folder.
    assert _run(out, weights, "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "254") != 0


def test_config_overrides_may_stand_among_the_options() -> None:
    args = tool("eval_corruptions").parse_args(
        ["--config-file", "C.yaml", "MODEL.WEIGHTS", "w.ckpt", "--output-dir", "OUT"]
        + ["--severities", "1", "5", "SEED", "3", "--dataset", "acdc_fog_val"]
    )
    assert (args.config_file, args.output_dir, args.severities) == ("C.yaml", "OUT", [1, 5])
    assert args.dataset == ["acdc_fog_val"]
    assert args.opts == ["MODEL.WEIGHTS", "w.ckpt", "SEED", "3"]
