"""Training and inference samplers.

Training samplers are infinite, seeded, DDP-aware and resumable. Each yields ``(index, seed)``
pairs: ``index`` into the concatenation of the training datasets and a per-sample ``seed`` that
makes the sample's augmentation a pure function of its position in the stream (so a resumed run
sees exactly the crops an uninterrupted run would have seen). Every rank draws its own stream
(seeded by ``(seed, rank)``); draws come in fixed-size chunks, each from a generator seeded by
``(seed, rank, chunk)``, so restoring position ``n`` costs one chunk, not ``n`` draws.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = [
    "InferenceSampler",
    "RareClassSampler",
    "WeightedMultiDatasetSampler",
    "rare_class_probabilities",
]

_CHUNK = 1024


class _InfiniteChunkedSampler(Sampler[tuple[int, int]], abc.ABC):
    """Base class: an endless per-rank stream of ``(index, seed)`` drawn chunk by chunk."""

    def __init__(self, *, seed: int, rank: int, world_size: int, chunk_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.chunk_size = chunk_size
        self.num_samples = 0  # samples this rank's stream starts from (restored by load_state_dict)
        self.num_yielded = 0  # samples handed out since construction/restore (counted here)

    @abc.abstractmethod
    def _draw_chunk(self, rng: np.random.Generator) -> np.ndarray:
        """``chunk_size`` dataset indices, int64."""

    def _chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.rank, self.world_size, k])
        indices = self._draw_chunk(rng)
        seeds = rng.integers(0, 2**31 - 1, size=self.chunk_size, dtype=np.int64)
        return indices, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.num_samples
        self.num_yielded = 0
        while True:
            k, offset = divmod(position, self.chunk_size)
            indices, seeds = self._chunk(k)
            for i in range(offset, self.chunk_size):
                self.num_yielded += 1
                yield int(indices[i]), int(seeds[i])
            position = (k + 1) * self.chunk_size

    def state_dict(self) -> dict:
        """Seed, topology and the number of samples drawn by this rank so far."""
        return {
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_samples": self.num_samples + self.num_yielded,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream after ``state["num_samples"]`` samples (same seed and topology)."""
        if state["seed"] != self.seed or state["world_size"] != self.world_size:
            raise ValueError(
                f"Sampler state is for seed {state['seed']} / world size {state['world_size']}, "
                f"this sampler has seed {self.seed} / world size {self.world_size}"
            )
        self.num_samples = int(state["num_samples"])
        self.num_yielded = 0


class WeightedMultiDatasetSampler(_InfiniteChunkedSampler):
    """Each draw picks dataset ``d`` with probability ``weights[d] / sum(weights)``, then one of
    its images uniformly. With one dataset this is an infinite uniform training sampler.

    Indices refer to the concatenation of the datasets in the given order.
    """

    def __init__(
        self,
        *,
        dataset_sizes: Sequence[int],
        weights: Sequence[float],
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        chunk_size: int = _CHUNK,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, chunk_size=chunk_size)
        if len(dataset_sizes) != len(weights) or not dataset_sizes:
            raise ValueError(f"Need one weight per dataset, got {weights} for {dataset_sizes}")
        if any(n <= 0 for n in dataset_sizes):
            raise ValueError(f"Every training dataset needs images, got sizes {dataset_sizes}")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"Dataset weights must be >= 0 with a positive sum, got {weights}")
        self.sizes = np.asarray(dataset_sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.probabilities = np.asarray(weights, dtype=np.float64) / float(sum(weights))

    def _draw_chunk(self, rng: np.random.Generator) -> np.ndarray:
        datasets = rng.choice(len(self.sizes), size=self.chunk_size, p=self.probabilities)
        within = np.floor(rng.random(self.chunk_size) * self.sizes[datasets]).astype(np.int64)
        return self.offsets[datasets] + within


def rare_class_probabilities(class_pixel_counts: np.ndarray, temperature: float) -> np.ndarray:
    """Class sampling probabilities ``softmax((1 - f_c) / T)`` over the classes that occur.

    Args:
        class_pixel_counts: (N, K) pixels of each class in each image.
        temperature: T; small values favour rare classes strongly.

    Returns:
        (K,) probabilities; classes with no pixels get 0.
    """
    totals = class_pixel_counts.sum(axis=0).astype(np.float64)
    if totals.sum() <= 0:
        raise ValueError("No labelled pixels: rare-class sampling needs class statistics")
    freq = totals / totals.sum()
    present = totals > 0
    logits = np.where(present, (1.0 - freq) / temperature, -np.inf)
    logits -= logits[present].max()
    probs = np.exp(logits)
    return probs / probs.sum()


class RareClassSampler(_InfiniteChunkedSampler):
    """Rare-class sampling: draw class ``c`` with :func:`rare_class_probabilities`, then an
    image containing ``c`` uniformly; images without labelled pixels are never drawn.

    Args:
        class_pixel_counts: (N, K) pixels of each class in each of the N (concatenated) images.
        temperature: softmax temperature T (``DATALOADER.RARE_CLASS_TEMPERATURE``).
    """

    def __init__(
        self,
        *,
        class_pixel_counts: np.ndarray,
        temperature: float,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        chunk_size: int = _CHUNK,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, chunk_size=chunk_size)
        if temperature <= 0:
            raise ValueError(f"DATALOADER.RARE_CLASS_TEMPERATURE must be > 0, got {temperature}")
        counts = np.asarray(class_pixel_counts)
        self.class_probabilities = rare_class_probabilities(counts, temperature)
        self.images_of_class = [np.flatnonzero(counts[:, c] > 0) for c in range(counts.shape[1])]

    def _draw_chunk(self, rng: np.random.Generator) -> np.ndarray:
        classes = rng.choice(
            len(self.class_probabilities), size=self.chunk_size, p=self.class_probabilities
        )
        out = np.empty(self.chunk_size, dtype=np.int64)
        for i, c in enumerate(classes):
            candidates = self.images_of_class[c]
            out[i] = candidates[rng.integers(len(candidates))]
        return out


class InferenceSampler(Sampler[int]):
    """Each rank gets a contiguous, disjoint shard of ``range(size)``; no padding or repeats."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1) -> None:
        shard = math.ceil(size / world_size)
        self.indices = range(min(rank * shard, size), min((rank + 1) * shard, size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
