"""Command line of ``tools/make_prompts.py``: write a prompt file for ``generate_txt_im.py``.

Backends:

- ``llm``: a local causal LM through transformers writes the prompts from the instruction in
  ``clouds/generation/prompt_instruction.txt`` (``--model`` hub id or folder);
- ``templates``: offline, seeded combinations of scene, place, time, weather and objects.

An existing ``--output`` file is resumed: its prompts are kept and only the missing ones are
written (``--overwrite`` starts afresh). The file is rewritten atomically after every round.

    python tools/make_prompts.py --backend llm --model meta-llama/Llama-3.1-70B-Instruct \\
        --num-prompts 100 --output my_prompts.txt --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from clouds.generation.options import ValueDefaultsHelpFormatter
from clouds.generation.prompt_templates import template_prompts
from clouds.generation.prompts import PromptFileError, dedup_key, load_prompts
from clouds.utils.io import atomic_path

__all__ = ["build_parser", "main", "save_prompts"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_prompts.py",
        description="Write urban driving scene prompts, one per line, with a local LLM or templates.",
        formatter_class=ValueDefaultsHelpFormatter,
    )
    p.add_argument(
        "--backend",
        choices=["llm", "templates"],
        default="templates",
        help="a local causal LM, or rule-based combinations of scene parts (no model)",
    )
    p.add_argument("--model", help="llm: causal LM hub id or local folder")
    p.add_argument("--local-files-only", action="store_true", help="llm: never download")
    p.add_argument(
        "--instruction",
        type=Path,
        default=None,
        help="llm: instruction file with a {num_prompts} placeholder "
        "(default: clouds/generation/prompt_instruction.txt)",
    )
    p.add_argument("--device", default="cpu", help="llm: torch device")
    p.add_argument(
        "--dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="llm: weights dtype"
    )
    p.add_argument("--max-new-tokens", type=int, default=1024, help="llm: tokens per answer")
    p.add_argument("--max-rounds", type=int, default=20, help="llm: answers to ask for at most")
    p.add_argument("--num-prompts", type=int, default=100, help="prompts to write")
    p.add_argument("--output", type=Path, required=True, help="prompt file to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (both backends)")
    p.add_argument("--overwrite", action="store_true", help="ignore prompts already in --output")
    return p


def save_prompts(prompts: Sequence[str], path: Path) -> None:
    """Write ``prompts`` one per line, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(p + "\n" for p in prompts), encoding="utf-8")


def _existing(path: Path, overwrite: bool) -> list[str]:
    if overwrite or not path.is_file():
        return []
    try:
        return load_prompts(path)
    except PromptFileError:
        return []


def _llm_prompts(args: argparse.Namespace, existing: list[str]) -> list[str]:
    import torch

    from clouds.generation.prompt_llm import INSTRUCTION_FILE, LLMPromptWriter

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    writer = LLMPromptWriter.from_pretrained(
        args.model,
        instruction_file=args.instruction or INSTRUCTION_FILE,
        local_files_only=args.local_files_only,
        device=args.device,
        dtype=dtype,
        max_new_tokens=args.max_new_tokens,
    )
    return writer.write(
        args.num_prompts,
        seed=args.seed,
        existing=existing,
        max_rounds=args.max_rounds,
        on_round=lambda prompts: save_prompts(prompts, args.output),
    )


def _templated_prompts(args: argparse.Namespace, existing: list[str]) -> list[str]:
    prompts = list(existing)
    seen = {dedup_key(p) for p in prompts}
    for prompt in template_prompts(args.num_prompts, seed=args.seed):
        if len(prompts) >= args.num_prompts:
            break
        if dedup_key(prompt) not in seen:
            seen.add(dedup_key(prompt))
            prompts.append(prompt)
    return prompts


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend == "llm" and not args.model:
        parser.error("--backend llm needs --model (a causal LM hub id or local folder)")
    if args.num_prompts < 1:
        parser.error(f"--num-prompts must be >= 1, got {args.num_prompts}")
    existing = _existing(args.output, args.overwrite)
    try:
        if args.backend == "llm":
            prompts = _llm_prompts(args, existing)
        else:
            prompts = _templated_prompts(args, existing)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    save_prompts(prompts, args.output)
    print(f"{len(prompts)} prompts ({len(existing)} kept from before) written to {args.output}")
    return 0
