"""Each system adds its own keys (clouds.config.*_keys), every key carries a comment, and keys
kept only for the original configs accept nothing but the value we implement."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

from clouds.config import (
    CfgNode,
    ConfigError,
    add_base_config,
    add_clouds_config,
    add_dgvfm_config,
    add_mask_former_config,
    get_cfg,
    load_config,
)
from clouds.config.node import flat_keys

KEY_MODULES = sorted((Path(__file__).resolve().parents[2] / "clouds/config").glob("*_keys.py"))


def _keys(*adders) -> set[str]:
    cfg = CfgNode()
    for add in adders:
        add(cfg)
    return set(flat_keys(cfg))


def test_systems_add_disjoint_keys_that_make_the_whole_config() -> None:
    base = _keys(add_base_config)
    mask_former = _keys(add_base_config, add_mask_former_config) - base
    clouds = _keys(add_base_config, add_clouds_config) - base
    dgvfm = _keys(add_base_config, add_dgvfm_config) - base
    assert all(k.startswith("MODEL.CLOUDS.") for k in clouds) and clouds
    assert "MODEL.VFM.MODEL_ID" in dgvfm and not any(k.startswith("MODEL.CLOUDS") for k in dgvfm)
    assert not mask_former & clouds and not mask_former & dgvfm and not clouds & dgvfm
    assert base | mask_former | clouds | dgvfm == set(flat_keys(get_cfg()))


@pytest.mark.parametrize("path", KEY_MODULES, ids=lambda p: p.name)
def test_every_key_has_a_comment(path: Path) -> None:
    source = path.read_text()
    comments = [
        tok
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    trailing = {tok.start[0] for tok in comments if not tok.line.strip().startswith("#")}
    above = {tok.start[0] + 1 for tok in comments if tok.line.strip().startswith("#")}
    uncommented = [
        ast.unparse(node.targets[0])
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign)
        and ast.unparse(node.targets[0]).startswith("_C.")
        and ast.unparse(node.value) != "CfgNode()"  # a section, not a key
        and node.lineno not in above
        and not trailing & set(range(node.lineno, node.end_lineno + 1))
    ]
    assert uncommented == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("VERSION", "1"),
        ("INPUT.SIZE_DIVISIBILITY", "32"),
        ("MODEL.MASK_FORMER.TEST.SEMANTIC_ON", "False"),
    ],
)
def test_unread_key_refuses_another_value(key: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [key, value])
    leaf = key.split(".")[-1]
    nested = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(key.split(".")[:-1]))
    depth = "  " * (key.count("."))
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(f"{nested}{depth}{leaf}: {value}\n")
    with pytest.raises(ConfigError, match="not supported"):
        load_config(str(cfg_file))


def test_unread_key_accepts_the_value_we_implement() -> None:
    cfg = load_config(
        None,
        [
            "VERSION",
            "2",
            "INPUT.SIZE_DIVISIBILITY",
            "-1",
            "MODEL.MASK_FORMER.TEST.SEMANTIC_ON",
            "True",
        ],
    )
    assert cfg.VERSION == 2
