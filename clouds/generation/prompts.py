"""Prompt files for image generation: one prompt per line.

Blank lines and lines starting with ``#`` are skipped; surrounding whitespace is stripped.
A prompt file is named either by a path or by the stem of a ``.txt`` file in the current
folder or the project root (``--input prompt_llama70b`` finds ``./prompt_llama70b.txt``, as the
original ``generate_txt_im.py`` does, else ``<project root>/prompt_llama70b.txt``). Line ``k``
of a file without blank or comment lines is prompt ``k``, as in the original (the original's
file has neither).

``prompt_llama70b.txt``, the original's prompts, is not shipped (tools/fetch_original_prompts.py
downloads it); ``prompts_clouds_project_written.txt`` holds this project's own prompts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from clouds.generation.options import ORIGINAL_PROMPTS_STEM, PROJECT_PROMPTS_STEM
from clouds.utils.io import PROJECT_ROOT

__all__ = ["PROJECT_ROOT", "PromptFileError", "dedup_key", "load_prompts", "resolve_prompt_file"]


class PromptFileError(ValueError):
    """A prompt file that is missing or holds no prompt."""


def resolve_prompt_file(spec: str | os.PathLike, root: str | os.PathLike = PROJECT_ROOT) -> Path:
    """Find the prompt file named by ``spec``: a path, else ``<spec>.txt`` here or in ``root``.

    Raises:
        PromptFileError: naming every place that was looked at.
    """
    spec_path = Path(spec).expanduser()
    candidates = [spec_path]
    if spec_path.suffix != ".txt":
        candidates.append(spec_path.with_name(spec_path.name + ".txt"))
    if not spec_path.is_absolute():
        candidates += [Path(root) / c for c in list(candidates)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    hint = ""
    if spec_path.name.removesuffix(".txt") == ORIGINAL_PROMPTS_STEM:
        hint = (
            f". {ORIGINAL_PROMPTS_STEM}.txt holds the original CLOUDS prompts (used in the paper), "
            f"which this project does not ship: download them with "
            f"`python tools/fetch_original_prompts.py`, or generate from this project's own "
            f"prompts with `--input {PROJECT_PROMPTS_STEM}`"
        )
    raise PromptFileError(f"Prompt file {str(spec)!r} not found (looked at: {looked}){hint}")


def load_prompts(path: str | os.PathLike) -> list[str]:
    """Read the prompts of ``path``, in file order.

    Raises:
        PromptFileError: if the file is missing, unreadable or holds no prompt.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise PromptFileError(f"Prompt file {path} not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise PromptFileError(f"Cannot read prompt file {path}: {e}") from e
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise PromptFileError(
            f"Prompt file {path} holds no prompt (expected one prompt per line; blank lines "
            f"and '#' comments are skipped)"
        )
    return prompts


def dedup_key(prompt: str) -> str:
    """Prompts equal up to case, punctuation and spacing count as duplicates."""
    return " ".join(re.sub(r"[^\w\s]", " ", prompt.lower()).split())
