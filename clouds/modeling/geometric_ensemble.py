"""Geometric ensemble of in-vocabulary (decoder) and out-of-vocabulary (CLIP) class probabilities.

Each query's predicted mask pools CLIP's dense image features; the pooled vector is projected
into the joint embedding space by CLIP's own visual head and classified against the text
classifier with CLIP's logit scale ("out-of-vocabulary" probabilities p_out). They are blended
with the decoder's class probabilities p_in (void excluded) per class c:

    p(c) ~ p_in(c)^(1 - alpha) * p_out(c)^alpha    for classes seen in training,
    p(c) ~ p_in(c)^(1 - beta)  * p_out(c)^beta     for unseen classes,

renormalised over the classes, then scaled by (1 - p_void) of the decoder so that the void
probability is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F

from clouds.config import CfgNode
from clouds.modeling.transformer_decoder.mask2former_transformer_decoder import (
    grouped_classification_logits,
)

__all__ = ["CLIPVisualHead", "GeometricEnsemble", "geometric_ensemble_probs"]


class CLIPVisualHead(Protocol):
    """What the ensemble needs of the CLIP backbone."""

    logit_scale: torch.Tensor

    def mask_embeddings(self, dense: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor: ...


def geometric_ensemble_probs(
    class_logits: torch.Tensor,
    out_vocab_logits: torch.Tensor,
    seen: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blend decoder and CLIP class probabilities.

    Args:
        class_logits: decoder logits (B, Q, K + 1), last = void.
        out_vocab_logits: CLIP logits (B, Q, K).
        seen: (K,) bool, True for classes of the training set.
        alpha: CLIP weight for seen classes.
        beta: CLIP weight for unseen classes.
        valid: optional (B, Q) bool; queries marked False keep the decoder's probabilities.

    Returns:
        (B, Q, K + 1) probabilities, last = void (the decoder's void probability).
    """
    p_in = class_logits[..., :-1].softmax(dim=-1)
    p_out = out_vocab_logits.softmax(dim=-1)
    weight = torch.where(
        seen.to(p_in.device),
        torch.tensor(alpha, dtype=p_in.dtype, device=p_in.device),
        torch.tensor(beta, dtype=p_in.dtype, device=p_in.device),
    ).expand_as(p_in)
    if valid is not None:
        weight = weight * valid[..., None].to(weight.dtype)
    blended = p_in.pow(1.0 - weight) * p_out.pow(weight)
    blended = blended / blended.sum(dim=-1, keepdim=True)
    void = class_logits.softmax(dim=-1)[..., -1:]
    return torch.cat([blended * (1.0 - void), void], dim=-1)


class GeometricEnsemble:
    """Inference-time blend of decoder and mask-pooled CLIP class probabilities."""

    def __init__(self, *, alpha: float, beta: float, ensemble_on_valid_mask: bool) -> None:
        """
        Args:
            alpha: CLIP weight for classes seen in training (CLOUDS: 0.4).
            beta: CLIP weight for unseen classes (CLOUDS: 0.8).
            ensemble_on_valid_mask: use CLIP only for queries whose mask has pixels.
        """
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Geometric ensemble {name}={value} must lie in [0, 1]")
        self.alpha = alpha
        self.beta = beta
        self.ensemble_on_valid_mask = ensemble_on_valid_mask

    @classmethod
    def from_config(cls, cfg: CfgNode) -> GeometricEnsemble:
        return cls(
            alpha=cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_ALPHA,
            beta=cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_BETA,
            ensemble_on_valid_mask=cfg.MODEL.CLOUDS.ENSEMBLE_ON_VALID_MASK,
        )

    def __call__(
        self,
        *,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        dense_features: torch.Tensor,
        text_classifier: torch.Tensor,
        num_templates: Sequence[int],
        seen: torch.Tensor,
        clip: CLIPVisualHead,
    ) -> torch.Tensor:
        """Ensembled class probabilities.

        Args:
            class_logits: decoder logits (B, Q, K + 1), last = void.
            mask_logits: decoder mask logits (B, Q, H, W).
            dense_features: CLIP dense features (B, Cd, h, w) ("clip_vis_dense").
            text_classifier: (S + 1, E) L2-normalised synonym embeddings, then void.
            num_templates: synonyms per class (K,), summing to S; a class scores its best synonym.
            seen: (K,) bool, True for classes of the training set.
            clip: the CLIP backbone (visual projection and logit scale).

        Returns:
            (B, Q, K + 1) probabilities, last = void.
        """
        embeddings = clip.mask_embeddings(dense_features, mask_logits).float()
        out_vocab_logits = grouped_classification_logits(
            embeddings, text_classifier.float(), clip.logit_scale, num_templates
        )[..., :-1]
        valid = None
        if self.ensemble_on_valid_mask:
            masks = F.interpolate(mask_logits, size=dense_features.shape[-2:], mode="bilinear")
            valid = (masks > 0).flatten(2).any(dim=-1)
        return geometric_ensemble_probs(
            class_logits.float(),
            out_vocab_logits,
            seen,
            alpha=self.alpha,
            beta=self.beta,
            valid=valid,
        )
