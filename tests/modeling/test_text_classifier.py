"""Text classifier: template averaging, normalisation, caching per class list, config errors."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from clouds.config import ConfigError
from clouds.modeling.text_classifier import (
    PROMPT_TEMPLATES,
    TextClassifier,
    class_synonyms,
    synonym_table,
)
from tests.modeling.model_utils import toy_config

CPU = torch.device("cpu")


class FakeEncoder:
    """Deterministic pseudo-random unit vectors per text; records every call."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, text: str) -> torch.Tensor:
        generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        return F.normalize(torch.randn(self.dim, generator=generator), dim=0)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        return torch.stack([self.embed(t) for t in texts])


def test_fourteen_distinct_templates_with_one_slot() -> None:
    assert len(PROMPT_TEMPLATES) == 14
    assert len(set(PROMPT_TEMPLATES)) == 14
    assert all(t.count("{}") == 1 for t in PROMPT_TEMPLATES)


def test_classifier_is_the_normalised_template_average_per_synonym() -> None:
    encoder = FakeEncoder()
    templates = ("a photo of a {}.", "there is a {} in the scene.", "a dark photo of a {}.")
    names = ["rider", "traffic light", "road,railroad", "hydrant"]
    classifier, num_templates = TextClassifier(encoder=encoder, templates=templates)(names, CPU)
    # table synonyms for Cityscapes names, comma lists split, unknown names kept
    synonyms = ["rider", "traffic light", "traffic lights", "road", "railroad", "hydrant"]
    assert num_templates == [1, 2, 2, 1]
    assert classifier.shape == (6, 8)
    for row, name in zip(classifier, synonyms):
        mean = torch.stack([encoder.embed(t.format(name)) for t in templates]).mean(dim=0)
        torch.testing.assert_close(row, mean / mean.norm())
    torch.testing.assert_close(classifier.norm(dim=-1), torch.ones(6))


def test_synonym_table_is_the_originals() -> None:
    table = synonym_table()
    assert len(table) == 19
    assert table["terrain"] == (
        "terrain", "river", "sand", "sea", "snow", "water", "mountain", "grass", "dirt", "rock"
    )  # fmt: skip
    assert sum(len(v) for v in table.values()) == 60
    assert class_synonyms("sky, clouds") == ("sky", "clouds")


def test_classifier_is_cached_per_class_list() -> None:
    encoder = FakeEncoder()
    text_classifier = TextClassifier(encoder=encoder, templates=PROMPT_TEMPLATES)
    first, _ = text_classifier(["person", "rider"], CPU)
    calls = len(encoder.calls)
    assert calls > 0
    torch.testing.assert_close(text_classifier(("person", "rider"), CPU)[0], first)
    assert len(encoder.calls) == calls
    other, num_templates = text_classifier(["person", "rider", "bicycle"], CPU)
    assert len(encoder.calls) > calls
    assert other.shape == (6, 8) and num_templates == [1, 1, 4]
    torch.testing.assert_close(other[:2], first)


def test_prompts_are_encoded_in_batches() -> None:
    encoder = FakeEncoder()
    names = ["person", "rider", "hydrant"]
    batched = TextClassifier(encoder=encoder, templates=PROMPT_TEMPLATES, batch_size=5)(names, CPU)
    assert max(len(call) for call in encoder.calls) == 5
    assert sum(len(call) for call in encoder.calls) == 3 * 14
    whole = TextClassifier(encoder=FakeEncoder(), templates=PROMPT_TEMPLATES)(names, CPU)
    torch.testing.assert_close(batched[0], whole[0])


@pytest.mark.parametrize("templates", [(), ("no slot",), ("{} and {}",)])
def test_bad_templates_are_rejected(templates: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        TextClassifier(encoder=FakeEncoder(), templates=templates)


def test_empty_class_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        TextClassifier(encoder=FakeEncoder(), templates=PROMPT_TEMPLATES)([], CPU)


def test_num_templates_from_config() -> None:
    cfg = toy_config(["MODEL.CLOUDS.NUM_TEMPLATES", "3"])
    assert TextClassifier.from_config(cfg, FakeEncoder()).templates == PROMPT_TEMPLATES[:3]
    with pytest.raises(ConfigError, match="NUM_TEMPLATES"):
        TextClassifier.from_config(toy_config(["MODEL.CLOUDS.NUM_TEMPLATES", "15"]), FakeEncoder())
