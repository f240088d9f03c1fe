"""The commands a user types, on a bad weight file, a bad OUTPUT_DIR, a bad ``--num-gpus``, an
empty prompt file or bad images: one line naming the key and the file, an exit code, and the
answer comes before any model is built (the builder is never called) with nothing written to
OUTPUT_DIR. Run in-process (``cli(argv)`` / ``main(argv)``) for speed; tests/engine/
test_user_errors.py runs a few of the same in a fresh interpreter."""

from __future__ import annotations

import errno
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import train_net
from clouds.data.catalog import MetadataCatalog
from clouds.data.datasets import register_all_datasets
from clouds.generation import cli as generate_cli
from clouds.utils import output_dir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import check_data  # noqa: E402  (tools/check_data.py)

WARMUP = str(ROOT / "configs/warmup/gta/train_gta.yaml")
JOINT = str(ROOT / "configs/joint_training/gta/train_jt_gta.yaml")
DGVFM = str(ROOT / "configs/dg/gta2citys/dg_lora_dinov2_ms_masked.yaml")
TOY = str(ROOT / "configs/toy/warmup_gta.yaml")
SETS = ["DATASETS.TRAIN", "('gta5',)", "DATASETS.TEST", "('cityscapes_val',)"]


@pytest.fixture
def datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """$DETECTRON2_DATASETS with 3 good GTA5 pairs and empty Cityscapes val folders; the hub
    off; the data-check cache in tmp_path; no model may be built."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLOUDS_CACHE_DIR", str(tmp_path / "cache"))
    register_all_datasets(root)
    for name in ("gta5", "cityscapes_val"):
        meta = MetadataCatalog.get(name)
        for folder in (meta.image_root, meta.sem_seg_root):
            Path(folder).mkdir(parents=True, exist_ok=True)
    for i in range(3):
        image = np.full((16, 32, 3), 60 * i, np.uint8)
        Image.fromarray(image).save(root / "gta" / "images" / f"{i:05d}.png")
        label = np.full((16, 32), i, np.uint8)
        Image.fromarray(label).save(root / "gta" / "labels" / f"{i:05d}_labelTrainIds.png")

    def no_build(*_: object, **__: object) -> None:
        raise AssertionError("the model was built before the mistake was answered")

    monkeypatch.setattr(train_net, "main", no_build)
    # generate_txt_im.py imports its pipeline loader only to load the model: an empty stand-in
    # makes that import fail (and spares importing diffusers here)
    empty = types.ModuleType("clouds.generation.pipeline")
    monkeypatch.setitem(sys.modules, "clouds.generation.pipeline", empty)
    yield root
    register_all_datasets()


def _train_net(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = train_net.cli(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line(err: str, prog: str = "train_net.py") -> str:
    assert "\n" not in err and "Traceback" not in err and "weights_only" not in err, err
    assert err.startswith(f"{prog}: error: "), err
    return err.removeprefix(f"{prog}: error: ")


def _truncated_torch_file(path: Path) -> Path:
    torch.save({"w": torch.zeros(4000)}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return path


@pytest.mark.parametrize(
    "config,key,make,expected",
    [
        (
            WARMUP,
            "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS",
            lambda p: _truncated_torch_file(p / "open_clip_pytorch_model.bin"),
            "is truncated or corrupt: the zip directory that ends a PyTorch file is missing "
            "(5.0 kB seen). Download open_clip_pytorch_model.bin again from https://huggingface.co",
        ),
        (
            DGVFM,
            "MODEL.VFM.WEIGHTS",
            lambda p: (
                (p / "dinov2.pth").write_text("<!DOCTYPE html><html>Sign in</html>")
                and p / "dinov2.pth"
            ),
            "is a web page (35 bytes), not weights",
        ),
        (
            WARMUP,
            "MODEL.WEIGHTS",
            lambda p: _truncated_torch_file(p / "model_final.ckpt"),
            "is truncated or corrupt: the zip directory that ends a PyTorch file is missing "
            "(5.0 kB seen). Point it to a complete checkpoint",
        ),
    ],
    ids=["clip-truncated", "vfm-html", "weights-truncated"],
)
def test_a_bad_weight_file_is_named_before_the_build(
    datasets, tmp_path, capsys, config, key, make, expected
) -> None:
    path = make(tmp_path)
    out = tmp_path / "out"
    argv = ["--config-file", config, *SETS, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out)]
    code, err = _train_net(capsys, *argv, key, str(path))
    assert code == 1 and _one_line(err).startswith(f"{key} {path} {expected}")
    assert not out.exists()


def test_a_sam_checkpoint_of_the_wrong_format(datasets, tmp_path, capsys) -> None:
    weights = tmp_path / "warmup.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, weights)
    sam = tmp_path / "mobile_sam.pt"
    save_file({"w": torch.zeros(2)}, sam)
    argv = ["--config-file", JOINT, *SETS, "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(weights)]
    argv += ["MODEL.CLOUDS.SAM.CHECKPOINT", str(sam), "OUTPUT_DIR", str(tmp_path / "out")]
    code, err = _train_net(capsys, *argv)
    assert code == 1
    assert _one_line(err) == (
        f"MODEL.CLOUDS.SAM.CHECKPOINT {sam} is a .safetensors file (72 bytes); "
        "MODEL.CLOUDS.SAM.CHECKPOINT reads a PyTorch file (torch.save: .pt/.pth/.ckpt/.bin)."
    )


@pytest.mark.parametrize("where", ["file", "read-only", "full"])
def test_output_dir_problems_before_anything_is_written(
    datasets, tmp_path, capsys, monkeypatch, where
) -> None:
    out = tmp_path / "out"
    if where == "file":
        out.write_text("notes")
    else:
        code_of = {"read-only": errno.EROFS, "full": errno.ENOSPC}[where]

        def refuse(**_: object) -> tuple[int, str]:
            raise OSError(code_of, "refused")

        monkeypatch.setattr(output_dir.tempfile, "mkstemp", refuse)
    code, err = _train_net(capsys, "--config-file", TOY, *SETS, "OUTPUT_DIR", str(out))
    message = _one_line(err)
    assert code == 1 and message.startswith(f"OUTPUT_DIR {out} ")
    reason = {"file": "is a file", "read-only": "read-only filesystem", "full": "no space left"}
    assert reason[where] in message
    assert (out.read_text() == "notes") if where == "file" else not out.exists()


@pytest.mark.parametrize("num_gpus", ["-1", "0", "1", "8"])
def test_num_gpus_follows_one_rule(datasets, tmp_path, capsys, monkeypatch, num_gpus) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    argv = ["--config-file", TOY, "--num-gpus", num_gpus, *SETS, "OUTPUT_DIR", str(out)]
    code, err = _train_net(capsys, *argv, "MODEL.DEVICE", "cuda")
    message = _one_line(err)
    assert code == 2 and not out.exists()
    if int(num_gpus) < 1:
        assert message.startswith("--num-gpus must be at least 1 (processes per machine, one GPU")
    else:
        assert message.startswith(f"--num-gpus {num_gpus} asks for {num_gpus} GPU process")
        assert "this machine has no GPU" in message and message.endswith("MODEL.DEVICE cpu.")


def _break_gta(root: Path) -> list[str]:
    """An undecodable image and a label with an unknown class value; their lines."""
    image = root / "gta" / "images" / "00001.png"
    image.write_bytes(image.read_bytes()[:40])
    label = root / "gta" / "labels" / "00002_labelTrainIds.png"
    Image.fromarray(np.full((16, 32), 77, np.uint8)).save(label)
    return [f"gta5: Cannot decode image {image}", f"gta5: Label map {label} holds values [77]"]


def test_check_data_reports_every_bad_file(datasets, capsys) -> None:
    expected = _break_gta(datasets)
    runs = (
        (train_net.cli, "train_net.py", ["--check-data"]),
        (check_data.main, "check_data.py", []),
    )
    for command, prog, flag in runs:
        code = command(["--config-file", TOY, *flag, *SETS])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("check-data:")]
        assert code == 1 and lines[0].startswith(f"{prog}: error: 3 problem(s) in the datasets")
        assert [line.startswith(e) for line, e in zip(lines[1:], expected)] == [True, True]
        assert lines[3].startswith("cityscapes_val: Dataset 'cityscapes_val': folder")
        assert len(lines) == 4


def test_a_long_training_checks_its_data_first(datasets, tmp_path, capsys, monkeypatch) -> None:
    expected = _break_gta(datasets)
    argv = ["--config-file", TOY, *SETS, "OUTPUT_DIR", str(tmp_path / "out")]
    code = train_net.cli([*argv, "SOLVER.MAX_ITER", "5000"])
    assert code == 1 and expected[0] in capsys.readouterr().err
    started = []
    monkeypatch.setattr(train_net, "main", started.append)
    assert train_net.cli([*argv, "SOLVER.MAX_ITER", "5000", "DATALOADER.CHECK_DATA", "False"]) == 0
    assert train_net.cli([*argv, "SOLVER.MAX_ITER", "20"]) == 0 and len(started) == 2


def test_generation_answers_before_loading_the_pipeline(datasets, tmp_path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# only a comment\n\n")
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DConditionModel"]}')
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({"w": torch.zeros(1000)}, unet)
    out = tmp_path / "generated"
    argv = ["--folder", "x", "--output-root", str(out), "--model-id", str(folder)]
    for prompt_file, expected in ((prompts, "holds no prompt"), (tmp_path / "no", "not found")):
        with pytest.raises(SystemExit) as info:
            generate_cli.main([*argv, "--input", str(prompt_file)])
        assert info.value.code == 2 and expected in _one_line(
            capsys.readouterr().err.strip(), "generate_txt_im.py"
        )
    prompts.write_text("a street\n")
    unet.write_bytes(unet.read_bytes()[:-500])
    with pytest.raises(SystemExit) as info:
        generate_cli.main([*argv, "--input", str(prompts)])
    message = _one_line(capsys.readouterr().err.strip(), "generate_txt_im.py")
    assert info.value.code == 2 and message.startswith(f"--model-id {unet} is truncated: its")
    assert not out.exists()
