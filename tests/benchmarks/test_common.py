"""Benchmark helpers: timing bookkeeping, memory measurement, tables, JSON, equal-work peers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.common import markdown_table, measure, resolve_dtype, write_json
from benchmarks.models import peer_semantic_scores, peer_targets, random_labels
from clouds.modeling.meta_arch.clouds import semantic_inference


def test_measure_counts_calls_and_memory() -> None:
    calls = {"a": 0, "b": 0}

    def make(name: str, size: int):
        def fn() -> torch.Tensor:
            calls[name] += 1
            return torch.ones(size, size).sum()

        return fn

    results = measure(
        {"a": make("a", 8), "b": make("b", 2048)}, device=torch.device("cpu"), warmup=2, repeats=3
    )
    assert calls == {"a": 5, "b": 5}
    assert [len(m.seconds) for m in results.values()] == [3, 3]
    assert results["a"].per_second(4) == pytest.approx(4 / results["a"].median_s)
    peak = results["b"].peak_memory_bytes
    if peak is not None:  # /proc available: a 16 MiB tensor shows up
        assert peak >= 8 * 2**20


def test_measure_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure({"a": lambda: None}, device=torch.device("cpu"), warmup=0, repeats=0)


def test_markdown_table_and_json(tmp_path: Path) -> None:
    table = markdown_table([{"x": "a", "y": 1.23456}, {"x": "b"}], ["x", "y"])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| a | 1.23 |", "| b | n/a |"]
    path = tmp_path / "sub" / "out.json"
    write_json(path, {"table": table})
    assert json.loads(path.read_text())["table"] == table


def test_resolve_dtype_rejects_unknown() -> None:
    assert resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="--dtype"):
        resolve_dtype("int8")


def test_peer_scores_equal_our_semantic_inference() -> None:
    class Outputs:
        class_queries_logits = torch.randn(2, 5, 4)
        masks_queries_logits = torch.randn(2, 5, 8, 8)

    scores = peer_semantic_scores(Outputs, (8, 8))
    probs = Outputs.class_queries_logits.softmax(-1)[..., :-1]
    for b in range(2):
        expected = semantic_inference(probs[b], Outputs.masks_queries_logits[b])
        torch.testing.assert_close(scores[b], expected)


def test_peer_targets_match_labels() -> None:
    labels = random_labels(2, 64, 96, torch.device("cpu"))
    masks, classes = peer_targets(labels)
    for label, m, c in zip(labels, masks, classes):
        assert 255 not in c.tolist()
        rebuilt = torch.full_like(label, 255)
        for mask, cls in zip(m, c):
            rebuilt[mask.bool()] = cls
        torch.testing.assert_close(rebuilt, label)
