"""LLM prompt writer: a local causal language model writes the prompts (transformers).

The model (any ``AutoModelForCausalLM`` id or folder, e.g. a Llama-70B-Instruct as in the
original CLOUDS) is asked with the instruction kept in ``prompt_instruction.txt``, through
its chat template when the tokenizer has one. The answer is parsed one prompt per line
(numbering, bullets and quotes removed; short lines and headers such as "Here are ...:"
dropped) and deduplicated; the model is asked again until enough distinct prompts exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import transformers
from packaging.version import Version
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from clouds.generation.prompts import dedup_key

__all__ = ["INSTRUCTION_FILE", "LLMPromptWriter", "parse_prompt_lines"]

INSTRUCTION_FILE = Path(__file__).with_name("prompt_instruction.txt")

_LIST_MARKER = re.compile(r"^\s*(?:\(?\d+[.):]|[-*\u2022])\s*")
_DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def parse_prompt_lines(text: str, *, min_words: int = 5) -> list[str]:
    """Prompts in ``text``, one per line, cleaned of list markers and quotes."""
    prompts = []
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line).strip().strip("\"'\u201c\u201d").strip()
        line = " ".join(line.split())
        if len(line.split()) >= min_words and not line.endswith(":"):
            prompts.append(line)
    return prompts


class LLMPromptWriter:
    """Asks a causal LM for prompts until it has enough distinct ones."""

    def __init__(
        self,
        *,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        instruction: str,
        max_new_tokens: int = 1024,
        temperature: float = 0.9,
        top_p: float = 0.95,
        prompts_per_round: int = 25,
    ) -> None:
        if "{num_prompts}" not in instruction:
            raise ValueError("The instruction text must contain the placeholder {num_prompts}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.instruction = instruction
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.prompts_per_round = prompts_per_round

    @classmethod
    def from_pretrained(
        cls,
        model_id: str,
        *,
        instruction_file: str | Path = INSTRUCTION_FILE,
        local_files_only: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs: float | int,
    ) -> LLMPromptWriter:
        """Load ``model_id`` (hub id or folder) and the instruction text.

        Raises:
            FileNotFoundError: naming a missing instruction file or model.
        """
        instruction_file = Path(instruction_file)
        if not instruction_file.is_file():
            raise FileNotFoundError(f"Instruction file {instruction_file} not found")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local_files_only)
            model = AutoModelForCausalLM.from_pretrained(
                model_id, local_files_only=local_files_only, **{_DTYPE_KWARG: dtype}
            )
        except OSError as e:
            raise FileNotFoundError(f"Cannot load language model {model_id!r}: {e}") from e
        return cls(
            model=model.to(device),
            tokenizer=tokenizer,
            instruction=instruction_file.read_text(encoding="utf-8"),
            **kwargs,
        )

    def _model_input(self, num_prompts: int) -> str:
        text = self.instruction.replace("{num_prompts}", str(num_prompts))
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return text + "\n\n"

    @torch.inference_mode()
    def ask(self, num_prompts: int, seed: int) -> str:
        """One answer of the model to the instruction asking for ``num_prompts`` prompts."""
        inputs = self.tokenizer(
            self._model_input(num_prompts), return_tensors="pt", add_special_tokens=False
        ).to(self.model.device)
        torch.manual_seed(seed)
        pad_id = self.tokenizer.pad_token_id
        output = self.model.generate(
            **inputs,
            do_sample=True,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=pad_id if pad_id is not None else self.tokenizer.eos_token_id,
        )
        return self.tokenizer.decode(
            output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )

    def write(
        self,
        num_prompts: int,
        *,
        seed: int = 0,
        existing: Iterable[str] = (),
        max_rounds: int = 20,
        on_round: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """``existing`` followed by new distinct prompts, ``num_prompts`` in all.

        ``on_round`` receives the list after every round (to save progress).

        Raises:
            RuntimeError: if ``max_rounds`` answers gave too few distinct prompts.
        """
        prompts = list(existing)
        seen = {dedup_key(p) for p in prompts}
        for round_index in range(max_rounds):
            if len(prompts) >= num_prompts:
                break
            asked = min(self.prompts_per_round, num_prompts - len(prompts))
            for prompt in parse_prompt_lines(self.ask(asked, seed + round_index)):
                if dedup_key(prompt) not in seen and len(prompts) < num_prompts:
                    seen.add(dedup_key(prompt))
                    prompts.append(prompt)
            if on_round is not None:
                on_round(prompts)
        if len(prompts) < num_prompts:
            raise RuntimeError(
                f"The language model gave only {len(prompts)} distinct prompts of the "
                f"{num_prompts} asked after {max_rounds} rounds; rerun to continue (the prompts "
                f"so far are kept) or raise --max-rounds"
            )
        return prompts
