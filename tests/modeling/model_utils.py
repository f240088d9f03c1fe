"""Tiny CLOUDS configs and class lists shared by the model-level tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clouds.config import CfgNode, load_config
from clouds.data.catalog import MetadataCatalog

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIG = REPO / "configs" / "toy" / "Base-Toy-CLOUDS.yaml"

TRAIN_DATASET = "clouds_test_train"
TEST_DATASET = "clouds_test_target"
TRAIN_CLASSES = ("road", "car", "sky")
TEST_CLASSES = ("road", "car", "sky", "bicycle")


def register_test_metadata() -> None:
    """Class lists of the fake training and test datasets (idempotent)."""
    MetadataCatalog.get(TRAIN_DATASET).set(stuff_classes=list(TRAIN_CLASSES), ignore_label=255)
    MetadataCatalog.get(TEST_DATASET).set(stuff_classes=list(TEST_CLASSES), ignore_label=255)


def toy_config(overrides: Sequence[str] = ()) -> CfgNode:
    """configs/toy/Base-Toy-CLOUDS.yaml on the fake datasets with the text decoder (their class
    lists differ from the 19 training classes the toy's linear head predicts), plus
    ``overrides``."""
    register_test_metadata()
    datasets = ["DATASETS.TRAIN", f"('{TRAIN_DATASET}',)", "DATASETS.TEST", f"('{TEST_DATASET}',)"]
    decoder = ["MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder"]
    return load_config(str(TOY_CONFIG), [*datasets, *decoder, *overrides])
