"""Joint training (self-training on unlabelled images) as one component.

:class:`JointTraining` owns the EMA teacher (:class:`~clouds.engine.ema_teacher.EMATeacher`),
the SAM refiner (:class:`~clouds.sam.SamRefiner`) and the pseudo-labelling
(:class:`~clouds.engine.pseudo_labeler.PseudoLabeler`), and is the only Lightning callback the
trainer sees for them. It is switched on as in the original CLOUDS, by config keys:

- ``MODEL.CLOUDS.SAM.MINIBATCH``: EMA teacher pseudo-labels (the original's switch of the
  teacher); ``MODEL.CLOUDS.SAM.ENABLED``: refine them with SAM (implies the teacher; the
  original needs both, its joint-training configs set both).
- Every other setting lives under ``MODEL.CLOUDS.SAM`` (ALPHA_EMA, SAM model and prompts) and
  ``MODEL.CLOUDS`` (ITERATION_UPDATE, TEACHER_SCOPE, GEOMETRIC_ENSEMBLE_EMA,
  PSEUDO_LABEL_DUMP_PERIOD).

Which images get pseudo-labels is decided by the data, not by dataset names: a dataset of
``DATASETS.TRAIN`` whose metadata has no label folder (``sem_seg_root`` None, e.g. a generated
set) is unlabelled, its mapper gives its images no "sem_seg", and every batch item without
"sem_seg" is labelled by the teacher.

It works with any segmentor of this project that (1) returns ``{"sem_seg": (K, H, W)}`` class
scores per input in eval mode and (2) declares ``teacher_prefixes``, the name prefixes of the
tensors the teacher averages under ``TEACHER_SCOPE`` "head" (CLOUDS: its Mask2Former head; the
VFM segmentor: its light and refinement heads; ``TEACHER_SCOPE`` "trainable" averages every
trainable tensor instead, LoRA included).
"""

from __future__ import annotations

from typing import Any, Protocol

from lightning.pytorch import Callback, LightningModule, Trainer

from clouds.config import CfgNode, ConfigError
from clouds.data.catalog import MetadataCatalog
from clouds.engine.ema_teacher import EMATeacher
from clouds.engine.pseudo_labeler import PseudoLabeler

__all__ = [
    "JointTraining",
    "SelfTrainable",
    "build_joint_training",
    "joint_training_enabled",
    "unlabelled_datasets",
]


class SelfTrainable(Protocol):
    """What joint training needs from a segmentor (besides training on "sem_seg" labels)."""

    teacher_prefixes: tuple[str, ...]

    def __call__(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """In eval mode: one ``{"sem_seg": (K, height, width)}`` of class scores per input."""


def joint_training_enabled(cfg: CfgNode) -> bool:
    """Whether the config asks for pseudo-labels (``SAM.MINIBATCH`` or ``SAM.ENABLED``)."""
    return bool(cfg.MODEL.CLOUDS.SAM.MINIBATCH or cfg.MODEL.CLOUDS.SAM.ENABLED)


def unlabelled_datasets(cfg: CfgNode) -> list[str]:
    """The datasets of ``DATASETS.TRAIN`` registered without labels (``sem_seg_root`` None)."""
    return [
        name
        for name in cfg.DATASETS.TRAIN
        if MetadataCatalog.get(name).get("sem_seg_root", "") is None
    ]


class JointTraining(Callback):
    """EMA teacher + SAM refinement + pseudo-labels of the unlabelled batch items."""

    def __init__(self, *, teacher: EMATeacher, labeler: PseudoLabeler) -> None:
        """
        Args:
            teacher: the EMA teacher (updated before each batch is labelled).
            labeler: labels unlabelled items with ``teacher`` (and its SAM refiner, if any).
        """
        if labeler.teacher is not teacher:
            raise ValueError("The pseudo-labeller must label with the joint training's teacher")
        self.teacher = teacher
        self.labeler = labeler

    @classmethod
    def from_config(cls, cfg: CfgNode) -> JointTraining:
        """Teacher, SAM (when ``SAM.ENABLED``) and labeller from the config."""
        teacher = EMATeacher.from_config(cfg)
        return cls(teacher=teacher, labeler=PseudoLabeler.from_config(cfg, teacher=teacher))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Create (or restore) the teacher, then install the labeller and move SAM."""
        self.teacher.on_fit_start(trainer, pl_module)
        self.labeler.on_fit_start(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Update the teacher on its period; the batch is labelled in the training step."""
        self.teacher.on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def state_dict(self) -> dict[str, Any]:
        """The teacher's state (SAM is frozen and rebuilt from the config)."""
        return self.teacher.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state_dict)


def build_joint_training(cfg: CfgNode) -> list[Callback]:
    """``[JointTraining]`` when the config asks for it, ``[]`` otherwise.

    Raises:
        ConfigError: joint training without an unlabelled training dataset, or an unlabelled
            training dataset without joint training (its images would have no labels).
    """
    unlabelled = unlabelled_datasets(cfg)
    if not joint_training_enabled(cfg):
        if unlabelled:
            raise ConfigError(
                f"DATASETS.TRAIN holds unlabelled datasets {unlabelled}: set "
                "MODEL.CLOUDS.SAM.MINIBATCH (teacher pseudo-labels) and/or "
                "MODEL.CLOUDS.SAM.ENABLED (SAM-refined) True, or train on labelled sets only"
            )
        return []
    if not unlabelled:
        raise ConfigError(
            "MODEL.CLOUDS.SAM.ENABLED/MINIBATCH ask for joint training but no dataset of "
            f"DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)} is unlabelled (e.g. a generated "
            "sd_<folder> set)"
        )
    return [JointTraining.from_config(cfg)]
