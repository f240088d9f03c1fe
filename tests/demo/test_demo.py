"""demo/demo.py on toy images (files, a folder, a glob), a 3-frame video and the toy CLOUDS model."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from clouds.config import CfgNode
from clouds.data.catalog import MetadataCatalog
from clouds.modeling.checkpoint import save_checkpoint
from clouds.modeling.registry import META_ARCH_REGISTRY
from clouds.utils.io import write_png_atomic
from clouds.visualization.demo_outputs import read_video_frames
from clouds.visualization.visualizer import class_colors, colorize, overlay

ROOT = Path(__file__).resolve().parents[2]
DATASET = "_demo_test_set"
# Four classes but only three colours: the fourth colour is generated (open-vocabulary lists).
CLASSES = ["reddish", "greenish", "bluish", "dark"]
COLORS = [[200, 0, 0], [0, 200, 0], [0, 0, 200]]
# Class scores of the tiny model: R, G, B channels and a constant; "dark" wins on dark pixels.
WEIGHT = torch.eye(4, 3)
BIAS = torch.tensor([0.0, 0.0, 0.0, 0.3])


class DemoTestColorArch(nn.Module):
    """A 1x1 convolution from RGB to class scores: a model whose predictions are known."""

    def __init__(self, *, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> DemoTestColorArch:
        return cls(num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)

    def forward(self, batched_inputs: list[dict]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for x in batched_inputs:
            scores = self.conv(x["image"].float()[None] / 255.0)
            size = (x["height"], x["width"])
            outputs.append({"sem_seg": F.interpolate(scores, size=size, mode="nearest")[0]})
        return outputs


if "DemoTestColorArch" not in META_ARCH_REGISTRY:
    META_ARCH_REGISTRY.register(DemoTestColorArch)


def _demo():
    spec = importlib.util.spec_from_file_location("clouds_demo", ROOT / "demo/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_pred(image: np.ndarray) -> np.ndarray:
    """Class ids the tiny model must predict, computed without the model."""
    scores = image.astype(np.float64) / 255.0 @ WEIGHT.double().numpy().T + BIAS.numpy()
    return scores.argmax(axis=-1)


def _toy_image(seed: int, height: int = 24, width: int = 40) -> np.ndarray:
    """Blocks of red, green, blue and dark grey, shuffled per seed."""
    colors = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [30, 30, 30]], np.uint8)
    rng = np.random.default_rng(seed)
    blocks = rng.permutation(4)
    image = np.zeros((height, width, 3), np.uint8)
    for i, c in enumerate(blocks):
        image[:, i * width // 4 : (i + 1) * width // 4] = colors[c]
    image[: height // 3, : width // 2] = colors[seed % 3]
    return image


@pytest.fixture
def setup(tmp_path: Path):
    MetadataCatalog.get(DATASET).set(stuff_classes=CLASSES, stuff_colors=COLORS, ignore_label=255)
    cfg_file = tmp_path / "demo.yaml"
    cfg_file.write_text(
        "MODEL:\n"
        '  META_ARCHITECTURE: "DemoTestColorArch"\n'
        '  DEVICE: "cpu"\n'
        "  SEM_SEG_HEAD:\n"
        "    NUM_CLASSES: 4\n"
        f'DATASETS:\n  TEST: ("{DATASET}",)\n'
        "INPUT:\n  MIN_SIZE_TEST: 16\n  MAX_SIZE_TEST: 64\n"
    )
    model = DemoTestColorArch(num_classes=4)
    with torch.no_grad():
        model.conv.weight.copy_(WEIGHT[:, :, None, None])
        model.conv.bias.copy_(BIAS)
    weights = tmp_path / "model_final.pth"
    save_checkpoint(weights, model, CfgNode({"MODEL": {"NAME": "demo"}}))
    yield cfg_file, weights
    MetadataCatalog.remove(DATASET)


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def test_images_files_folder_and_glob(setup, tmp_path: Path) -> None:
    cfg_file, weights = setup
    demo = _demo()
    images = {}  # output name -> image
    inputs = {  # file -> output name
        "single/img0.png": "img0", "folder/img1.png": "img1", "folder/img2.png": "img2",
        "globbed/img3.png": "globbed/img3",  # the folder a wildcard matched is kept
        "folder/city_b/img1.png": "city_b/img1",
        "folder/city_a/x/img5.png": "city_a/x/img5",
    }  # fmt: skip
    for seed, (file, name) in enumerate(inputs.items()):
        images[name] = _toy_image(seed)
        write_png_atomic(images[name], tmp_path / file)
    out = tmp_path / "folder/out"  # inside an input folder: its outputs are never inputs
    argv = [
        "--config-file", str(cfg_file),
        "--input", str(tmp_path / "single/img0.png"), str(tmp_path / "folder"),
        str(tmp_path / "glob*" / "*.png"), str(tmp_path / "folder/img1.png"),
        "--output", str(out), "--alpha", "0.4",
        "MODEL.WEIGHTS", str(weights), "INPUT.MIN_SIZE_TEST", "24",
    ]  # fmt: skip
    written = demo.run(demo.parse_args(argv))
    assert len(written) == 3 * 6
    colors = class_colors(MetadataCatalog.get(DATASET))
    assert colors.shape == (4, 3) and colors[:3].tolist() == COLORS
    for stem, image in images.items():
        expected = _expected_pred(image)
        assert len(np.unique(expected)) >= 3  # the check below compares varied predictions
        assert np.array_equal(_read_png(out / f"{stem}_pred.png"), colorize(expected, colors))
        assert np.array_equal(
            _read_png(out / f"{stem}_overlay.png"), overlay(image, expected, colors, 0.4)
        )
        legend = _read_png(out / f"{stem}_legend.png")
        legend_colors = {tuple(c) for c in legend.reshape(-1, 3).tolist()}
        for class_id in range(4):
            assert (tuple(colors[class_id].tolist()) in legend_colors) == (class_id in expected)
    # a second run resumes: everything is done already
    assert demo.run(demo.parse_args(argv)) == []


def test_without_weights_refused_in_one_line(setup, tmp_path: Path) -> None:
    cfg_file, _ = setup
    write_png_atomic(_toy_image(0), tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "demo/demo.py"), "--config-file", str(cfg_file)]
    command += ["--input", str(tmp_path / "in"), "--output", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MODEL.WEIGHTS is not set" in lines[0], result.stderr
    assert "--random-weights" in lines[0]
    assert not out.exists()


def test_random_weights_on_request_predictions_differ(setup, tmp_path: Path) -> None:
    cfg_file, _ = setup
    image = _toy_image(0)
    write_png_atomic(image, tmp_path / "a.png")
    argv = ["--config-file", str(cfg_file), "--input", str(tmp_path / "a.png"), "--random-weights"]
    assert _demo().main([*argv, "--output", str(tmp_path / "out")]) == 0
    colors = class_colors(MetadataCatalog.get(DATASET))
    # random init: not the predictions of the loaded weights, so weights really were loaded above
    assert not np.array_equal(
        _read_png(tmp_path / "out/a_pred.png"), colorize(_expected_pred(image), colors)
    )


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    """A lossless (PNG codec) video, so the demo sees exactly ``frames``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("png", rate=5)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video(setup, tmp_path: Path) -> None:
    cfg_file, weights = setup
    video = tmp_path / "clip.mov"
    frames = [_toy_image(seed, 63, 95) for seed in range(3)]  # odd sizes: padded for H.264
    _write_video(video, frames)
    out = tmp_path / "out"
    argv = ["--config-file", str(cfg_file), "--video-input", str(video), "--output", str(out)]
    opts = [
        "--opts",
        "MODEL.WEIGHTS",
        str(weights),
        "INPUT.MIN_SIZE_TEST",
        "63",
        "INPUT.MAX_SIZE_TEST",
        "128",
    ]
    assert _demo().main([*argv, *opts]) == 0
    result = list(read_video_frames(out / "clip_overlay.mp4"))
    with av.open(str(out / "clip_overlay.mp4")) as container:
        assert container.streams.video[0].average_rate == 5
    assert len(result) == 3 and result[0].shape == (64, 96, 3)
    colors = class_colors(MetadataCatalog.get(DATASET))
    seen = set()
    for source, frame in zip(frames, result):
        pred = _expected_pred(source)
        seen.update(pred.ravel().tolist())
        expected = overlay(source, pred, colors, 0.5)
        # lossy H.264 output: compare on average
        # Lossy H.264 (4:2:0 chroma) blurs colour edges, so decode the class of each output
        # pixel as the class whose overlay colour is nearest, and compare with the prediction.
        candidates = np.stack(
            [overlay(source, np.full_like(pred, c), colors, 0.5) for c in range(4)]
        )
        dist = np.abs(candidates.astype(int) - frame[None, :63, :95].astype(int)).sum(-1)
        assert (dist.argmin(0) == pred).mean() > 0.9
        assert np.median(np.abs(frame[:63, :95].astype(int) - expected.astype(int))) <= 4
    legend = _read_png(out / "clip_legend.png")
    legend_colors = {tuple(c) for c in legend.reshape(-1, 3).tolist()}
    assert all(tuple(colors[i].tolist()) in legend_colors for i in seen)


def test_toy_clouds_model_open_vocabulary(tmp_path: Path, caplog) -> None:
    image = _toy_image(5, 32, 64)
    write_png_atomic(image, tmp_path / "in" / "street.png")
    argv = [
        "--config-file", str(ROOT / "configs/toy/open_vocabulary.yaml"),
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--classes", "road", "giraffe", "sky", "--random-weights",
        "MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TEST", "32",
    ]  # fmt: skip
    root_level = logging.getLogger().level
    try:
        assert _demo().main(argv) == 0
    finally:
        logging.getLogger().setLevel(root_level)
    # open_clip's INFO lines (root logger) are off without --verbose; its untrue "initialized
    # randomly" warning is replaced by ours, which names the key
    assert not [r for r in caplog.records if r.name == "root" and r.levelno < logging.WARNING]
    messages = [r.getMessage() for r in caplog.records]
    assert not any("No pretrained weights loaded" in m for m in messages)
    assert any(m.startswith("MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS is empty") for m in messages)
    meta = MetadataCatalog.get("demo_custom_classes")
    assert meta.stuff_classes == ["road", "giraffe", "sky"]
    colors = class_colors(meta)
    assert colors[0].tolist() == [128, 64, 128] and colors[2].tolist() == [70, 130, 180]
    pred_rgb = _read_png(tmp_path / "out/street_pred.png")
    assert pred_rgb.shape == (32, 64, 3)
    assert {tuple(c) for c in pred_rgb.reshape(-1, 3).tolist()} <= {
        tuple(c) for c in colors.tolist()
    }
    assert _read_png(tmp_path / "out/street_overlay.png").shape == (32, 64, 3)
    assert (tmp_path / "out/street_legend.png").is_file()


def test_errors(setup, tmp_path: Path) -> None:
    cfg_file, _ = setup
    demo = _demo()
    assert demo.split_overrides(["--input", "a.png", "MODEL.DEVICE", "cpu"]) == (
        ["--input", "a.png"],
        ["MODEL.DEVICE", "cpu"],
    )
    missing = ["--config-file", str(cfg_file), "--input", str(tmp_path / "none*.png")]
    missing.append("--random-weights")
    assert demo.main([*missing, "--output", str(tmp_path)]) == 1
    with pytest.raises(FileNotFoundError, match="none\\*.png"):
        demo.run(demo.parse_args([*missing, "--output", str(tmp_path)]))
    with pytest.raises(SystemExit):
        demo.parse_args(["--config-file", str(cfg_file), "--output", str(tmp_path)])
    write_png_atomic(_toy_image(0), tmp_path / "x" / "a.png")
    write_png_atomic(_toy_image(1), tmp_path / "y" / "a.png")
    args = ["--config-file", str(cfg_file), "--random-weights", "--input"]
    args += [str(tmp_path / "x"), str(tmp_path / "y")]
    with pytest.raises(ValueError, match="share the output name 'a'"):
        demo.run(demo.parse_args([*args, "--output", str(tmp_path)]))


def test_predictor_resizes_and_returns_original_size(setup) -> None:
    from clouds.config import load_config
    from clouds.predictor import Predictor

    cfg_file, weights = setup
    cfg = load_config(str(cfg_file), ["MODEL.WEIGHTS", str(weights), "INPUT.MIN_SIZE_TEST", "12"])
    predictor = Predictor(cfg)
    assert predictor.class_names == CLASSES and predictor.dataset_name == DATASET
    seen_sizes = []
    predictor.model.register_forward_pre_hook(
        lambda _m, args: seen_sizes.append(tuple(args[0][0]["image"].shape))
    )
    image = _toy_image(1)
    scores = predictor(image)
    assert seen_sizes == [(3, 12, 20)]  # short side 24 -> 12, as in evaluation
    assert scores.shape == (4, 24, 40) and scores.dtype == torch.float32
    agreement = (scores.argmax(dim=0).numpy() == _expected_pred(image)).mean()
    assert agreement > 0.8  # only pixels near block borders may change after resizing
    with pytest.raises(ValueError, match="uint8 RGB image"):
        predictor(image.astype(np.float32))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("configs/toy/Base-Toy-CLOUDS.yaml", "TRANSFORMER_DECODER_NAME=OriginalMultiScale"),
        (None, "MODEL.META_ARCHITECTURE=DemoTestColorArch"),
    ],
)
def test_classes_with_a_linear_head_name_the_decoder_to_use(
    setup, tmp_path: Path, monkeypatch, caplog, config: str | None, expected: str
) -> None:
    import clouds.predictor

    def never(*args: object) -> None:
        raise AssertionError("the model must not be built")

    monkeypatch.setattr(clouds.predictor, "build_model", never)
    write_png_atomic(_toy_image(0), tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    argv = [
        "--config-file", str(ROOT / config) if config else str(setup[0]),
        "--input", str(tmp_path / "in"), "--output", str(out),
        "--classes", "road", "giraffe", "--random-weights",
    ]  # fmt: skip
    assert _demo().main(argv) == 2
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert expected in error and "configs/variants/train_gta_text_classifier.yaml" in error
    assert "\n" not in error and not out.exists()


def test_text_classifier_config_selects_the_text_decoder() -> None:
    from clouds.config import load_config
    from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY

    demo = _demo()
    for path in (demo.TEXT_CLASSIFIER_CONFIG, "configs/toy/open_vocabulary.yaml"):
        cfg = load_config(str(ROOT / path))
        decoder = TRANSFORMER_DECODER_REGISTRY.get(cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME)
        assert decoder.uses_text_classifier and demo.classes_problem(cfg) is None
