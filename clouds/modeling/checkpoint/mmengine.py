"""The original DGVFM's checkpoints (mmengine runner): recognising, reading and loading them.

An mmengine checkpoint is ``{"meta", "state_dict", "message_hub", "optimizer",
"param_schedulers"}``. Its ``state_dict`` holds the peft-wrapped backbone under
``backbone.model.base_model.model.<path>`` (``MsVFMEncoderDecoder``; ``backbone.base_model.model.``
for the light-head ``LoraBackboneEncoderDecoder``, which wraps the backbone itself; LoRA-wrapped
layers as ``<path>.base_layer.*`` and ``<path>.lora_{A,B}.default.weight``) and the heads under
``decode_head.*`` / ``aux_decoder.*``.
Our backbones keep the original's module paths under ``backbone.vit.``, so the keys map by
prefix; ``base_layer`` is inserted or removed where our model wraps a different set of layers.

``message_hub`` holds pickled mmengine objects (``HistoryBuffer``), so the file cannot be read
with ``weights_only=True``: unpickling it can run arbitrary code. It is read only when the user
says the file is trusted (MODEL.WEIGHTS_TRUST_PICKLE), and then mmengine's classes are replaced
by inert stand-ins, so mmengine need not be installed and none of its code runs. Its entry in
:data:`~clouds.modeling.checkpoint.formats.CHECKPOINT_FORMATS` recognises such a file by
:func:`is_mmengine_checkpoint` before anything is unpickled.
"""

from __future__ import annotations

import logging
import os
import pickle
import pickletools
import re
import types
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import torch
from torch import nn

from clouds.modeling.checkpoint.mmdet_mask2former import mask2former_key
from clouds.modeling.checkpoint.state import trainable_state_dict, verify_state_dict
from clouds.utils.weights_file import PickledObjectsError, load_torch_weights

__all__ = [
    "UntrustedCheckpointError",
    "is_mmengine_checkpoint",
    "load_mmengine_state",
    "map_original_state_dict",
    "read_mmengine_checkpoint",
]

logger = logging.getLogger(__name__)

# Where the original's segmentors keep the peft-wrapped backbone: MsVFMEncoderDecoder (ms / ms_masked
# configs), LoraBackboneEncoderDecoder (light-head configs); the Rein backbones (``Reins*``) hold
# the ViT directly under ``backbone.`` beside their ``backbone.reins.*``.
ORIGINAL_BACKBONE_PREFIXES = (
    "backbone.model.base_model.model.",
    "backbone.base_model.model.",
    "backbone.",
)
OUR_BACKBONE_PREFIX = "backbone.vit."

# entries of the original's backbones that ours do not have and that do not change the output:
# DINOv2's mask token, EVA02's rotary buffers, the unused feature pyramid of its CLIP module
_IGNORED_ORIGINAL = re.compile(
    r"^backbone\.vit\.(mask_token|(.*\.)?rope\.freqs_(cos|sin)|fpn\d\..*)$"
)
# the classifier HRDAHead builds as an mmseg decode head but never uses (ours has none)
_UNUSED_ORIGINAL_HEAD = re.compile(r"^decode_head\.conv_seg\.(weight|bias)$")


class UntrustedCheckpointError(ValueError):
    """A checkpoint holding pickled Python objects that the user has not declared trusted."""


class _InertType(type):
    """Metaclass of the stand-ins: any attribute of the class (e.g. a method pickled as
    ``getattr(HistoryBuffer, "min")``) is another stand-in."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _InertType(f"{cls.__name__}.{name}", (_Inert,), {"__module__": cls.__module__})


class _Inert(metaclass=_InertType):
    """Stand-in for a pickled mmengine object: keeps its state, runs none of its code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _MmengineUnpickler(pickle.Unpickler):
    """Unpickler resolving every ``mmengine.*`` class to an inert stand-in."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "mmengine" or module.startswith("mmengine."):
            return _InertType(name, (_Inert,), {"__module__": f"clouds.inert.{module}"})
        return super().find_class(module, name)


def _pickle_module() -> types.ModuleType:
    """A module-like object for ``torch.load(pickle_module=...)`` using the unpickler above."""
    module = types.ModuleType("clouds_mmengine_pickle")
    module.Unpickler = _MmengineUnpickler
    module.load = lambda file, **kwargs: _MmengineUnpickler(file, **kwargs).load()
    return module


def _top_level_strings(path: str) -> set[str]:
    """The strings in the pickle of a torch zip checkpoint, read opcode by opcode (nothing is
    executed); empty for a file that is not a readable torch zip checkpoint (the weights-only
    reader then says what is wrong with it)."""
    if not zipfile.is_zipfile(path):
        return set()
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                return set()
            data: IO[bytes]
            with archive.open(names[0]) as data:
                opcodes = pickletools.genops(data.read())
                return {arg for _, arg, _ in opcodes if isinstance(arg, str)}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return set()


def is_mmengine_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a checkpoint of mmengine's runner (``state_dict`` next to
    ``meta`` / ``message_hub``), judged without unpickling it."""
    strings = _top_level_strings(os.fspath(path))
    return "state_dict" in strings and ("message_hub" in strings or "meta" in strings)


def read_mmengine_checkpoint(path: str | os.PathLike, *, trust_pickle: bool) -> dict[str, Any]:
    """The whole payload of an mmengine checkpoint.

    Read with ``weights_only=True`` when possible; a file holding pickled objects is read only
    with ``trust_pickle`` (mmengine classes become inert stand-ins).

    Raises:
        FileNotFoundError: naming ``path``.
        UntrustedCheckpointError: the file holds pickled objects and ``trust_pickle`` is off;
            the message says why and how to enable it.
        ValueError: the payload has no ``state_dict``.
    """
    path = os.fspath(path)
    try:
        payload = load_torch_weights(path, key="MODEL.WEIGHTS")
    except PickledObjectsError as e:
        if not trust_pickle:
            reason = f"first refused: {e.refused}" if e.refused else "pickled objects"
            raise UntrustedCheckpointError(
                f"MODEL.WEIGHTS {path} holds pickled Python objects besides tensors (an mmengine "
                f"checkpoint keeps mmengine HistoryBuffer objects in 'message_hub'; {reason}). "
                f"Unpickling them can run arbitrary code, so it is off by default. If the file "
                f"comes from a source you trust, set MODEL.WEIGHTS_TRUST_PICKLE True (e.g. append "
                f"'MODEL.WEIGHTS_TRUST_PICKLE True' to the command line); mmengine classes are "
                f"then replaced by inert stand-ins, none of their code runs."
            ) from e
        payload = load_torch_weights(
            path, key="MODEL.WEIGHTS", trusted_pickle_module=_pickle_module()
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"MODEL.WEIGHTS {path} is not an mmengine checkpoint (no 'state_dict')")
    return payload


def _with_base_layer(key: str) -> str:
    """``a.b.weight`` -> ``a.base_layer.weight`` (the base weight of a LoRA-wrapped layer)."""
    module, _, param = key.rpartition(".")
    return f"{module}.base_layer.{param}"


def map_original_state_dict(
    state: Mapping[str, torch.Tensor], model_keys: set[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The original's ``state_dict`` with our key names, and the keys left out.

    Backbone keys move from :data:`ORIGINAL_BACKBONE_PREFIXES` to ``backbone.vit.`` (keys our
    model has under the same name, such as Rein's ``backbone.reins.*``, stay);
    ``.base_layer`` is dropped where our model does not wrap the layer and added where it does.
    LoRA weights of layers our model does not wrap (MODEL.LORA.MODE "effective": those the
    original's forward never reaches) and the original-only entries without effect (DINOv2's
    mask token, EVA02's rotary buffers, CLIP's unused pyramid) are left out. Other keys (the
    heads: ``decode_head.*``, ``aux_decoder.*``) are kept as they are, but for the mmdet
    Mask2Former head's, renamed by :func:`mask2former_key`.
    """
    mapped: dict[str, torch.Tensor] = {}
    left_out: list[str] = []
    for key, value in state.items():
        prefix = next((p for p in ORIGINAL_BACKBONE_PREFIXES if key.startswith(p)), None)
        if key not in model_keys and _UNUSED_ORIGINAL_HEAD.match(key):
            left_out.append(key)
            continue
        if prefix is None or key in model_keys:
            mapped[mask2former_key(key)] = value
            continue
        ours = OUR_BACKBONE_PREFIX + key[len(prefix) :]
        if ours not in model_keys:
            candidates = [ours.replace(".base_layer.", "."), _with_base_layer(ours)]
            ours = next((c for c in candidates if c in model_keys), ours)
        if ours in model_keys:
            mapped[ours] = value
        elif ".lora_" in ours or _IGNORED_ORIGINAL.match(ours):
            left_out.append(key)
        else:
            mapped[ours] = value
    return mapped, left_out


def load_mmengine_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load the ``state_dict`` of an original DGVFM checkpoint (its key names) into ``model``.

    Every trainable entry of ``model`` (LoRA, heads) must be in ``state``; the backbone's base
    weights in it are loaded too (they equal the converted MODEL.VFM.WEIGHTS of the run).

    Raises:
        CheckpointMismatchError: trainable entries missing, entries ``model`` has no place for,
            or shapes that differ; nothing is loaded.
    """
    own = model.state_dict()
    mapped, left_out = map_original_state_dict(state, set(own))
    verify_state_dict(mapped, own, source=source, required=trainable_state_dict(model).keys())
    model.load_state_dict(mapped, strict=False)
    if left_out:
        logger.info(
            "%s: %d entries without effect in the original's forward left out (%s, ...)",
            source,
            len(left_out),
            ", ".join(left_out[:4]),
        )
