"""Text classifier: class names x prompt templates -> one L2-normalised CLIP embedding per class.

Each class name is put into every prompt template, the prompts are encoded by CLIP's text
tower, the normalised embeddings are averaged over the templates and normalised again. The
result depends only on the class list, so it is computed once per list and cached; a new list
(another dataset, open vocabulary) simply gets its own entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F

from clouds.config import CfgNode, ConfigError

__all__ = ["PROMPT_TEMPLATES", "TextClassifier", "TextEncoder"]

# Fourteen prompts in the style of ViLD's set: plain, sized, scene-level and photographic.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "this is a photo of a {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "a photo of a {} in the scene.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a street-level photo of a {}.",
)


class TextEncoder(Protocol):
    """Anything that embeds texts: ``encode_text(texts) -> (N, E)`` L2-normalised."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor: ...


class TextClassifier:
    """Cached class embeddings (K, E) for lists of class names.

    Not an ``nn.Module``: it only refers to the encoder (the backbone), so the encoder's weights
    are owned, saved and moved by the model that holds the backbone.
    """

    def __init__(
        self, *, encoder: TextEncoder, templates: Sequence[str], batch_size: int = 256
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
        self._cache: dict[tuple[str, ...], torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: CfgNode, encoder: TextEncoder) -> TextClassifier:
        num = cfg.MODEL.CLOUDS.NUM_TEMPLATES
        if not 1 <= num <= len(PROMPT_TEMPLATES):
            raise ConfigError(
                f"MODEL.CLOUDS.NUM_TEMPLATES={num} must lie in 1..{len(PROMPT_TEMPLATES)}"
            )
        return cls(encoder=encoder, templates=PROMPT_TEMPLATES[:num])

    def __call__(self, class_names: Sequence[str], device: torch.device) -> torch.Tensor:
        """The classifier (K, E) of ``class_names`` on ``device``, from the cache when possible."""
        key = tuple(class_names)
        if not key:
            raise ValueError("The class list of the text classifier is empty")
        cached = self._cache.get(key)
        if cached is None:
            cached = self._compute(key)
        if cached.device != device:
            cached = cached.to(device)
        self._cache[key] = cached
        return cached

    @torch.no_grad()
    def _compute(self, class_names: tuple[str, ...]) -> torch.Tensor:
        prompts = [template.format(name) for name in class_names for template in self.templates]
        embeddings = torch.cat(
            [
                self.encoder.encode_text(prompts[i : i + self.batch_size])
                for i in range(0, len(prompts), self.batch_size)
            ]
        )
        embeddings = embeddings.reshape(len(class_names), len(self.templates), -1).float()
        return F.normalize(F.normalize(embeddings, dim=-1).mean(dim=1), dim=-1)
