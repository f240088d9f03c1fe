"""Prompts longer than the tiny pipeline's 77 tokens: one line of ours, none of the libraries'."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from clouds.generation.pipeline import load_pipeline
from clouds.generation.prompt_length import overlong_prompts
from clouds.generation.runner import GenerationSettings, generate_images

LONG = (
    "a wide rainy boulevard at dusk with buses, taxis, cyclists and pedestrians crossing, "
    "traffic lights, shop signs, wet reflections and trees along both sidewalks"
)  # 161 characters: more than 77 tokens of the tiny character-level tokenizer


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_long_prompt_reported_once_by_us(tmp_path: Path, tiny_sd_folder: Path, caplog) -> None:
    pipe = load_pipeline(
        str(tiny_sd_folder), dtype=torch.float32, device=torch.device("cpu"), local_files_only=True
    )
    prompts = ["a street", LONG]
    cut = overlong_prompts(pipe.tokenizer, prompts)
    assert list(cut) == [1] and cut[1] == len(pipe.tokenizer(LONG, verbose=False)["input_ids"]) > 77
    settings = GenerationSettings(
        prompts=prompts, folder=tmp_path / "set", num_images=4, model_id=str(tiny_sd_folder),
        dtype="fp32", steps=1, guidance=1.0, height=16, width=16, batch_size=1, seed=0,
    )  # fmt: skip
    # what the libraries' own loggers let through (they print on their own stderr handlers)
    library_loggers = [
        logging.getLogger("transformers.tokenization_utils_base"),
        logging.getLogger(type(pipe).__module__),
    ]
    recorder = _Recorder()
    for library_logger in library_loggers:
        library_logger.addHandler(recorder)
    try:
        with caplog.at_level(logging.INFO):
            summary = generate_images(settings, lambda: pipe, progress=False)
    finally:
        for library_logger in library_loggers:
            library_logger.removeHandler(recorder)
    assert summary.written == 4
    ours = [r.getMessage() for r in caplog.records if r.name == "clouds.generation.prompt_length"]
    assert ours == [
        "1 of 2 prompts are longer than the text encoder's 77 tokens and are cut to their first "
        f"77 (prompt indices 1; the longest, 1, has {cut[1]} tokens)"
    ]
    assert not [m for m in recorder.messages if "Token indices" in m or "was truncated" in m]
