"""Where weights come from: hub needs of a config, offline decisions, cache look-ups, messages."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants
import pytest

from clouds.config import get_cfg
from clouds.utils import weights_source as ws

CONVNEXT_REPO = "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup"


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty hub cache, no offline switch, no proxy; offline changes are undone after."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *ws._PROXY_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored (then removed) by monkeypatch
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def _cache_file(cache: Path, repo_id: str, filename: str) -> None:
    """Lay out ``filename`` of ``repo_id`` as huggingface_hub's cache does (refs/main -> snapshot)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(b"weights")


def test_hub_needs_by_backbone(tmp_path: Path) -> None:
    cfg = get_cfg()
    (need,) = ws.hub_needs(cfg)
    assert need.key == "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS"
    assert need.official.file == "open_clip_pytorch_model.bin"
    local = tmp_path / "clip.bin"
    local.write_bytes(b"x")
    cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS = str(local)
    assert ws.hub_needs(cfg) == []
    cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS = ""  # random init
    assert ws.hub_needs(cfg) == []
    cfg.MODEL.BACKBONE.NAME = "DINOv2"
    (need,) = ws.hub_needs(cfg)
    assert need.key == "MODEL.VFM.WEIGHTS" and need.official.file == "dinov2_vitl14_pretrain.pth"
    assert need.official.hub_repo == "timm/vit_large_patch14_dinov2.lvd142m"
    cfg.MODEL.VFM.TINY = True
    assert ws.hub_needs(cfg) == []
    cfg.MODEL.META_ARCHITECTURE = "SomeoneElsesModel"
    cfg.MODEL.VFM.TINY = False
    assert ws.hub_needs(cfg) == []


def test_reachability_and_offline_switch(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    assert not ws.hub_reachable(timeout=1.0)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert ws.hub_reachable()  # behind a proxy the route cannot be told
    monkeypatch.delenv("HTTPS_PROXY")
    needs = ws.hub_needs(get_cfg())
    assert ws.prepare_hub_access([]) is None
    assert "unreachable" in ws.prepare_hub_access(needs)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE
    assert ws.hub_offline()
    assert "HF_HUB_OFFLINE" in ws.prepare_hub_access(needs)


def test_local_files_only_is_a_reason(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws, "hub_reachable", lambda timeout=3.0: True)
    needs = ws.hub_needs(get_cfg())
    assert ws.prepare_hub_access(needs) is None
    assert "local files only" in ws.prepare_hub_access(needs, local_files_only=True)


def test_missing_from_cache(hub_env: Path) -> None:
    needs = ws.hub_needs(get_cfg())
    assert ws.missing_from_cache(needs) == needs[0]
    _cache_file(hub_env, CONVNEXT_REPO, "open_clip_pytorch_model.bin")
    assert ws.in_hub_cache(CONVNEXT_REPO, "open_clip_pytorch_model.bin")
    assert ws.missing_from_cache(needs) is None


def test_hub_errors_are_recognised_through_the_chain() -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        try:
            raise LocalEntryNotFoundError("not in cache")
        except LocalEntryNotFoundError as e:
            raise RuntimeError("Failed to load the model") from e
    except RuntimeError as e:
        assert ws.is_hub_unavailable_error(e)
    assert not ws.is_hub_unavailable_error(ValueError("MODEL.WEIGHTS has the wrong shape"))


def test_message_names_key_file_and_source() -> None:
    (need,) = ws.hub_needs(get_cfg())
    message = ws.weights_unavailable_message(need, "HF_HUB_OFFLINE is set")
    assert "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS" in message and "HF_HUB_OFFLINE" in message
    assert "/path/to/open_clip_pytorch_model.bin" in message and CONVNEXT_REPO in message
    assert "INSTALL.md" in message


def test_hub_ids_and_paths() -> None:
    assert ws.is_hub_id("stabilityai/stable-diffusion-2") and ws.is_hub_id("gpt2")
    assert not ws.is_hub_id("/abs/folder") and not ws.is_hub_id("./folder")
    assert not ws.is_hub_id("a/b/c")
