"""Config defaults, _BASE_ inheritance, KEY VALUE overrides and their errors."""

from pathlib import Path

import pytest

from clouds.config import ConfigError, get_cfg, load_config

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_hold_the_recipe_numbers() -> None:
    cfg = get_cfg()
    assert cfg.MODEL.CLOUDS.CLIP_MODEL_NAME == "convnext_large_d_320"
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 100
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS - 1 == 9
    assert cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS == 12544
    assert (
        cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_ALPHA,
        cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_BETA,
    ) == (
        0.4,
        0.8,
    )
    assert cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE == 0.01
    assert cfg.MODEL.LORA.RANK == 32


def test_base_inheritance_child_wins_and_nested_keys_merge(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", "SOLVER:\n  BASE_LR: 0.5\n  MAX_ITER: 7\nOUTPUT_DIR: base_out\n")
    _write(tmp_path / "mid.yaml", "_BASE_: base.yaml\nSOLVER:\n  MAX_ITER: 9\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: mid.yaml\nOUTPUT_DIR: child_out\n")
    cfg = load_config(str(child))
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.SOLVER.MAX_ITER == 9
    assert cfg.OUTPUT_DIR == "child_out"


def test_overrides_are_typed() -> None:
    cfg = load_config(None, ["SOLVER.MAX_ITER", "12", "DATASETS.TEST", "('bdd_val',)"])
    assert cfg.SOLVER.MAX_ITER == 12
    assert tuple(cfg.DATASETS.TEST) == ("bdd_val",)


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*SOLVER\.BASE_LRR"):
        load_config(str(bad))


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(ConfigError, match="MODEL.NOT_A_KEY"):
        load_config(None, ["MODEL.NOT_A_KEY", "1"])


def test_wrong_type_is_an_error_naming_the_key(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", "SOLVER:\n  MAX_ITER: many\n")
    with pytest.raises(ConfigError, match="MAX_ITER"):
        load_config(str(bad))


def test_missing_base_file_is_named(tmp_path: Path) -> None:
    child = _write(tmp_path / "child.yaml", "_BASE_: nowhere/base.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere/base\.yaml"):
        load_config(str(child))


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.yaml"):
        load_config(str(tmp_path / "absent.yaml"))


def test_odd_override_list_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["SOLVER.MAX_ITER"])


def test_every_shipped_config_loads() -> None:
    configs = sorted((REPO / "configs").rglob("*.yaml"))
    assert configs, "no configs shipped"
    for path in configs:
        load_config(str(path))
