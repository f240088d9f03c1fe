"""Pseudo-labels for the unlabelled (generated) images of a joint-training batch.

For every batch item without "sem_seg" (the mapper gives generated images none), the EMA teacher
predicts on the clean view ("image_clean": same geometry as "image", no photometric jitter;
"image" itself when the mapper kept no clean copy), the per-pixel argmax becomes the label map,
SAM refines it (:class:`clouds.sam.SamRefiner`, when ``MODEL.CLOUDS.SAM.ENABLED``), and the item
gets that map as its "sem_seg" and, when SAM was prompted on it, the prompted classes as its
"prompted_classes" (mask targets even where SAM left none of their pixels, as the original); the
student then trains on the jittered "image". The labeller
installs itself as the LightningModule's ``batch_transform``; it is part of
:class:`clouds.engine.joint_training.JointTraining`, which builds and schedules it.

Optionally (``MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD`` > 0) the first process writes the clean
images and their pseudo-labels before and after refinement as colour PNGs to
``OUTPUT_DIR/pseudo_labels/`` every that many iterations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from clouds.config import CfgNode
from clouds.data.catalog import MetadataCatalog
from clouds.engine.ema_teacher import EMATeacher
from clouds.sam.points import PointSource
from clouds.sam.refinement import RefinedLabel, SamRefiner
from clouds.utils.io import write_png_atomic

__all__ = ["PseudoLabeler", "colorize_labels"]


def colorize_labels(
    label_map: np.ndarray, palette: Sequence[Sequence[int]], ignore_color: Sequence[int] = (0, 0, 0)
) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ids without a colour get ``ignore_color``."""
    table = np.tile(np.asarray(ignore_color, dtype=np.uint8), (256, 1))
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.clip(label_map, 0, 255).astype(np.int64)]


class PseudoLabeler(Callback):
    """Teacher prediction + SAM refinement -> "sem_seg" of unlabelled batch items."""

    def __init__(
        self,
        *,
        teacher: EMATeacher,
        refiner: SamRefiner | None,
        train_dataset: str,
        geometric_ensemble: Any | None = None,
        seed: int = 0,
        dump_period: int = 0,
        dump_dir: str = "",
        palette: Sequence[Sequence[int]] = (),
    ) -> None:
        """
        Args:
            teacher: the EMA teacher callback.
            refiner: SAM refinement, or None to train on the teacher's raw argmax.
            train_dataset: dataset whose class list the teacher predicts (the source).
            geometric_ensemble: the teacher's geometric ensemble (None: decoder only).
            seed: base seed of the point selection (combined with iteration and rank).
            dump_period: write the pseudo-labels of the first labelled batch of every window of
                this many iterations (0: never).
            dump_dir: folder of the dumps.
            palette: RGB colour of each class for the dumps.
        """
        if dump_period < 0:
            raise ValueError(
                f"MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD must be >= 0, got {dump_period}"
            )
        if dump_period and not dump_dir:
            raise ValueError("Dumping pseudo-labels needs a dump folder")
        self.teacher = teacher
        self.refiner = refiner
        self.train_dataset = train_dataset
        self.geometric_ensemble = geometric_ensemble
        self.seed = seed
        self.dump_period = dump_period
        self.dump_dir = dump_dir
        self._dumped_window = -1  # the last window of dump_period iterations that was dumped
        self.palette = [tuple(c) for c in palette]
        self._module: LightningModule | None = None

    @classmethod
    def from_config(
        cls, cfg: CfgNode, *, teacher: EMATeacher, refiner: SamRefiner | None = None
    ) -> PseudoLabeler:
        """Build from the config; the SAM refiner too unless given (or SAM.ENABLED is off)."""
        from clouds.modeling.geometric_ensemble import GeometricEnsemble  # heavy: import on use

        if refiner is None and cfg.MODEL.CLOUDS.SAM.ENABLED:
            refiner = SamRefiner.from_config(cfg)
        ensemble = (
            GeometricEnsemble.from_config(cfg) if cfg.MODEL.CLOUDS.GEOMETRIC_ENSEMBLE_EMA else None
        )
        source = cfg.DATASETS.TRAIN[0]
        palette = MetadataCatalog.get(source).get("stuff_colors", None) or []
        return cls(
            teacher=teacher,
            refiner=refiner,
            train_dataset=source,
            geometric_ensemble=ensemble,
            seed=cfg.SEED if cfg.SEED >= 0 else torch.initial_seed() % 2**32,
            dump_period=cfg.MODEL.CLOUDS.PSEUDO_LABEL_DUMP_PERIOD,
            dump_dir=os.path.join(cfg.OUTPUT_DIR, "pseudo_labels"),
            palette=palette,
        )

    # ------------------------------------------------------------------ labelling
    @torch.no_grad()
    def label(
        self, student: nn.Module, batch: list[dict[str, Any]], *, step: int, rank: int = 0
    ) -> list[dict[str, Any]]:
        """Return ``batch`` with a pseudo-label "sem_seg" on every item that had none.

        Args:
            student: the segmentation model (the teacher runs it with its own head).
            batch: mapper outputs; unlabelled items carry "image" (3, H, W) uint8 and
                optionally "image_clean" (same size).
            step: the training iteration (seeds the point selection, drives the dumps).
            rank: the process rank (seeds the point selection).

        Returns:
            A new list; changed items are copies without "image_clean", with "sem_seg" (H, W)
            int64 and, for images SAM was prompted on, "prompted_classes" (M,) int64, on the
            device of their "image".
        """
        unlabelled = [i for i, x in enumerate(batch) if x.get("sem_seg") is None]
        if not unlabelled:
            return batch
        clean = [batch[i].get("image_clean", batch[i]["image"]) for i in unlabelled]
        inputs = [
            {
                "image": image,
                "height": image.shape[-2],
                "width": image.shape[-1],
                "dataset_name": self.train_dataset,
            }
            for image in clean
        ]
        outputs = self.teacher.predict(student, inputs, geometric_ensemble=self.geometric_ensemble)
        before = [output["sem_seg"].argmax(dim=0) for output in outputs]
        refined = [RefinedLabel(label, None) for label in before]
        if self.refiner is not None:
            refined = self.refiner.refine(clean, before, generator=self.point_source(step, rank))
        after = [r.label for r in refined]
        if self.dump_period and rank == 0 and step // self.dump_period > self._dumped_window:
            # the first labelled batch of each window of dump_period iterations (a window's first
            # iteration may hold no unlabelled image)
            self._dumped_window = step // self.dump_period
            self.dump(step, clean, before, after)
        labelled = list(batch)
        for index, (label, prompted) in zip(unlabelled, refined):
            item = {k: v for k, v in batch[index].items() if k != "image_clean"}
            device = item["image"].device
            item["sem_seg"] = label.to(device=device, dtype=torch.int64)
            if prompted is not None:
                item["prompted_classes"] = prompted.to(device=device, dtype=torch.int64)
            labelled[index] = item
        return labelled

    def point_source(self, step: int, rank: int) -> PointSource:
        """The random source of one batch's point prompts (from the seed, step and rank)."""
        return np.random.default_rng([self.seed, step, rank])

    def dump(
        self,
        step: int,
        images: Sequence[torch.Tensor],
        before: Sequence[torch.Tensor],
        after: Sequence[torch.Tensor],
    ) -> None:
        """Write ``<step>_<k>_{image,before,after}.png`` colour PNGs to the dump folder."""
        for k, (image, old, new) in enumerate(zip(images, before, after)):
            stem = os.path.join(self.dump_dir, f"{step:07d}_{k}")
            write_png_atomic(image.permute(1, 2, 0).cpu().numpy(), f"{stem}_image.png")
            write_png_atomic(colorize_labels(old.cpu().numpy(), self.palette), f"{stem}_before.png")
            write_png_atomic(colorize_labels(new.cpu().numpy(), self.palette), f"{stem}_after.png")

    # ------------------------------------------------------------------ Lightning hooks
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Install as the module's ``batch_transform`` and put SAM on the module's device."""
        self._module = pl_module
        pl_module.batch_transform = self
        if self.refiner is not None:
            self.refiner.to(pl_module.device)

    def __call__(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        module = self._module
        if module is None:
            raise RuntimeError("PseudoLabeler is used before training started (on_fit_start)")
        return self.label(
            self.teacher.student_of(module), batch, step=module.global_step, rank=module.global_rank
        )
