"""Claims of the docs that the code must keep: which class head the shipped configs use and
where the text-classifier one is, no "measured" for GPU fast paths never timed on a GPU, and no
references to internal issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

from clouds.config import load_config
from clouds.modeling.registry import TRANSFORMER_DECODER_REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TEXT_CONFIG = "configs/variants/train_gta_text_classifier.yaml"
ISSUE_REFERENCE = re.compile(r"\bissues? #?\d+|\(#\d+\)", re.IGNORECASE)


def _uses_text(path: Path) -> bool:
    cfg = load_config(str(path))
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    return TRANSFORMER_DECODER_REGISTRY.get(name).uses_text_classifier


def test_readme_class_head_claims() -> None:
    readme = (ROOT / "README.md").read_text()
    intro = readme[: readme.index("## Install")]
    assert "linear head" in intro and TEXT_CONFIG in intro and "cosine" in intro
    reproduction = sorted((ROOT / "configs").glob("warmup/*/*.yaml")) + sorted(
        (ROOT / "configs").glob("joint_training/*/*.yaml")
    )
    assert len(reproduction) == 18
    assert not [p.name for p in reproduction if _uses_text(p)]  # "linear head" is true
    assert _uses_text(ROOT / TEXT_CONFIG)


def test_demo_readme_classes_example_uses_a_text_classifier_config() -> None:
    text = (ROOT / "demo/README.md").read_text()
    # shell commands: a line starting with "python", joined with its "\\" continuations
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = [line for line in joined.splitlines() if line.startswith("python ")]
    commands = [c for c in commands if "--classes" in c]
    configs = [re.search(r"--config-file (\S+)", c) for c in commands]
    assert configs and all(configs)
    for match in configs:
        assert _uses_text(ROOT / match.group(1)), match.group(1)
    assert TEXT_CONFIG in text


def test_no_measured_claim_without_a_gpu_measurement() -> None:
    results = (ROOT / "benchmarks/RESULTS.md").read_text()
    if "No GPU was available" not in results:
        return  # a GPU run exists: the claim may stand
    guide = (ROOT / "GETTING_STARTED.md").read_text()
    paragraphs = [p for p in guide.split("\n\n") if "GPU" in p and "measured" in p.lower()]
    assert not paragraphs, paragraphs


def test_no_internal_issue_references() -> None:
    files = [ROOT / name for name in ("README.md", "GETTING_STARTED.md", "INSTALL.md")]
    for folder in ("benchmarks", "demo", "clouds", "tools"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md"}]
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in files
        for match in ISSUE_REFERENCE.finditer(path.read_text())
    ]
    assert not found, found
