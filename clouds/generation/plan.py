"""Which images a process generates: global indices, shards, seeds, prompts and file names.

Every image has a global index ``0 <= i < num_images`` and everything about it derives from
that index alone, never from the batch, the shard or the order of a run:

- shard: part ``K`` of ``N`` owns the indices ``i`` with ``i % N == K`` (interleaved, so the
  parts never overlap, their union is every index, and raising ``--num-images`` later only
  appends work to each part);
- prompt: prompt ``i % P`` of the ``P`` prompts of the file (each prompt is used equally often);
- seed: :func:`image_seed` hashes the base seed with ``i``, and each image gets its own
  ``torch.Generator`` with that seed, so a shard, a rerun or another batch size reproduces
  the same initial noise;
- file: ``<i:06d>_p<prompt:03d>.png``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["GenerationItem", "image_file_name", "image_seed", "plan_items", "shard_indices"]

_SEED_MASK = (1 << 63) - 1


@dataclass(frozen=True)
class GenerationItem:
    """One image to generate."""

    index: int
    prompt_index: int
    prompt: str
    seed: int

    @property
    def file_name(self) -> str:
        return image_file_name(self.index, self.prompt_index)


def image_seed(base_seed: int, index: int) -> int:
    """The 63-bit seed of image ``index``: SHA-256 of ``"<base_seed>:<index>"``.

    Hashing (rather than ``base_seed + index``) keeps the images of two base seeds unrelated.
    """
    digest = hashlib.sha256(f"{base_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & _SEED_MASK


def image_file_name(index: int, prompt_index: int) -> str:
    return f"{index:06d}_p{prompt_index:03d}.png"


def shard_indices(num_images: int, part: int, num_parts: int) -> range:
    """Global indices owned by part ``part`` of ``num_parts``: ``part, part + N, ...``.

    Raises:
        ValueError: for a negative ``num_images`` or a part outside ``[0, num_parts)``.
    """
    if num_images < 0:
        raise ValueError(f"--num-images must be >= 0, got {num_images}")
    if num_parts < 1:
        raise ValueError(f"--num-parts must be >= 1, got {num_parts}")
    if not 0 <= part < num_parts:
        raise ValueError(
            f"--part must be in [0, {num_parts - 1}] for --num-parts {num_parts}, got {part}"
        )
    return range(part, num_images, num_parts)


def plan_items(
    prompts: list[str], *, num_images: int, part: int, num_parts: int, base_seed: int
) -> list[GenerationItem]:
    """The images of one part, in increasing global index."""
    if not prompts:
        raise ValueError("At least one prompt is needed to plan a generation")
    return [
        GenerationItem(
            index=i,
            prompt_index=i % len(prompts),
            prompt=prompts[i % len(prompts)],
            seed=image_seed(base_seed, i),
        )
        for i in shard_indices(num_images, part, num_parts)
    ]
