"""The LightningDataModule: training and test loaders, sampler state in checkpoints."""

from __future__ import annotations

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from clouds.config import CfgNode
from clouds.data.build import build_test_loader, build_train_loader, images_per_rank
from clouds.data.samplers import RareClassSampler, WeightedMultiDatasetSampler

__all__ = ["CloudsDataModule"]


class CloudsDataModule(pl.LightningDataModule):
    """Loaders over ``DATASETS.TRAIN`` (infinite) and every ``DATASETS.TEST`` dataset.

    Each process builds its own shard (rank / world size from the trainer), so Lightning must
    not add a distributed sampler (``use_distributed_sampler=False``). The checkpointed sampler
    state counts the samples this process has *consumed* (iterations x images per process),
    not the ones the loader prefetched, so a resumed run continues with the very next sample.
    """

    def __init__(self, *, cfg: CfgNode) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_sampler: WeightedMultiDatasetSampler | RareClassSampler | None = None
        self._sampler_state: dict | None = None

    def _topology(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._topology()
        loader = build_train_loader(self.cfg, rank=rank, world_size=world_size)
        if self._sampler_state is not None:
            loader.sampler.load_state_dict(self._sampler_state)
        self.train_sampler = loader.sampler
        return loader

    def val_dataloader(self) -> list[DataLoader]:
        rank, world_size = self._topology()
        return [
            build_test_loader(self.cfg, name, rank=rank, world_size=world_size)
            for name in self.cfg.DATASETS.TEST
        ]

    def state_dict(self) -> dict:
        if self.train_sampler is None:
            return {}
        state = self.train_sampler.state_dict()
        _, world_size = self._topology()
        state["num_samples"] = self.trainer.global_step * images_per_rank(self.cfg, world_size)
        return {"sampler": state}

    def load_state_dict(self, state_dict: dict) -> None:
        self._sampler_state = state_dict.get("sampler")
