"""``--help`` of the generation commands shows a default only where an option has one: none for
flags (store_true / store_false), required options or options without a default."""

from __future__ import annotations

import re

import pytest

from clouds.generation import cli, make_prompts, original_prompts

MISLEADING = re.compile(r"\(default: (None|True|False)\)")


def _option_help(text: str, option: str) -> str:
    """The help block of ``option``: from its line to the next option's."""
    block = text[text.index(f"  {option}") :]
    following = re.search(r"\n  -", block[2:])
    return " ".join(block[: following.start() + 2 if following else None].split())


def test_generate_help_as_a_user_types_it(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert not MISLEADING.findall(text)
    assert "default" not in _option_help(text, "--folder FOLDER")
    assert "(default: channels-last)" in _option_help(text, "--no-channels-last")
    assert "(default: 50)" in _option_help(text, "--steps STEPS")
    assert "(default: euler)" in _option_help(text, "--scheduler")


@pytest.mark.parametrize("module", [make_prompts, original_prompts])
def test_other_generation_commands(module) -> None:
    text = module.build_parser().format_help()
    assert not MISLEADING.findall(text)
