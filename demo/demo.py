#!/usr/bin/env python
"""Run a trained model on your own images or a video and look at the result.

Usage (Mask2Former's convention, config overrides last)::

    python demo/demo.py --config-file CFG --input IMG [IMG|FOLDER|GLOB ...] --output DIR \\
        [KEY VALUE ...]
    python demo/demo.py --config-file CFG --video-input VIDEO --output DIR [KEY VALUE ...]

For each image ``<stem>``: ``DIR/<stem>_pred.png`` (colour prediction), ``DIR/<stem>_overlay.png``
(colours over the image) and ``DIR/<stem>_legend.png`` (the classes present); images in
subfolders of an input folder keep them (``DIR/<city>/<stem>_pred.png``). A video gives
``DIR/<stem>_overlay.mp4`` and ``DIR/<stem>_legend.png``. Images whose three outputs exist are
skipped (re-runs resume) unless ``--overwrite``. Weights come from ``MODEL.WEIGHTS`` (without
it the demo stops, unless ``--random-weights`` asks for an untrained model); classes, names and
colours from the metadata of ``--dataset`` (default ``DATASETS.TEST[0]``). A model with the
text-classifier decoder (e.g. ``configs/variants/train_gta_text_classifier.yaml``) predicts the
class list of any registered dataset, or any list given with ``--classes road sky giraffe``.
Overrides may also be given Mask2Former-style after ``--opts``. ``--backend onnxruntime
--onnx-model model.onnx`` runs a model exported with ``tools/export_onnx.py`` instead (its class
list is fixed at export).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from clouds.cli_errors import add_debug_argument, user_error_code
from clouds.config import CfgNode, ConfigError, load_config
from clouds.engine.preflight import check_weights
from clouds.utils.weights_source import (
    WeightsUnavailableError,
    is_hub_unavailable_error,
    weights_unavailable_message,
)

logger = logging.getLogger("demo")

# Metadata name under which ``--classes`` registers its class list.
CUSTOM_CLASSES_DATASET = "demo_custom_classes"
# A shipped config whose decoder scores classes against CLIP text embeddings (``--classes``).
TEXT_CLASSIFIER_CONFIG = "configs/variants/train_gta_text_classifier.yaml"
_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` at the first config key (``UPPER.CASE.KEY``): (options, KEY VALUE list)."""
    for index, token in enumerate(argv):
        if _CONFIG_KEY.match(token):
            return list(argv[:index]), list(argv[index:])
    return list(argv), []


def classes_problem(cfg: CfgNode) -> str | None:
    """Why ``--classes`` cannot work with the model of ``cfg`` (its class list is fixed by a
    linear class head), or None when it scores classes against CLIP text embeddings."""
    from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY

    arch = cfg.MODEL.META_ARCHITECTURE
    if arch != "CLOUDS":
        return (
            f"--classes needs the CLOUDS model with the text-classifier decoder; "
            f"MODEL.META_ARCHITECTURE={arch} predicts the fixed classes of the dataset it was "
            f"trained on: pick them with --dataset, or use {TEXT_CLASSIFIER_CONFIG}"
        )
    decoder = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    if decoder in TRANSFORMER_DECODER_REGISTRY and getattr(
        TRANSFORMER_DECODER_REGISTRY.get(decoder), "uses_text_classifier", False
    ):
        return None
    return (
        f"--classes needs the text-classifier decoder, but MODEL.MASK_FORMER."
        f"TRANSFORMER_DECODER_NAME={decoder} is a linear class head over the "
        f"{cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES} training classes: use a config with "
        f"MultiScaleMaskedTransformerDecoder (e.g. {TEXT_CLASSIFIER_CONFIG}) and weights trained "
        f"with it, or leave out --classes"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    options, overrides = split_overrides(argv)
    parser = argparse.ArgumentParser(
        description="Predictions, overlays and legends for images or a video.",
        epilog="Config overrides (KEY VALUE ...) go last, e.g. MODEL.WEIGHTS out/model_final.ckpt",
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="config YAML")
    parser.add_argument(
        "--input", nargs="+", default=[], help="images, folders of images or glob patterns"
    )
    parser.add_argument("--video-input", type=Path, help="a video file, predicted frame by frame")
    parser.add_argument("--output", required=True, type=Path, help="folder for the outputs")
    parser.add_argument("--dataset", help="dataset whose classes/colours to use")
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="NAME",
        help="open-vocabulary class list to predict instead (colours of known names are kept)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1]")
    parser.add_argument(
        "--backend",
        choices=("pytorch", "onnxruntime"),
        default="pytorch",
        help="run the PyTorch model (MODEL.WEIGHTS) or an exported one (--onnx-model)",
    )
    parser.add_argument("--onnx-model", type=Path, help="tools/export_onnx.py's file")
    parser.add_argument("--overwrite", action="store_true", help="redo images already done")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="run without MODEL.WEIGHTS: predictions of an untrained model (to try the pipeline)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the libraries' INFO lines (open_clip, timm)"
    )
    add_debug_argument(parser)
    parser.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides (Mask2Former)"
    )
    args = parser.parse_args(options)
    args.opts = list(args.opts) + overrides
    if not args.input and args.video_input is None:
        parser.error("give --input and/or --video-input")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must lie in [0, 1], got {args.alpha}")
    if (args.backend == "onnxruntime") != (args.onnx_model is not None):
        parser.error("--onnx-model goes with --backend onnxruntime (and it needs one)")
    return args


def run(args: argparse.Namespace) -> list[Path]:
    """Predict every input; returns the files written."""
    cfg = load_config(args.config_file, args.opts)
    onnx = args.backend == "onnxruntime"
    if not cfg.MODEL.WEIGHTS and not args.random_weights and not onnx:
        raise ConfigError(
            "MODEL.WEIGHTS is not set, so the predictions would be those of an untrained model: "
            "add MODEL.WEIGHTS <checkpoint>, or --random-weights to run it anyway"
        )
    needs, hub_problem = ([], None) if onnx else check_weights(cfg, eval_only=True)
    # heavy imports (torch, the model libraries) once the config and files are known good
    from tqdm import tqdm

    from clouds.data.catalog import MetadataCatalog
    from clouds.data.datasets import register_all_datasets
    from clouds.predictor import Predictor, default_dataset
    from clouds.utils.io import read_image
    from clouds.visualization.demo_outputs import (
        ClassStyle,
        collect_inputs,
        image_output_paths,
        save_image_outputs,
        write_video_overlay,
    )
    from clouds.visualization.visualizer import class_colors, colors_for_names

    register_all_datasets()
    images = collect_inputs(args.input, exclude=args.output) if args.input else []
    if args.video_input is not None and not args.video_input.is_file():
        raise FileNotFoundError(f"--video-input not found: {args.video_input}")
    dataset = args.dataset
    if args.classes:
        problem = classes_problem(cfg)
        if problem is not None:
            raise ConfigError(problem)
        reference = MetadataCatalog.get(dataset or default_dataset(cfg))
        dataset = CUSTOM_CLASSES_DATASET
        MetadataCatalog.get(dataset).set(
            stuff_classes=list(args.classes),
            stuff_colors=colors_for_names(args.classes, reference).tolist(),
            ignore_label=reference.get("ignore_label", 255),
        )
    try:
        if onnx:
            from clouds.export.runtime import OnnxPredictor

            predictor = OnnxPredictor(cfg, args.onnx_model, dataset_name=dataset)
        else:
            predictor = Predictor(cfg, dataset_name=dataset)
    except Exception as e:
        if needs and is_hub_unavailable_error(e):
            reason = hub_problem or "the download failed"
            raise WeightsUnavailableError(weights_unavailable_message(needs[0], reason)) from e
        raise
    style = ClassStyle(
        predictor.class_names,
        class_colors(predictor.metadata, len(predictor.class_names)),
        args.alpha,
    )
    written: list[Path] = []
    todo = [
        item
        for item in images
        if args.overwrite
        or not all(p.is_file() for p in image_output_paths(args.output, item.name).values())
    ]
    if len(todo) < len(images):
        logger.info("%d of %d images already done; skipped", len(images) - len(todo), len(images))
    for item in tqdm(todo, desc="images", disable=not todo):
        image = read_image(item.path)
        pred = predictor(image, file_name=str(item.path)).argmax(dim=0).numpy()
        written.extend(save_image_outputs(image, pred, args.output, item.name, style).values())
    if args.video_input is not None:
        written.extend(
            write_video_overlay(predictor, args.video_input, args.output, style).values()
        )
    logger.info("Wrote %d files to %s", len(written), args.output)
    return written


def configure_logging(*, verbose: bool) -> None:
    """Our INFO lines always; the libraries' INFO lines (open_clip logs on the root logger,
    timm, ...) only when ``verbose``; their warnings always."""
    logging.basicConfig(format="[%(asctime)s %(name)s] %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("demo", "clouds"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(verbose=args.verbose)
    try:
        run(args)
    except Exception as e:  # known mistakes, and bad inputs (missing, unreadable, clashing)
        if user_error_code(e) is None and not isinstance(e, FileNotFoundError | ValueError):
            raise
        logger.error("%s", e, exc_info=args.debug)
        return user_error_code(e) or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
