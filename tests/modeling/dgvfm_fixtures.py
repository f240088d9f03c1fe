"""The DGVFM weight fixtures (tests/fixtures/dgvfm_weights) and tiny configs matching them.

Made by running the ORIGINAL DGVFM code (tpy001/VFMSeg) outside the project (gen_fixtures.py
in the dgvfm-weights scratch folder): tiny models of its own backbone classes
(rein/models/backbones/{dino_v2,eva_02,clip,sam_vit}.py; width 8, 2 heads, depth 4 (SAM 8),
seed-fixed random weights) saved in each official file format, run through its converters
(tools/convert_models/convert_{dinov2,eva2_512x512,clip,sam}.py, --height/--width 64 and CLIP
--embed_dim 8; EVA02's converter has a fixed 32x32 grid), loaded by its LoRABackbone (peft
get_peft_model, r 4, alpha 8, its configs' target modules, seed-fixed random LoRA weights) and
run in eval mode on the closed-form images of :func:`fixture_image`.

- ``<family>_official.*``: the official-format input file (DINOv2 plain dict; EVA02
  ``{"model": ...}`` with the release's ``inner_attn_ln`` / ``norm`` / ``mask_token`` entries;
  CLIP a TorchScript archive (fp16) of a tiny open_clip image tower under ``visual.``; SAM a
  whole-SAM dict with ``image_encoder.`` / ``prompt_encoder.`` / ``mask_decoder.`` entries).
- ``<family>_original.pt``: ``converted`` (entries the converter changed), ``converted_keys``,
  ``lora`` (the LoRABackbone's LoRA weights), ``sizes`` and ``features`` (its outputs; for EVA02
  at 512x512 the top-left 4x4 of each map followed by its channel means) and ``effective``
  (the LoRA layers whose lora_B changes the output).
- ``dinov2_mmengine.pth``: a checkpoint in the layout of mmengine's runner (``meta``,
  ``state_dict`` with the LoRABackbone under ``backbone.`` and two head entries,
  ``message_hub`` holding real mmengine HistoryBuffer objects, ``optimizer``,
  ``param_schedulers``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from clouds.config import CfgNode
from tests.modeling.vfm_test_utils import tiny_vfm_cfg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dgvfm_weights"

# backbone name -> (fixture family, official file, convert size, out indices, depth)
CASES = {
    "DINOv2": ("dinov2", "dinov2_official.pth", 64, [0, 1, 2, 3], 4),
    "EVA02": ("eva02", "eva02_official.pt", 512, [0, 1, 2, 3], 4),
    "CLIPViT": ("clip", "clip_official.pt", 64, [0, 1, 2, 3], 4),
    "SAMViT": ("sam", "sam_official.pth", 64, [1, 3, 5, 7], 8),
}


def fixture_image(h: int, w: int) -> torch.Tensor:
    """The fixtures' input image (1, 3, h, w): sin(0.37 y + 0.71 x + 1.3 c)."""
    c, y, x = torch.meshgrid(
        torch.arange(3.0), torch.arange(float(h)), torch.arange(float(w)), indexing="ij"
    )
    return torch.sin(0.37 * y + 0.71 * x + 1.3 * c)[None]


def fixture_cfg(name: str, overrides: list[str] | tuple[str, ...] = ()) -> CfgNode:
    """A tiny config of ``name`` shaped like its fixture, weights = the official-format file."""
    _, file, size, out_indices, depth = CASES[name]
    return tiny_vfm_cfg(
        name,
        [
            "MODEL.VFM.WEIGHTS", str(FIXTURES / file),
            "MODEL.VFM.CONVERT_SIZE", f"[{size}, {size}]",
            "MODEL.VFM.TINY_WIDTH", "8",
            "MODEL.VFM.TINY_HEADS", "2",
            "MODEL.VFM.TINY_DEPTH", str(depth),
            "MODEL.VFM.OUT_INDICES", str(out_indices),
            "MODEL.LORA.ALPHA", "8",
            *overrides,
        ],
    )  # fmt: skip


def original_record(name: str) -> dict:
    """``<family>_original.pt`` of backbone ``name``."""
    return torch.load(FIXTURES / f"{CASES[name][0]}_original.pt")
