"""Prompts longer than the text encoder reads: reported once by us, not by the libraries.

A Stable Diffusion pipeline reads at most ``tokenizer.model_max_length`` tokens (77 for CLIP)
of a prompt and drops the rest. transformers then warns "Token indices sequence length is longer
than the specified maximum ..." and diffusers warns "The following part of your input was
truncated ..." at every batch. The prompts are left as they are (the pipeline's own
truncation decides the image, as in the original's generation); instead
:func:`log_overlong_prompts` says once which prompts are cut, and
:func:`quiet_truncation_warnings` silences those two library warnings while images are made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

__all__ = ["log_overlong_prompts", "overlong_prompts", "quiet_truncation_warnings"]

logger = logging.getLogger(__name__)

# (logger name, or None for the pipeline's own module logger; start of the dropped message)
_LIBRARY_WARNINGS: tuple[tuple[str | None, str], ...] = (
    ("transformers.tokenization_utils_base", "Token indices sequence length is longer"),
    (None, "The following part of your input was truncated"),
)


def overlong_prompts(tokenizer: Any, prompts: Sequence[str]) -> dict[int, int]:
    """{prompt index: its token count} of the prompts longer than the tokenizer's maximum.

    Args:
        tokenizer: a transformers tokenizer with ``model_max_length``.
    """
    limit = tokenizer.model_max_length
    counts = {
        i: len(tokenizer(prompt, verbose=False)["input_ids"]) for i, prompt in enumerate(prompts)
    }
    return {i: count for i, count in counts.items() if count > limit}


def log_overlong_prompts(pipe: Any, prompts: Sequence[str]) -> dict[int, int]:
    """Log one line naming the prompts the pipeline's tokenizer will cut (none: nothing logged;
    a pipeline without a tokenizer: nothing checked). Returns :func:`overlong_prompts`."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "model_max_length", 0):
        return {}
    cut = overlong_prompts(tokenizer, prompts)
    if cut:
        longest = max(cut, key=cut.__getitem__)
        logger.warning(
            "%d of %d prompts are longer than the text encoder's %d tokens and are cut to their "
            "first %d (prompt indices %s; the longest, %d, has %d tokens)",
            len(cut),
            len(prompts),
            tokenizer.model_max_length,
            tokenizer.model_max_length,
            ", ".join(map(str, sorted(cut))),
            longest,
            cut[longest],
        )
    return cut


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextmanager
def quiet_truncation_warnings(pipe: Any) -> Iterator[None]:
    """Inside, the tokenizer's and ``pipe``'s warnings about cut prompts are dropped."""
    with ExitStack() as stack:
        for name, prefix in _LIBRARY_WARNINGS:
            target = logging.getLogger(name or type(pipe).__module__)
            drop = _DropMessage(prefix)
            target.addFilter(drop)
            stack.callback(target.removeFilter, drop)
        yield
