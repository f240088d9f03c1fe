"""Text classifier: class names (with synonyms) x prompt templates -> CLIP text embeddings.

As in the original CLOUDS, a class is a list of synonyms: a class name holding commas
("road,railroad") is split at them, and a plain name listed in the package's synonym table
(``class_synonyms.txt``: the 19 Cityscapes classes with the original's synonyms, first entry =
the name) is expanded to its synonyms. Every synonym is put into every prompt template, the
prompts are encoded by CLIP's text tower, each embedding is L2-normalised, averaged over the
templates and normalised again: one row per synonym. The decoder scores a class by the maximum
over its synonyms. The result depends only on the class list, so it is cached per list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Protocol

import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError

__all__ = ["PROMPT_TEMPLATES", "TextClassifier", "TextEncoder", "class_synonyms", "synonym_table"]

# The original's fourteen ViLD-style prompts, in its order.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


@cache
def synonym_table() -> dict[str, tuple[str, ...]]:
    """Class name -> its synonyms (name first), read from the package's ``class_synonyms.txt``."""
    text = resources.files("clouds.modeling").joinpath("class_synonyms.txt").read_text()
    table = {}
    for line in text.splitlines():
        if line.strip():
            synonyms = tuple(s.strip() for s in line.split(","))
            table[synonyms[0]] = synonyms
    return table


def class_synonyms(name: str) -> tuple[str, ...]:
    """The synonyms of one class: comma-separated names as given, else the table's, else the name."""
    if "," in name:
        return tuple(name.replace(", ", ",").split(","))
    return synonym_table().get(name, (name,))


class TextEncoder(Protocol):
    """Anything that embeds texts: ``encode_text(texts) -> (N, E)`` L2-normalised."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor: ...


class TextClassifier:
    """Cached synonym embeddings (S, E) and synonyms per class for lists of class names.

    Not an ``nn.Module``: it only refers to the encoder (the backbone), so the encoder's weights
    are owned, saved and moved by the model that holds the backbone.
    """

    def __init__(
        self, *, encoder: TextEncoder, templates: Sequence[str], batch_size: int = 128
    ) -> None:
        """
        Args:
            encoder: the text encoder (the CLIP backbone).
            templates: prompt templates, each with one ``{}`` for the class name.
            batch_size: prompts encoded per call of the encoder.
        """
        if not templates:
            raise ValueError("TextClassifier needs at least one prompt template")
        for template in templates:
            if template.count("{}") != 1:
                raise ValueError(f"Prompt template {template!r} must contain exactly one '{{}}'")
        self.encoder = encoder
        self.templates = tuple(templates)
        self.batch_size = batch_size
        self._cache: dict[tuple[str, ...], tuple[torch.Tensor, list[int]]] = {}

    @classmethod
    def from_config(cls, cfg: CfgNode, encoder: TextEncoder) -> TextClassifier:
        num = cfg.MODEL.CLOUDS.NUM_TEMPLATES
        if not 1 <= num <= len(PROMPT_TEMPLATES):
            raise ConfigError(
                f"MODEL.CLOUDS.NUM_TEMPLATES={num} must lie in 1..{len(PROMPT_TEMPLATES)}"
            )
        return cls(encoder=encoder, templates=PROMPT_TEMPLATES[:num])

    def __call__(
        self, class_names: Sequence[str], device: torch.device
    ) -> tuple[torch.Tensor, list[int]]:
        """Synonym embeddings (S, E) on ``device`` and the synonyms per class (K,), sum S."""
        key = tuple(class_names)
        if not key:
            raise ValueError("The class list of the text classifier is empty")
        cached = self._cache.get(key)
        if cached is None:
            cached = self._compute(key)
        if cached[0].device != device:
            cached = (cached[0].to(device), cached[1])
        self._cache[key] = cached
        return cached[0], list(cached[1])

    @torch.no_grad()
    def _compute(self, class_names: tuple[str, ...]) -> tuple[torch.Tensor, list[int]]:
        groups = [class_synonyms(name) for name in class_names]
        synonyms = [s for group in groups for s in group]
        prompts = [template.format(s) for s in synonyms for template in self.templates]
        embeddings = torch.cat(
            [
                self.encoder.encode_text(prompts[i : i + self.batch_size])
                for i in range(0, len(prompts), self.batch_size)
            ]
        )
        embeddings = embeddings.reshape(len(synonyms), len(self.templates), -1).float()
        classifier = F.normalize(F.normalize(embeddings, dim=-1).mean(dim=1), dim=-1)
        return classifier, [len(group) for group in groups]
