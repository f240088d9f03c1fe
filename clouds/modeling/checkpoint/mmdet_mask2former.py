"""Key names of the original's mmdet-style Mask2Former head (mmseg ``Mask2FormerHead`` /
``ReinMask2FormerHead``) -> ours (:class:`clouds.modeling.heads.mask2former.Mask2FormerHead`).

mmcv wraps its layers (``ConvModule`` ``.conv`` / ``.gn``, ``MultiheadAttention`` ``.attn``,
``FFN`` ``.layers``, a layer's norms as ``norms.N``); ours are the CLOUDS pixel decoder and
decoder layers. The tensors are the same, only their names differ.
"""

from __future__ import annotations

import re

__all__ = ["mask2former_key"]

_PD = r"decode_head\.pixel_decoder\."
_TD = r"decode_head\.transformer_decoder\."
_HEAD = "decode_head."

# (pattern, replacement) applied in order; the first match renames the key
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (_PD + r"input_convs\.(\d+)\.conv\.", r"decode_head.pixel_decoder.input_proj.\1.0."),
        (_PD + r"input_convs\.(\d+)\.gn\.", r"decode_head.pixel_decoder.input_proj.\1.1."),
        (_PD + r"level_encoding\.weight$", "decode_head.pixel_decoder.transformer.level_embed"),
        (
            _PD + r"encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.",
            r"decode_head.pixel_decoder.transformer.encoder.layers.\1.linear1.",
        ),
        (
            _PD + r"encoder\.layers\.(\d+)\.ffn\.layers\.1\.",
            r"decode_head.pixel_decoder.transformer.encoder.layers.\1.linear2.",
        ),
        (
            _PD + r"encoder\.layers\.(\d+)\.norms\.0\.",
            r"decode_head.pixel_decoder.transformer.encoder.layers.\1.norm1.",
        ),
        (
            _PD + r"encoder\.layers\.(\d+)\.norms\.1\.",
            r"decode_head.pixel_decoder.transformer.encoder.layers.\1.norm2.",
        ),
        (
            _PD + r"encoder\.layers\.(\d+)\.self_attn\.",
            r"decode_head.pixel_decoder.transformer.encoder.layers.\1.self_attn.",
        ),
        (_PD + r"mask_feature\.", "decode_head.pixel_decoder.mask_features."),
        (
            _TD + r"layers\.(\d+)\.cross_attn\.attn\.",
            r"decode_head.transformer_decoder.layers.\1.cross_attn.multihead_attn.",
        ),
        (
            _TD + r"layers\.(\d+)\.self_attn\.attn\.",
            r"decode_head.transformer_decoder.layers.\1.self_attn.self_attn.",
        ),
        (
            _TD + r"layers\.(\d+)\.norms\.0\.",
            r"decode_head.transformer_decoder.layers.\1.cross_attn.norm.",
        ),
        (
            _TD + r"layers\.(\d+)\.norms\.1\.",
            r"decode_head.transformer_decoder.layers.\1.self_attn.norm.",
        ),
        (
            _TD + r"layers\.(\d+)\.norms\.2\.",
            r"decode_head.transformer_decoder.layers.\1.ffn.norm.",
        ),
        (
            _TD + r"layers\.(\d+)\.ffn\.layers\.0\.0\.",
            r"decode_head.transformer_decoder.layers.\1.ffn.linear1.",
        ),
        (
            _TD + r"layers\.(\d+)\.ffn\.layers\.1\.",
            r"decode_head.transformer_decoder.layers.\1.ffn.linear2.",
        ),
        (
            r"decode_head\.(query_embed|query_feat|querys2feat|level_embed|cls_embed)\.",
            r"decode_head.transformer_decoder.\1.",
        ),
    )
)
# FPN convolutions: mmdet's lateral_convs.i / output_convs.i (i = 0 finest) are our adapter_{i+1}
# / layer_{i+1}, each holding its GroupNorm as ``norm``
_FPN = re.compile(_PD + r"(lateral|output)_convs\.(\d+)\.(conv|gn)\.(\w+)$")
_MASK_EMBED = re.compile(r"decode_head\.mask_embed\.(\d+)\.(\w+)$")


def mask2former_key(key: str) -> str:
    """Our name of an entry of the original's checkpoint; keys of other modules are returned
    unchanged (the patterns only match the mmdet Mask2Former head's names)."""
    fpn = _FPN.match(key)
    if fpn:
        kind, index, part, param = fpn.groups()
        module = f"{'adapter' if kind == 'lateral' else 'layer'}_{int(index) + 1}"
        inner = "" if part == "conv" else "norm."
        return f"{_HEAD}pixel_decoder.{module}.{inner}{param}"
    mask_embed = _MASK_EMBED.match(key)
    if mask_embed:  # Sequential(Linear, ReLU, Linear, ReLU, Linear): linear layers 0, 2, 4
        index, param = mask_embed.groups()
        return f"{_HEAD}transformer_decoder.mask_embed.layers.{int(index) // 2}.{param}"
    for pattern, replacement in _RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return key
