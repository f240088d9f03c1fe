"""Which images a process generates: names, prompts and seeds, as the original CLOUDS names them.

A run makes one part of a set: ``--num-images N`` images with local numbers ``j = 0 .. N-1``
(the count of this part, not of the whole set) and part number ``K`` (``--part``). Like the
original ``generate_txt_im.py`` (CLOUDS at bac4305):

- index: ``i = j + K * N``, so parts run with the same ``N`` never collide;
- prompt: prompt ``j % P`` of the ``P`` prompts of the file (the prompt order restarts in each
  part);
- file: ``im_<i>_p<j % P>.png``.

Our addition: each image gets its own ``torch.Generator`` seeded by :func:`image_seed` from the
base seed and ``i``, so a rerun, a resumed run or another batch size gives the same images (the
original draws its noise unseeded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["GenerationItem", "image_file_name", "image_seed", "part_indices", "plan_items"]

_SEED_MASK = (1 << 63) - 1


@dataclass(frozen=True)
class GenerationItem:
    """One image to generate: its set index ``i`` and prompt number ``j % P``."""

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
    """``im_<index>_p<prompt_index>.png``, the original's name of an image."""
    return f"im_{index}_p{prompt_index}.png"


def part_indices(num_images: int, part: int) -> range:
    """Set indices of part ``part`` of ``num_images`` images: ``part * N .. part * N + N - 1``.

    Raises:
        ValueError: for a negative ``num_images`` or ``part``.
    """
    if num_images < 0:
        raise ValueError(f"--num-images must be >= 0, got {num_images}")
    if part < 0:
        raise ValueError(f"--part must be >= 0, got {part}")
    return range(part * num_images, (part + 1) * num_images)


def plan_items(
    prompts: list[str], *, num_images: int, part: int, base_seed: int
) -> list[GenerationItem]:
    """The ``num_images`` images of part ``part``, in increasing index."""
    if not prompts:
        raise ValueError("At least one prompt is needed to plan a generation")
    indices = part_indices(num_images, part)
    return [
        GenerationItem(
            index=i,
            prompt_index=j % len(prompts),
            prompt=prompts[j % len(prompts)],
            seed=image_seed(base_seed, i),
        )
        for j, i in enumerate(indices)
    ]
