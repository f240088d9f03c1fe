"""Training and inference samplers.

Training samplers are infinite, seeded, DDP-aware and resumable. Each yields ``(index, seed)``
pairs: ``index`` into the concatenation of the training datasets and a per-sample ``seed`` that
makes the sample's augmentation a pure function of its position in the stream (so a resumed run
sees exactly the crops an uninterrupted run would have seen).

:class:`TrainingSampler` and :class:`RepeatFactorTrainingSampler` are detectron2's (the original
CLOUDS's): one global stream of shuffled epochs from a torch generator seeded by ``seed``, rank
``r`` of ``w`` taking positions ``r, r + w, ...``. The others draw one stream per rank (seeded by
``(seed, rank)``) in fixed-size chunks, each from a generator seeded by ``(seed, rank, chunk)``,
so restoring position ``n`` costs one chunk, not ``n`` draws.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = [
    "InferenceSampler",
    "RareClassSampler",
    "RepeatFactorTrainingSampler",
    "TrainingSampler",
    "WeightedMultiDatasetSampler",
    "rare_class_probabilities",
]

_CHUNK = 1024


class _ResumableStream(Sampler[tuple[int, ...]]):
    """Base class of the training samplers: a seeded, per-rank endless stream whose position is
    saved and restored (``num_samples`` drawn before, ``num_yielded`` since the last restore)."""

    def __init__(self, *, seed: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.num_samples = 0  # samples this rank's stream starts from (restored by load_state_dict)
        self.num_yielded = 0  # samples handed out since construction/restore (counted here)

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


class _InfiniteChunkedSampler(_ResumableStream, abc.ABC):
    """Base class: an endless per-rank stream of ``(index, seed)`` drawn chunk by chunk."""

    def __init__(self, *, seed: int, rank: int, world_size: int, chunk_size: int) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        self.chunk_size = chunk_size

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
                yield self._key(indices[i], seeds[i])
            position = (k + 1) * self.chunk_size

    @staticmethod
    def _key(drawn: np.ndarray, seed: np.int64) -> tuple[int, ...]:
        """The yielded ``(index, seed)`` of one draw of :meth:`_draw_chunk`."""
        return int(drawn), int(seed)


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


class TrainingSampler(_ResumableStream):
    """detectron2's TrainingSampler: endless epochs, each a random permutation of ``range(size)``.

    The global stream comes from a ``torch.Generator`` seeded with ``seed`` (the same on every
    rank); rank ``r`` of ``w`` yields its positions ``r, r + w, r + 2w, ...``. The augmentation
    seed of the ``i``-th position of epoch ``e`` is the ``i``-th draw of
    ``np.random.default_rng([seed, e])``, so it does not depend on the world size.
    """

    def __init__(self, *, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if size <= 0:
            raise ValueError(f"The training set needs images, got size {size}")
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        self.size = int(size)

    def _epoch(self, generator: torch.Generator) -> torch.Tensor:
        """The dataset indices of the next epoch, in order, int64."""
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        position = self.rank + self.num_samples * self.world_size  # in the global stream
        start = 0  # global position of the current epoch's first sample
        self.num_yielded = 0
        for epoch in itertools.count():
            order = self._epoch(generator)
            end = start + len(order)
            if position < end:
                indices = order.tolist()
                seeds = np.random.default_rng([self.seed, epoch]).integers(
                    0, 2**31 - 1, size=len(indices), dtype=np.int64
                )
                for i in range(position - start, len(indices), self.world_size):
                    self.num_yielded += 1
                    yield indices[i], int(seeds[i])
                    position += self.world_size
            start = end


class RepeatFactorTrainingSampler(TrainingSampler):
    """detectron2's RepeatFactorTrainingSampler (the original's "WeightedTrainingSampler").

    Image ``i`` appears ``floor(r_i)`` times per epoch plus once more with probability
    ``r_i - floor(r_i)`` (stochastic rounding, ``torch.rand`` in float32), and each epoch is
    shuffled: over many epochs image ``i`` is drawn in proportion to ``r_i``.

    Args:
        repeat_factors: (N,) factor of each image of the concatenated training datasets.
    """

    def __init__(
        self, *, repeat_factors: Sequence[float], seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if factors.ndim != 1 or (factors < 0).any() or factors.sum() <= 0:
            raise ValueError("Repeat factors must be >= 0 with a positive sum, one per image")
        super().__init__(size=len(factors), seed=seed, rank=rank, world_size=world_size)
        self.int_part = torch.trunc(factors)
        self.frac_part = factors - self.int_part

    def _epoch(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self.frac_part), generator=generator)
        repeats = (self.int_part + (rands < self.frac_part).float()).long()
        indices = torch.repeat_interleave(torch.arange(self.size), repeats)
        return indices[torch.randperm(len(indices), generator=generator)]


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
    """Rare-class sampling as DGVFM's (DAFormer's) ``DGDataset``: draw class ``c`` with
    :func:`rare_class_probabilities`, then uniformly one of the images holding more than
    ``min_pixels`` pixels of ``c``.

    Yields ``(index, seed, c)``: the mapper gets ``c`` as the dataset dict's "rare_class" (see
    :class:`clouds.data.build.MappedDataset`) and redraws the crop until it holds enough of it.

    Args:
        class_pixel_counts: (N, K) pixels of each class in each of the N (concatenated) images.
        temperature: softmax temperature T (``DATALOADER.RARE_CLASS_TEMPERATURE``).
        min_pixels: an image is a candidate for class ``c`` when it holds more than this many
            pixels of it (``DATALOADER.RARE_CLASS_MIN_PIXELS``; the original's 3000).

    Raises:
        ValueError: when a class that occurs has no candidate image (the original asserts).
    """

    def __init__(
        self,
        *,
        class_pixel_counts: np.ndarray,
        temperature: float,
        min_pixels: int = 0,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        chunk_size: int = _CHUNK,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, chunk_size=chunk_size)
        if temperature <= 0:
            raise ValueError(f"DATALOADER.RARE_CLASS_TEMPERATURE must be > 0, got {temperature}")
        if min_pixels < 0:
            raise ValueError(f"DATALOADER.RARE_CLASS_MIN_PIXELS must be >= 0, got {min_pixels}")
        counts = np.asarray(class_pixel_counts)
        self.class_probabilities = rare_class_probabilities(counts, temperature)
        self.images_of_class = [
            np.flatnonzero(counts[:, c] > min_pixels) for c in range(counts.shape[1])
        ]
        for c, p in enumerate(self.class_probabilities):
            if p > 0 and len(self.images_of_class[c]) == 0:
                raise ValueError(
                    f"Rare-class sampling: no training image holds more than {min_pixels} pixels "
                    f"of class {c} (DATALOADER.RARE_CLASS_MIN_PIXELS)"
                )

    def _draw_chunk(self, rng: np.random.Generator) -> np.ndarray:
        """(chunk_size, 2) int64 rows (image index, class)."""
        classes = rng.choice(
            len(self.class_probabilities), size=self.chunk_size, p=self.class_probabilities
        )
        out = np.empty((self.chunk_size, 2), dtype=np.int64)
        for i, c in enumerate(classes):
            candidates = self.images_of_class[c]
            out[i] = candidates[rng.integers(len(candidates))], c
        return out

    @staticmethod
    def _key(drawn: np.ndarray, seed: np.int64) -> tuple[int, ...]:
        return int(drawn[0]), int(seed), int(drawn[1])


class InferenceSampler(Sampler[int]):
    """Each rank gets a contiguous, disjoint shard of ``range(size)``; no padding or repeats."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1) -> None:
        shard = math.ceil(size / world_size)
        self.indices = range(min(rank * shard, size), min((rank + 1) * shard, size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
