"""Prompt writers: templates offline, and the LLM path with a tiny random Llama saved to disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clouds.generation.make_prompts import main
from clouds.generation.prompt_llm import INSTRUCTION_FILE, parse_prompt_lines
from clouds.generation.prompt_templates import (
    BIG_CITY_OBJECTS,
    BIG_CITY_SCENES,
    CLASS_PHRASES,
    SMALL_PLACES,
    SNOW_WEATHERS,
    SNOWLESS_PLACES,
    SUN_HIDING_WEATHERS,
    TIMES,
    WEATHERS,
    template_prompts,
)
from clouds.generation.prompts import load_prompts

REPO = Path(__file__).resolve().parents[2]
WORDS = [
    "a",
    "the",
    "street",
    "road",
    "car",
    "bus",
    "tram",
    "truck",
    "rider",
    "cyclist",
    "person",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "sign",
    "light",
    "tree",
    "grass",
    "sky",
    "rain",
    "fog",
    "snow",
    "night",
    "dawn",
    "noon",
    "in",
    "with",
    "and",
    "of",
    "at",
]


def save_tiny_llm(folder: Path, *, chat_template: bool) -> Path:
    """A 1-layer random Llama with a word-level tokenizer whose vocabulary has a newline token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<pad>", "<s>", "</s>", "\n", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(
        Regex(r"\n|[^\s]+"), behavior="removed", invert=True
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    if chat_template:
        tokenizer.chat_template = (
            "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}"
            "{% if add_generation_prompt %} <s> {% endif %}"
        )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_parse_strips_numbering_quotes_and_headers() -> None:
    text = 'Here are 3 prompts:\n1. "A rainy street with a bus and cars"\n- A foggy road at dawn with trucks\n\n2) too short\n* A tram in the snow at night, people waiting'
    assert parse_prompt_lines(text) == [
        "A rainy street with a bus and cars",
        "A foggy road at dawn with trucks",
        "A tram in the snow at night, people waiting",
    ]


def test_instruction_file_ships_with_its_placeholder() -> None:
    assert "{num_prompts}" in INSTRUCTION_FILE.read_text(encoding="utf-8")


def test_templates_are_seeded_distinct_and_cover_every_class_weather_and_time() -> None:
    prompts = template_prompts(100, seed=3)
    assert prompts == template_prompts(100, seed=3)
    assert prompts != template_prompts(100, seed=4)
    assert len(set(prompts)) == 100
    text = "\n".join(prompts)
    for cls, phrases in CLASS_PHRASES.items():
        assert any(p in text for p in phrases), cls
    for option in (*WEATHERS, *TIMES):
        assert option in text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_templates_make_plausible_combinations(seed: int) -> None:
    prompts = template_prompts(300, seed=seed)
    assert len(prompts) == 300

    def pairs(first: frozenset[str], second: frozenset[str]) -> list[str]:
        return [p for p in prompts if any(a in p for a in first) and any(b in p for b in second)]

    assert not pairs(SNOWLESS_PLACES, SNOW_WEATHERS)  # e.g. "Mumbai ... with fresh snow"
    assert not pairs(frozenset({"at golden hour"}), SUN_HIDING_WEATHERS)
    assert not pairs(SMALL_PLACES, BIG_CITY_SCENES | BIG_CITY_OBJECTS)
    # the rules exclude pairs, not whole axes: snow and golden hour still appear elsewhere
    assert pairs(frozenset(PLACES_WITH_SNOW), SNOW_WEATHERS)
    assert any("at golden hour" in p for p in prompts)


PLACES_WITH_SNOW = ("Oslo", "Moscow", "Toronto", "Berlin", "Seoul", "Chicago")


def _llm_argv(model: Path, out: Path, num_prompts: int, seed: int) -> list[str]:
    return [
        "--backend", "llm", "--model", str(model), "--local-files-only",
        "--num-prompts", str(num_prompts), "--output", str(out), "--seed", str(seed),
        "--max-new-tokens", "60", "--max-rounds", "30",
    ]  # fmt: skip


@pytest.mark.parametrize("chat_template", [True, False])
def test_llm_backend_writes_distinct_prompts(tmp_path: Path, chat_template: bool) -> None:
    model = save_tiny_llm(tmp_path / "llm", chat_template=chat_template)
    out = tmp_path / "prompts.txt"
    assert main(_llm_argv(model, out, num_prompts=3, seed=1)) == 0
    prompts = load_prompts(out)
    assert len(prompts) == 3 and len(set(prompts)) == 3
    assert all(len(p.split()) >= 5 and set(p.split()) <= set(WORDS) for p in prompts)

    # an existing file is resumed: its prompts stay first, only missing ones are added
    out.write_text(prompts[0] + "\n", encoding="utf-8")
    assert main(_llm_argv(model, out, num_prompts=2, seed=5)) == 0
    resumed = load_prompts(out)
    assert len(resumed) == 2 and resumed[0] == prompts[0]


def test_llm_backend_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--backend", "llm", "--output", str(tmp_path / "p.txt")])
    assert "needs --model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(
            [
                "--backend",
                "llm",
                "--model",
                str(tmp_path / "absent"),
                "--local-files-only",
                "--output",
                str(tmp_path / "p.txt"),
            ]
        )
    assert info.value.code == 2
    assert "absent" in capsys.readouterr().err


def test_templates_cli_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "prompts.txt"
    cmd = [
        sys.executable,
        str(REPO / "tools" / "make_prompts.py"),
        "--backend",
        "templates",
        "--num-prompts",
        "20",
        "--output",
        str(out),
        "--seed",
        "2",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert load_prompts(out) == template_prompts(20, seed=2)
