"""Where foundation-model weights come from, and failing at once when they cannot be fetched.

A config names weights in three ways: a local file (always preferred), a hub id / pretrained
tag fetched on first use, or nothing (random init, tests). When a hub download is needed and
the hub cannot be reached (``HF_HUB_OFFLINE``, ``MODEL.VFM.LOCAL_FILES_ONLY``, or no route to
it), :func:`prepare_hub_access` switches huggingface_hub to offline mode before anything is
loaded: cached files still load, missing ones fail at once instead of retrying for a minute,
and :func:`weights_unavailable_message` turns that failure into a message that names the
config key to set and the file to point it to (see INSTALL.md for every file).

Only the standard library is imported here (no torch, no hub client) so that the check runs
before the heavy imports.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from clouds.config import CfgNode

__all__ = [
    "OFFICIAL_FILES",
    "SAM_FILES",
    "OfficialFile",
    "HubNeed",
    "WeightsUnavailableError",
    "force_hub_offline",
    "hub_needs",
    "hub_offline",
    "hub_reachable",
    "in_hub_cache",
    "is_hub_id",
    "is_hub_unavailable_error",
    "missing_from_cache",
    "prepare_hub_access",
    "weights_unavailable_message",
]

_TRUE = ("1", "true", "yes", "on")
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_BUILT_IN_META_ARCHS = ("CLOUDS", "VFMSegmentor")
_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class OfficialFile:
    """A weight file a user downloads once and points ``key`` to."""

    key: str
    file: str
    source: str
    hub_repo: str = ""  # the hub repository the loaders fetch it from ("" when not a hub)
    hub_files: tuple[str, ...] = ()  # file names they look for there


# Local files for what the configs fetch by name (by MODEL.BACKBONE.NAME / CLIP model name).
OFFICIAL_FILES: dict[str, OfficialFile] = {
    "convnext_large_d_320": OfficialFile(
        "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS",
        "open_clip_pytorch_model.bin",
        "https://huggingface.co/laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup",
        "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup",
        _OPEN_CLIP_FILES,
    ),
    "RN50": OfficialFile(
        "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS",
        "RN50.pt",
        "https://openaipublic.azureedge.net/clip/models/"
        "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
        "timm/resnet50_clip.openai",
        _OPEN_CLIP_FILES,
    ),
    "RN101": OfficialFile(
        "MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS",
        "RN101.pt",
        "https://openaipublic.azureedge.net/clip/models/"
        "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
        "timm/resnet101_clip.openai",
        _OPEN_CLIP_FILES,
    ),
    "DINOv2": OfficialFile(
        "MODEL.VFM.WEIGHTS",
        "dinov2_vitl14_pretrain.pth",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    ),
    "EVA02": OfficialFile(
        "MODEL.VFM.WEIGHTS",
        "eva02_L_pt_m38m_p14to16.pt",
        "https://huggingface.co/Yuxin-CV/EVA-02/resolve/main/eva02/pt/eva02_L_pt_m38m_p14to16.pt",
    ),
    "CLIPViT": OfficialFile(
        "MODEL.VFM.WEIGHTS",
        "ViT-L-14.pt",
        "https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    ),
    "SAMViT": OfficialFile(
        "MODEL.VFM.WEIGHTS",
        "sam_vit_h_4b8939.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    ),
}


# Official SAM checkpoints by MODEL.CLOUDS.SAM.MODEL_TYPE (MODEL.CLOUDS.SAM.CHECKPOINT).
SAM_FILES: dict[str, OfficialFile] = {
    "vit_t": OfficialFile(
        "MODEL.CLOUDS.SAM.CHECKPOINT",
        "mobile_sam.pt",
        "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
    ),
    "vit_b": OfficialFile(
        "MODEL.CLOUDS.SAM.CHECKPOINT",
        "sam_vit_b_01ec64.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    ),
    "vit_l": OfficialFile(
        "MODEL.CLOUDS.SAM.CHECKPOINT",
        "sam_vit_l_0b3195.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    ),
    "vit_h": OfficialFile(
        "MODEL.CLOUDS.SAM.CHECKPOINT",
        "sam_vit_h_4b8939.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    ),
}


class WeightsUnavailableError(FileNotFoundError):
    """Weights that are neither a local file nor fetchable; the message names the key to set."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class HubNeed:
    """A config value that makes the model loaders fetch weights from a hub."""

    key: str  # the config key whose value is fetched
    value: str  # its value (a tag or hub id)
    official: OfficialFile | None  # the file to download instead, when known


def hub_needs(cfg: CfgNode) -> list[HubNeed]:
    """The hub downloads building the model of ``cfg`` will try (empty when every weight is a
    local file, random, or a tiny test model)."""
    needs: list[HubNeed] = []
    if cfg.MODEL.META_ARCHITECTURE not in _BUILT_IN_META_ARCHS:
        return needs  # a user's own model: its weights are its own business
    backbone = cfg.MODEL.BACKBONE.NAME
    if backbone == "CLIP":
        tag = cfg.MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS
        if tag and not os.path.isfile(os.path.expanduser(tag)):
            official = OFFICIAL_FILES.get(cfg.MODEL.CLOUDS.CLIP_MODEL_NAME)
            needs.append(HubNeed("MODEL.CLOUDS.CLIP_PRETRAINED_WEIGHTS", tag, official))
    elif backbone in ("DINOv2", "EVA02", "CLIPViT", "SAMViT"):
        vfm = cfg.MODEL.VFM
        if not vfm.WEIGHTS and not vfm.TINY:
            official = OFFICIAL_FILES[backbone]
            if backbone == "DINOv2":  # timm's hub copy of the model id
                official = replace(official, hub_repo=f"timm/{vfm.MODEL_ID}", hub_files=_TIMM_FILES)
            needs.append(HubNeed("MODEL.VFM.WEIGHTS", vfm.MODEL_ID, official))
    return needs


def hub_offline() -> bool:
    """Whether the user switched the Hugging Face hub off (``HF_HUB_OFFLINE`` or
    ``TRANSFORMERS_OFFLINE``)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint (``HF_ENDPOINT``, default huggingface.co)
    opens within ``timeout`` seconds. Behind a proxy the route cannot be told from here: True."""
    if any(os.environ.get(name) for name in _PROXY_VARS):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def force_hub_offline() -> None:
    """Put huggingface_hub (and open_clip, timm, diffusers through it) in offline mode: cached
    files load, missing ones raise at once instead of retrying."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def prepare_hub_access(needs: list[HubNeed], *, local_files_only: bool = False) -> str | None:
    """Decide, before any loading, whether the hub may be used for ``needs``.

    Returns None when nothing is needed or the hub is reachable; otherwise why it is not
    ("offline", "local files only", "unreachable"), after switching huggingface_hub to offline
    mode so that only cached files load.
    """
    if not needs:
        return None
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    elif local_files_only:
        reason = "downloads are switched off (local files only)"
    elif not hub_reachable():
        reason = "the Hugging Face hub is unreachable"
    else:
        return None
    force_hub_offline()
    return reason


def is_hub_id(value: str) -> bool:
    """Whether ``value`` reads as a hub repository id ("name" or "owner/name"), not a path."""
    return bool(_HUB_ID.fullmatch(value)) and not value.startswith((".", "~"))


def in_hub_cache(repo_id: str, filename: str) -> bool:
    """Whether ``filename`` of the hub repository ``repo_id`` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def missing_from_cache(needs: list[HubNeed]) -> HubNeed | None:
    """The first of ``needs`` known to be absent from the local hub cache (None when each is
    cached or its hub files are unknown)."""
    for need in needs:
        official = need.official
        if official is None or not official.hub_repo:
            continue
        if not any(in_hub_cache(official.hub_repo, f) for f in official.hub_files):
            return need
    return None


def is_hub_unavailable_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says that a hub file could not be
    fetched: not cached in offline mode, or no connection."""
    names = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "ConnectionError",
        "ConnectError",
        "ConnectTimeout",
        "gaierror",
    }
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in names for cls in type(current).__mro__):
            return True
        text = str(current)
        if "Failed to download" in text or "cannot find the requested files" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def weights_unavailable_message(need: HubNeed, reason: str) -> str:
    """One paragraph: what could not be fetched, why, and the key and file to set instead."""
    lines = [f"{need.key}={need.value!r} needs a download from the hub, but {reason}."]
    if need.official is not None:
        lines.append(
            f"Download {need.official.file} from {need.official.source} and set "
            f"{need.key} /path/to/{need.official.file}"
        )
    else:
        lines.append(f"Set {need.key} to a local weight file")
    lines.append("(INSTALL.md lists every weight file, its source and size).")
    return " ".join(lines)
